#include "mummi/coupling/gateway.hpp"

#include <caf/all.hpp>

#include <malloc.h>

#include <zmq.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "mummi/messages/codec.hpp"
#include "mummi/messages/registry.hpp"
#include "transport.hpp"

// The gateway hands decoded envelopes from its I/O thread to its own actor; they never leave
// the process, so they need no serialisation.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mummi::messages::envelope)

namespace mummi::coupling {

namespace msg = mummi::messages;

namespace {

using incoming_atom = caf::atom_constant<caf::atom("gw_in")>;
using expire_atom = caf::atom_constant<caf::atom("gw_expire")>;

constexpr caf::atom_value error_category = caf::atom("mummi");

struct pending_request {
  caf::response_promise promise;
  std::string node;
  std::chrono::steady_clock::time_point deadline;
};

struct peer_info {
  bool alive = false;
  std::uint64_t incarnation = 0;
};

struct gateway_state {
  gateway_config cfg;
  std::shared_ptr<transport> io;
  std::unordered_map<std::string, caf::actor> names;
  std::map<caf::actor_addr, std::string> name_of;
  std::unordered_map<std::uint64_t, pending_request> pending;
  std::uint64_t next_correlation = 1;
  /// Local subscribers per (publishing node, topic).
  std::map<std::pair<std::string, std::string>, std::vector<caf::actor>> subscribers;
  /// Remote nodes subscribed to each of this node's topics.
  std::unordered_map<std::string, std::set<std::string>> remote_subscribers;
  std::unordered_map<std::string, std::vector<caf::actor>> watchers;
  std::unordered_map<std::string, peer_info> peers;
  std::uint64_t undeliverable = 0;
  bool sweep_scheduled = false;

