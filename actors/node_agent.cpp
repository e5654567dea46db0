#include "mummi/actors/node_agent.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <thread>
#include <unistd.h>

#include "mummi/coupling/gateway.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;

namespace {

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

struct agent_state {
  node_agent_config cfg;
  caf::actor gateway;
  std::shared_ptr<spdlog::logger> log;
  std::uint64_t incarnation = 0;
  bool welcomed = false;
  bool hello_pending = false;
  std::uint64_t head_epoch = 0; ///< bumped whenever the head comes back; stale timers ignored
  static inline const char* name = "mummi.node_agent";
};

using agent_actor = caf::stateful_actor<agent_state>;

void say_hello(agent_actor* self) {
  auto& st = self->state;
  st.hello_pending = true;
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  msg::node_hello hello{
    st.cfg.node_id, host,        st.incarnation, static_cast<std::uint32_t>(::getpid()),
    st.cfg.cores,   st.cfg.gpus, MUMMI_VERSION};
  self
    ->request(st.gateway, std::chrono::seconds{10}, cpl::request_atom::value,
              msg::address{st.cfg.head_node, "registry"}, hello)
    .then(
      [self](msg::node_welcome& w) {
        auto& s = self->state;
        s.welcomed = true;
        s.hello_pending = false;
        s.log->info("node {}: welcomed by {} (campaign '{}')", s.cfg.node_id, w.head_id,
                    w.campaign);
      },
      [self](caf::error& e) {
        self->state.hello_pending = false;
        self->state.log->warn("node {}: hello not answered ({}), retrying", self->state.cfg.node_id,
                              self->system().render(e));
        self->delayed_send(self, std::chrono::seconds{1}, hello_atom::value);
      });
}

caf::behavior node_agent(agent_actor* self, caf::actor gateway, node_agent_config cfg,
                         std::shared_ptr<spdlog::logger> log) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.gateway = std::move(gateway);
  st.log = std::move(log);
  st.incarnation
    = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  self->send(st.gateway, cpl::register_atom::value, std::string{"agent"},
             caf::actor_cast<caf::actor>(self));
  self->send(st.gateway, cpl::watch_atom::value, st.cfg.head_node);
  // Without its gateway the agent can reach nobody: stop with it.
  self->monitor(st.gateway);
  self->set_down_handler([self](const caf::down_msg& dm) {
    if (dm.source != self->state.gateway.address())
      return;
    self->state.log->error("node {}: the gateway stopped ({}); stopping", self->state.cfg.node_id,
                           self->system().render(dm.reason));
    self->quit(caf::exit_reason::unreachable);
  });
  say_hello(self);
  return {
    [self](hello_atom) {
      say_hello(self);
    },
    [](const msg::address&, msg::ping& p) {
      return std::move(p);
    },
    [self](const msg::address& from, const msg::control& c) -> caf::result<msg::ack> {
      auto& s = self->state;
      if (c.command == msg::control_command::stop) {
        s.log->info("node {}: stop requested by {}/{} ({})", s.cfg.node_id, from.node, from.actor,
                    c.issuer);
        self->send(self, stop_atom::value);
        return msg::ack{"stopping"};
      }
      return cpl::make_error(msg::error_code::rejected,
                             "node agent does not handle this control command yet");
    },
    [self](stop_atom) {
      self->quit(caf::exit_reason::user_shutdown);
    },
    [self](const cpl::peer_down& d) {
      auto& s = self->state;
      s.log->warn("node {}: lost the head ({}); stopping in {} s unless it comes back",
                  s.cfg.node_id, d.reason,
                  std::chrono::duration_cast<std::chrono::seconds>(s.cfg.head_grace).count());
      self->delayed_send(self, s.cfg.head_grace, grace_atom::value, s.head_epoch);
    },
    [self](const cpl::peer_up& u) {
      auto& s = self->state;
      ++s.head_epoch;
      if (u.restarted || (!s.welcomed && !s.hello_pending)) {
        s.log->info("node {}: head {} is back, introducing this node again", s.cfg.node_id, u.node);
        s.welcomed = false;
        say_hello(self);
      }
    },
    [self](grace_atom, std::uint64_t epoch) {
      auto& s = self->state;
      if (epoch != s.head_epoch)
        return;
      s.log->error("node {}: head unreachable for the whole grace period; stopping", s.cfg.node_id);
      self->quit(caf::exit_reason::unreachable);
    },
  };
}

std::uint32_t count_list(const char* value) {
  if (value == nullptr || *value == '\0')
    return 0;
  std::uint32_t n = 1;
  for (const char* p = value; *p; ++p)
    n += *p == ',' ? 1 : 0;
  return n;
}

} // namespace

caf::actor spawn_node_agent(caf::actor_system& sys, caf::actor gateway, node_agent_config cfg,
                            std::shared_ptr<spdlog::logger> log) {
  return sys.spawn(node_agent, std::move(gateway), std::move(cfg), std::move(log));
}

std::uint32_t detect_cores() {
  return std::max(1u, std::thread::hardware_concurrency());
}

std::uint32_t detect_gpus() {
  if (auto n = count_list(std::getenv("CUDA_VISIBLE_DEVICES")); n > 0)
    return n;
  return count_list(std::getenv("ROCR_VISIBLE_DEVICES"));
}

} // namespace mummi::actors
