#include "mummi/actors/node_registry.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <map>

#include "mummi/coupling/gateway.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;

namespace {

struct waiter {
  std::uint32_t count;
  caf::response_promise promise;
};

struct registry_state {
  node_registry_config cfg;
  caf::actor gateway;
  std::shared_ptr<spdlog::logger> log;
  std::map<std::string, msg::node_status> nodes;
  std::vector<waiter> waiters;
  std::vector<caf::actor> watchers;
  static inline const char* name = "mummi.node_registry";
};

using registry_actor = caf::stateful_actor<registry_state>;

std::vector<msg::node_status> alive_nodes(const registry_state& st) {
  std::vector<msg::node_status> out;
  for (const auto& [id, n] : st.nodes)
    out.push_back(n);
  return out;
}

std::uint32_t alive_count(const registry_state& st) {
  std::uint32_t n = 0;
  for (const auto& [id, s] : st.nodes)
    n += s.alive ? 1 : 0;
  return n;
}

void serve_waiters(registry_actor* self) {
  auto& st = self->state;
  auto alive = alive_count(st);
  std::erase_if(st.waiters, [&](waiter& w) {
    if (alive < w.count)
      return false;
    w.promise.deliver(alive_nodes(st));
    return true;
  });
}

caf::behavior node_registry(registry_actor* self, caf::actor gateway, node_registry_config cfg,
                            std::shared_ptr<spdlog::logger> log) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.gateway = std::move(gateway);
  st.log = std::move(log);
  self->send(st.gateway, cpl::register_atom::value, std::string{"registry"},
             caf::actor_cast<caf::actor>(self));
  return {
    [self](const msg::address& from, const msg::node_hello& h) {
      auto& s = self->state;
      // The gateway vouches for from.node; the hello's own id must agree with it.
      if (h.node_id != from.node)
        s.log->warn("node {} introduced itself as '{}'; using {}", from.node, h.node_id, from.node);
      auto& n = s.nodes[from.node];
      bool known = !n.node_id.empty();
      n = msg::node_status{from.node, true, h.cores, 0, h.gpus, 0};
      s.log->info("node {} {} ({} cores, {} GPUs, pid {} on {})", from.node,
                  known ? "rejoined" : "joined", h.cores, h.gpus, h.pid, h.hostname);
      self->send(s.gateway, cpl::watch_atom::value, from.node);
      for (const auto& w : s.watchers)
        self->send(w, n);
      serve_waiters(self);
      return msg::node_welcome{s.cfg.head_id, s.cfg.campaign,
                               static_cast<std::uint32_t>(s.cfg.heartbeat_period.count()), 0};
    },
    [self](const cpl::peer_down& d) {
      auto& s = self->state;
      if (auto i = s.nodes.find(d.node); i != s.nodes.end() && i->second.alive) {
        i->second.alive = false;
        s.log->warn("node {} lost: {}", d.node, d.reason);
        for (const auto& w : s.watchers)
          self->send(w, i->second);
      }
    },
    [](const cpl::peer_up&) {
      // A node that comes back introduces itself with a new hello.
    },
    [self](nodes_atom) {
      return alive_nodes(self->state);
    },
    [self](watch_nodes_atom) {
      auto& s = self->state;
      auto watcher = caf::actor_cast<caf::actor>(self->current_sender());
      if (!watcher)
        return;
      for (const auto& [id, n] : s.nodes)
        self->send(watcher, n);
      s.watchers.push_back(std::move(watcher));
    },
    [self](await_nodes_atom, std::uint32_t count) {
      auto& s = self->state;
      auto promise = self->make_response_promise();
      s.waiters.push_back({count, promise});
      serve_waiters(self);
      return promise;
    },
  };
}

} // namespace

caf::actor spawn_node_registry(caf::actor_system& sys, caf::actor gateway, node_registry_config cfg,
                               std::shared_ptr<spdlog::logger> log) {
  return sys.spawn(node_registry, std::move(gateway), std::move(cfg), std::move(log));
}

} // namespace mummi::actors