  static inline const char* name = "mummi.gateway";
};

using gateway_actor = caf::stateful_actor<gateway_state>;

void remove_actor(std::vector<caf::actor>& v, const caf::actor_addr& a) {
  std::erase_if(v, [&a](const caf::actor& x) {
    return x.address() == a;
  });
}

void add_unique(std::vector<caf::actor>& v, caf::actor a) {
  for (const auto& x : v)
    if (x == a)
      return;
  v.push_back(std::move(a));
}

/// How often pending remote requests are checked for expiry.
std::chrono::milliseconds sweep_period(const gateway_config& cfg) {
  return std::clamp(cfg.request_timeout / 10, std::chrono::milliseconds{10},
                    std::chrono::milliseconds{1000});
}

msg::address local_address(gateway_actor* self) {
  auto& st = self->state;
  auto i = st.name_of.find(caf::actor_cast<caf::actor_addr>(self->current_sender()));
  return {st.cfg.node_id, i == st.name_of.end() ? std::string{"anonymous"} : i->second};
}

void send_envelope(gateway_actor* self, msg::envelope e) {
  auto node = e.to.node;
  self->state.io->send(std::move(node), msg::encode(e));
}

/// Response handler for a request forwarded to a local actor on behalf of a remote one: sends
/// whatever the actor answers back as a response envelope.
template<class... Ts>
caf::behavior reply_forwarder(gateway_actor* self, std::uint64_t correlation, msg::address to,
                              msg::address from, std::variant<Ts...>*) {
  auto reply = [self, correlation, to, from](msg::body b) {
    msg::envelope e;
    e.kind = msg::envelope_kind::response;
    e.correlation_id = correlation;
    e.from = from;
    e.to = to;
    e.payload = std::move(b);
    send_envelope(self, std::move(e));
  };
  return caf::behavior{[reply](Ts& x) {
                         reply(msg::body{std::move(x)});
                       }...,
                       [self, reply](caf::error& err) {
                         auto code = error_code_of(err).value_or(msg::error_code::internal);
                         if (err == caf::sec::request_timeout)
                           code = msg::error_code::timeout;
                         reply(msg::error_reply{code, self->system().render(err)});
                       }};
}

void deliver_incoming(gateway_actor* self, msg::envelope& e) {
  auto& st = self->state;
  switch (e.kind) {
    case msg::envelope_kind::subscribe: st.remote_subscribers[e.topic].insert(e.from.node); return;
    case msg::envelope_kind::unsubscribe: st.remote_subscribers[e.topic].erase(e.from.node); return;
    case msg::envelope_kind::response: {
      auto i = st.pending.find(e.correlation_id);
      if (i == st.pending.end())
        return; // timed out already
      if (i->second.node != e.from.node) {
        ++st.undeliverable; // only the node that was asked may answer
        return;
      }
      auto promise = std::move(i->second.promise);
      st.pending.erase(i);
      std::visit(
        [&promise](auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, msg::error_reply>)
            promise.deliver(make_error(x.code, x.message));
          else
            promise.deliver(std::move(x));
        },
        *e.payload);
      return;
    }
    case msg::envelope_kind::publish: {
      auto i = st.subscribers.find({e.from.node, e.topic});
      if (i == st.subscribers.end())
        return;
      for (const auto& sub : i->second)
        std::visit(
          [&](auto& x) {
            caf::anon_send(sub, e.from, e.topic, x);
          },
          *e.payload);
      return;
    }
    case msg::envelope_kind::oneway:
    case msg::envelope_kind::request: break;
  }
  auto target = st.names.find(e.to.actor);
  if (target == st.names.end()) {
    ++st.undeliverable;
    if (e.kind == msg::envelope_kind::request) {
      msg::envelope r;
      r.kind = msg::envelope_kind::response;
      r.correlation_id = e.correlation_id;
      r.from = e.to;
      r.to = e.from;
      r.payload = msg::error_reply{msg::error_code::unknown_target,
                                   "no actor named '" + e.to.actor + "' on node " + st.cfg.node_id};
      send_envelope(self, std::move(r));
    }
    return;
  }
  if (e.kind == msg::envelope_kind::oneway) {
    // Sent anonymously: a one-way message has nobody to answer, and a target that answers
    // anyway (a handler that replies when asked by a request) must not reach the gateway.
    std::visit(
      [&](auto& x) {
        caf::anon_send(target->second, e.from, std::move(x));
      },
      *e.payload);
    return;
  }
  std::visit(
    [&](auto& x) {
      // No timeout here (a timer per request costs a clock-thread wake-up): the remote
      // requester has its own, and a target that dies answers with an error.
      auto h = self->request(target->second, caf::infinite, e.from, std::move(x));
      self->add_multiplexed_response_handler(
        h.id(),
        reply_forwarder(self, e.correlation_id, e.from, e.to, static_cast<msg::body*>(nullptr)));
    },
    *e.payload);
}

void on_peer_down(gateway_actor* self, peer_down& d) {
  auto& st = self->state;
  st.peers[d.node].alive = false;
  for (auto i = st.pending.begin(); i != st.pending.end();) {
    if (i->second.node == d.node) {
      i->second.promise.deliver(
        make_error(msg::error_code::peer_down, "node " + d.node + " is down: " + d.reason));
      i = st.pending.erase(i);
    } else {
      ++i;
    }
  }
  for (auto& [topic, nodes] : st.remote_subscribers)
    nodes.erase(d.node);
  if (auto w = st.watchers.find(d.node); w != st.watchers.end())
    for (const auto& watcher : w->second)
      self->send(watcher, d);
}

void on_peer_up(gateway_actor* self, peer_up& u) {
  auto& st = self->state;
  auto& p = st.peers[u.node];
  p.alive = true;
  p.incarnation = u.incarnation;
  // A peer that comes back has forgotten our subscriptions: renew them.
  for (const auto& [key, subs] : st.subscribers) {
    if (key.first != u.node || subs.empty())
      continue;
    msg::envelope e;
    e.kind = msg::envelope_kind::subscribe;
    e.from = {st.cfg.node_id, ""};
    e.to = {u.node, "gateway"};
    e.topic = key.second;
    send_envelope(self, std::move(e));
  }
  if (auto w = st.watchers.find(u.node); w != st.watchers.end())
    for (const auto& watcher : w->second)
      self->send(watcher, u);
}

template<class... Ts>
caf::behavior gateway_behavior(gateway_actor* self, std::variant<Ts...>*) {
  return {
    // -- one-way, request/response and publish for every message type --------------------------
    [self](send_atom, const msg::address& to, Ts& x) {
      auto& s = self->state;
      if (to.node == s.cfg.node_id) {
        if (auto i = s.names.find(to.actor); i != s.names.end())
          self->send(i->second, local_address(self), std::move(x));
        else
          ++s.undeliverable;
        return;
      }
      msg::envelope e;
      e.from = local_address(self);
      e.to = to;
      e.payload = std::move(x);
      send_envelope(self, std::move(e));
    }...,
    [self](request_atom, const msg::address& to, Ts& x) -> caf::result<caf::message> {
      auto& s = self->state;
      if (to.node == s.cfg.node_id) {
        if (auto i = s.names.find(to.actor); i != s.names.end())
          return self->delegate(i->second, local_address(self), std::move(x));
        return make_error(msg::error_code::unknown_target, "no actor named '" + to.actor + "'");
      }
      if (auto p = s.peers.find(to.node); p != s.peers.end() && !p->second.alive)
        return make_error(msg::error_code::peer_down, "node " + to.node + " is down");
      auto correlation = s.next_correlation++;
      msg::envelope e;
      e.kind = msg::envelope_kind::request;
      e.correlation_id = correlation;
      e.from = local_address(self);
      e.to = to;
      e.payload = std::move(x);
      auto promise = self->make_response_promise();
      s.pending.emplace(correlation,
                        pending_request{promise, to.node,
                                        std::chrono::steady_clock::now() + s.cfg.request_timeout});
      // Expiry is swept periodically rather than timed per request: a timer per request
      // costs a wake-up of CAF's clock thread on every round trip.
      if (!s.sweep_scheduled) {
        s.sweep_scheduled = true;
        self->delayed_send(self, sweep_period(s.cfg), expire_atom::value);
      }
      send_envelope(self, std::move(e));
      return promise;
    }...,
    [self](publish_atom, const std::string& topic, Ts& x) {
      auto& s = self->state;
      auto from = local_address(self);
      if (auto i = s.subscribers.find({s.cfg.node_id, topic}); i != s.subscribers.end())
        for (const auto& sub : i->second)
          self->send(sub, from, topic, x);
      auto r = s.remote_subscribers.find(topic);
      if (r == s.remote_subscribers.end() || r->second.empty())
        return;
      msg::envelope e;
      e.kind = msg::envelope_kind::publish;
      e.from = from;
      e.topic = topic;
      e.payload = std::move(x);
      s.io->send_to_all(std::vector<std::string>(r->second.begin(), r->second.end()),
                        msg::encode(e));
    }...,
    // -- administration --------------------------------------------------------------------
    [self](connect_atom, std::string& node, std::string& endpoint) -> caf::result<void> {
      try {
        self->state.io->connect(std::move(node), std::move(endpoint));
      } catch (const std::invalid_argument& ex) {
        return make_error(msg::error_code::rejected, ex.what());
      }
      return caf::unit;
    },
    [self](register_atom, const std::string& name, caf::actor& a) {
      auto& s = self->state;
      self->monitor(a);
      s.name_of[a.address()] = name;
      s.names[name] = std::move(a);
      return caf::unit;
    },
    [self](subscribe_atom, const std::string& node, const std::string& topic) {
      auto& s = self->state;
      auto sub = caf::actor_cast<caf::actor>(self->current_sender());
      if (!sub)
        return;
      self->monitor(sub);
      add_unique(s.subscribers[{node, topic}], sub);
      if (node != s.cfg.node_id) {
        msg::envelope e;
        e.kind = msg::envelope_kind::subscribe;
        e.from = {s.cfg.node_id, ""};
        e.to = {node, "gateway"};
        e.topic = topic;
        send_envelope(self, std::move(e));
      }
    },
    [self](watch_atom, const std::string& node) {
      auto& s = self->state;
      auto w = caf::actor_cast<caf::actor>(self->current_sender());
      if (!w)
        return;
      self->monitor(w);
      add_unique(s.watchers[node], w);
      if (auto p = s.peers.find(node); p != s.peers.end() && p->second.alive)
        self->send(w, peer_up{node, p->second.incarnation, false});
    },
    [self](endpoint_atom) {
      return self->state.io->endpoint();
    },
    [self](stats_atom) {
      auto s = self->state.io->stats();
      s.undeliverable = self->state.undeliverable;
      return s;
    },
    // -- from the I/O thread -----------------------------------------------------------------
    [self](incoming_atom, msg::envelope& e) {
      deliver_incoming(self, e);
    },
    [self](peer_down& d) {
      on_peer_down(self, d);
    },
    [self](peer_up& u) {
      on_peer_up(self, u);
    },
    [self](expire_atom) {
      auto& s = self->state;
      auto now = std::chrono::steady_clock::now();
      for (auto i = s.pending.begin(); i != s.pending.end();) {
        if (i->second.deadline > now) {
          ++i;
          continue;
        }
        i->second.promise.deliver(
          make_error(msg::error_code::timeout, "no response from node " + i->second.node));
        i = s.pending.erase(i);
      }
      s.sweep_scheduled = !s.pending.empty();
      if (s.sweep_scheduled)
        self->delayed_send(self, sweep_period(s.cfg), expire_atom::value);
    },
  };
}

caf::behavior gateway_fun(gateway_actor* self, gateway_config cfg, std::shared_ptr<transport> io) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.io = std::move(io);
  auto me = caf::actor_cast<caf::actor>(self);
  st.io->start(transport_callbacks{
    [me](msg::envelope&& e) {
      caf::anon_send(me, incoming_atom::value, std::move(e));
    },
    [me](peer_up u) {
      caf::anon_send(me, std::move(u));
    },
    [me](peer_down d) {
      caf::anon_send(me, std::move(d));
    },
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if (auto i = s.name_of.find(dm.source); i != s.name_of.end()) {
      s.names.erase(i->second);
      s.name_of.erase(i);
    }
    for (auto& [key, subs] : s.subscribers)
      remove_actor(subs, dm.source);
    for (auto& [node, ws] : s.watchers)
      remove_actor(ws, dm.source);
  });
  // The I/O thread holds a handle to this actor; it stops (and closes the sockets) when the
  // state is destroyed as the actor exits.
  return gateway_behavior(self, static_cast<msg::body*>(nullptr));
}

} // namespace

// CAF reserves code 0 for "no error": the wire codes are shifted by one.
caf::error make_error(msg::error_code code, std::string text) {
  return caf::error{static_cast<std::uint8_t>(static_cast<std::uint8_t>(code) + 1), error_category,
                    caf::make_message(std::move(text))};
}

std::optional<msg::error_code> error_code_of(const caf::error& e) {
  if (!e || e.category() != error_category || e.code() == 0)
    return std::nullopt;
  return static_cast<msg::error_code>(e.code() - 1);
}

struct context::impl {
  zmq::context_t ctx;
};

context::context() : impl_(std::make_unique<impl>()) {}
context::~context() = default;
void* context::native() noexcept {
  return &impl_->ctx;
}

std::string validate(const gateway_config& cfg) {
  std::string problems;
  auto add = [&problems](const std::string& p) {
    problems += problems.empty() ? p : "; " + p;
  };
  if (cfg.node_id.empty() || cfg.node_id.size() > 255)
    add("node_id must be 1 to 255 bytes long");
  else if (cfg.node_id.front() == '\0')
    add("node_id must not start with a zero byte");
  if (!cfg.bind.empty() && cfg.bind.rfind("tcp://", 0) != 0 && cfg.bind.rfind("ipc://", 0) != 0
      && cfg.bind.rfind("inproc://", 0) != 0)
    add("bind '" + cfg.bind + "' must start with tcp://, ipc:// or inproc://");
  if (cfg.heartbeat_period.count() <= 0)
    add("heartbeat period must be positive");
  if (cfg.missed_heartbeats < 1)
    add("missed_heartbeats must be at least 1");
  if (cfg.request_timeout.count() <= 0)
    add("request timeout must be positive");
  if (cfg.send_high_water_mark < 1)
    add("send_high_water_mark must be at least 1");
  return problems;
}

void add_coupling_types(caf::actor_system_config& cfg) {
  msg::add_message_types(cfg);
  // After its aggressive spinning, an idle worker goes straight to its condition variable
  // (which an enqueue signals) instead of napping 50 us at a time without being woken.
  cfg.set("work-stealing.moderate-poll-attempts", 0);
  cfg.set("work-stealing.moderate-sleep-duration", caf::timespan{0});
  cfg.add_message_type<peer_down>("mummi.peer_down");
  cfg.add_message_type<peer_up>("mummi.peer_up");
  cfg.add_message_type<gateway_stats>("mummi.gateway_stats");
  cfg.add_error_category(
    error_category, [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
      auto text = std::string{"mummi::"} + msg::to_string(static_cast<msg::error_code>(code - 1));
      if (ctx.match_elements<std::string>())
        text += "(" + ctx.get_as<std::string>(0) + ")";
      return text;
    });
}

void tune_allocator() {
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
}

gateway::gateway(caf::actor_system& sys, context& ctx, gateway_config cfg)
  : sys_(&sys), node_id_(cfg.node_id) {
  if (auto problems = validate(cfg); !problems.empty())
    throw std::invalid_argument("gateway config: " + problems);
  auto io = std::make_shared<transport>(ctx, cfg);
  endpoint_ = io->endpoint();
  handle_ = sys.spawn(gateway_fun, std::move(cfg), std::move(io));
}

gateway::~gateway() {
  if (!handle_)
    return;
  // Wait until the actor is gone so that its sockets are closed before the context is.
  caf::scoped_actor waiter{*sys_};
  waiter->monitor(handle_);
  waiter->send_exit(handle_, caf::exit_reason::user_shutdown);
  waiter->receive([](const caf::down_msg&) {});
}

} // namespace mummi::coupling
