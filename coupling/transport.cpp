#include "transport.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <zmq.hpp>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "mummi/messages/codec.hpp"

namespace mummi::coupling {

namespace msg = mummi::messages;
using clock_type = std::chrono::steady_clock;

namespace {

std::int64_t unix_ns_now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// Incarnation of this process: distinct across restarts of the same node.
std::uint64_t new_incarnation() {
  return static_cast<std::uint64_t>(unix_ns_now()) ^ (static_cast<std::uint64_t>(::getpid()) << 48);
}

using shared_bytes = std::shared_ptr<const std::vector<std::byte>>;

/// A zmq message that shares `bytes` without copying them.
zmq::message_t share(const shared_bytes& bytes) {
  auto* hint = new shared_bytes(bytes);
  return zmq::message_t(
    const_cast<std::byte*>((*hint)->data()), (*hint)->size(),
    [](void*, void* h) {
      delete static_cast<shared_bytes*>(h);
    },
    hint);
}

struct command {
  enum class type : std::uint8_t { send, connect, stop } what = type::send;
  std::vector<std::string> nodes; // send: destinations; connect: the node
  shared_bytes bytes;             // send
  std::string endpoint;           // connect
};

struct peer {
  std::unique_ptr<zmq::socket_t> dealer; // set when this process dialed the peer
  bool via_router = false;               // the peer dialed this process
  bool alive = false;
  bool ever_heard = false;
  std::uint64_t incarnation = 0;
  clock_type::time_point last_heard{};
};

} // namespace

struct transport::impl {
  zmq::context_t& ctx;
  gateway_config cfg;
  transport_callbacks cb;
  std::uint64_t incarnation = new_incarnation();

  std::optional<zmq::socket_t> router;
  int wake_fd = -1;

  std::mutex queue_mtx;
  std::vector<command> queue;

  std::unordered_map<std::string, peer> peers;
  std::vector<zmq::pollitem_t> items;
  std::vector<std::string> item_peers; // node of each dealer item (after eventfd/router)
  bool items_dirty = true;

  std::atomic<std::uint64_t> sent{0}, received{0}, dropped{0}, rejected{0};
  std::uint64_t heartbeat_seq = 0;
  std::thread thread;

  impl(zmq::context_t& c, gateway_config conf) : ctx(c), cfg(std::move(conf)) {
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0)
      throw std::runtime_error(std::string{"eventfd: "} + std::strerror(errno));
  }

  ~impl() {
    if (wake_fd >= 0)
      ::close(wake_fd);
  }

  void configure(zmq::socket_t& s) {
    s.set(zmq::sockopt::linger, 200);
    s.set(zmq::sockopt::sndhwm, cfg.send_high_water_mark);
    s.set(zmq::sockopt::rcvhwm, cfg.send_high_water_mark);
    s.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(cfg.max_message_bytes));
  }

  void push(command c) {
    bool was_empty;
    {
      std::lock_guard<std::mutex> guard{queue_mtx};
      was_empty = queue.empty();
      queue.push_back(std::move(c));
    }
    if (was_empty) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof(one));
    }
  }

  // -- I/O thread ------------------------------------------------------------------------------

  void rebuild_items() {
    items.clear();
    item_peers.clear();
    items.push_back({nullptr, wake_fd, ZMQ_POLLIN, 0});
    if (router)
      items.push_back({router->handle(), 0, ZMQ_POLLIN, 0});
    for (auto& [node, p] : peers) {
      if (p.dealer) {
        items.push_back({p.dealer->handle(), 0, ZMQ_POLLIN, 0});
        item_peers.push_back(node);
      }
    }
    items_dirty = false;
  }

  bool send_to(const std::string& node, const shared_bytes& bytes) {
    auto i = peers.find(node);
    if (i == peers.end()) {
      ++dropped;
      return false;
    }
    try {
      if (i->second.dealer) {
        if (i->second.dealer->send(share(bytes), zmq::send_flags::dontwait)) {
          ++sent;
          return true;
        }
      } else if (router && i->second.via_router) {
        if (router->send(zmq::buffer(node), zmq::send_flags::sndmore | zmq::send_flags::dontwait)
            && router->send(share(bytes), zmq::send_flags::dontwait)) {
          ++sent;
          return true;
        }
      }
    } catch (const zmq::error_t&) {
      // EHOSTUNREACH: the peer's connection is gone (ROUTER_MANDATORY).
    }
    ++dropped;
    return false;
  }

  shared_bytes gateway_message(msg::body b) {
    msg::envelope e;
    e.from = {cfg.node_id, ""};
    e.payload = std::move(b);
    return std::make_shared<const std::vector<std::byte>>(msg::encode(e));
  }

  shared_bytes heartbeat_bytes() {
    return gateway_message(
      msg::heartbeat{cfg.node_id, incarnation, ++heartbeat_seq, unix_ns_now()});
  }

  void do_connect(const std::string& node, const std::string& endpoint) {
    auto& p = peers[node];
    if (p.dealer)
      return;
    p.dealer = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    configure(*p.dealer);
    p.dealer->set(zmq::sockopt::routing_id, cfg.node_id);
    p.dealer->set(zmq::sockopt::immediate, false);
    p.dealer->set(zmq::sockopt::reconnect_ivl, 100);
    p.dealer->set(zmq::sockopt::reconnect_ivl_max, 1000);
    p.dealer->connect(endpoint);
    p.last_heard = clock_type::now();
    items_dirty = true;
    // Announce ourselves at once; the message waits in the queue until the link is up.
    send_to(node, heartbeat_bytes());
  }

  void heard_from(const std::string& node, bool via_router, const msg::envelope* hb_env) {
    auto& p = peers[node];
    p.last_heard = clock_type::now();
    if (via_router && !p.via_router) {
      p.via_router = true;
      // First contact from a dialing peer: answer with a heartbeat so it learns of us at once.
      if (!p.dealer)
        send_to(node, heartbeat_bytes());
    }
    if (hb_env == nullptr)
      return;
    const auto& hb = std::get<msg::heartbeat>(*hb_env->payload);
    bool restarted = p.ever_heard && hb.incarnation != p.incarnation;
    if (!p.alive || restarted) {
      p.alive = true;
      p.ever_heard = true;
      p.incarnation = hb.incarnation;
      if (cb.on_peer_up)
        cb.on_peer_up(peer_up{node, hb.incarnation, restarted});
      if (via_router && restarted)
        send_to(node, heartbeat_bytes());
    }
  }

  void mark_down(const std::string& node, std::string reason) {
    auto i = peers.find(node);
    if (i == peers.end() || !i->second.alive)
      return;
    i->second.alive = false;
    if (cb.on_peer_down)
      cb.on_peer_down(peer_down{node, std::move(reason)});
  }

  void on_bytes(const std::string& node, bool via_router, const zmq::message_t& m) {
    ++received;
    auto decoded
      = msg::decode(std::span<const std::byte>(static_cast<const std::byte*>(m.data()), m.size()),
                    msg::decode_limits{cfg.max_message_bytes, 16});
    if (!decoded) {
      ++rejected;
      heard_from(node, via_router, nullptr);
      return;
    }
    auto& e = *decoded;
    e.from.node = node; // the transport knows who sent it, whatever the bytes claim
    if (e.to.actor.empty() && e.payload) {
      // Gateway-level traffic.
      if (std::holds_alternative<msg::heartbeat>(*e.payload)) {
        heard_from(node, via_router, &e);
        return;
      }
      if (std::holds_alternative<msg::node_bye>(*e.payload)) {
        heard_from(node, via_router, nullptr);
        mark_down(node, "said goodbye: " + std::get<msg::node_bye>(*e.payload).reason);
        return;
      }
    }
    heard_from(node, via_router, nullptr);
    if (cb.on_message)
      cb.on_message(std::move(e));
  }

  void drain_router() {
    for (int n = 0; n < 512; ++n) {
      zmq::message_t id, payload;
      if (!router->recv(id, zmq::recv_flags::dontwait))
        return;
      if (!id.more()) // a peer without a routing frame cannot exist on a ROUTER; be safe
        continue;
      (void)router->recv(payload, zmq::recv_flags::none);
      while (payload.more()) { // extra frames are not part of the protocol: drop them
        zmq::message_t extra;
        (void)router->recv(extra, zmq::recv_flags::none);
        ++rejected;
      }
      on_bytes(id.to_string(), true, payload);
    }
  }

  void drain_dealer(const std::string& node) {
    auto i = peers.find(node);
    if (i == peers.end() || !i->second.dealer)
      return;
    auto& s = *i->second.dealer;
    for (int n = 0; n < 512; ++n) {
      zmq::message_t payload;
      if (!s.recv(payload, zmq::recv_flags::dontwait))
        return;
      on_bytes(node, false, payload);
    }
  }

  /// Returns false when asked to stop.
  bool drain_commands() {
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(wake_fd, &count, sizeof(count));
    std::vector<command> batch;
    {
      std::lock_guard<std::mutex> guard{queue_mtx};
      batch.swap(queue);
    }
    for (auto& c : batch) {
      switch (c.what) {
        case command::type::stop: return false;
        case command::type::connect: do_connect(c.nodes.front(), c.endpoint); break;
        case command::type::send:
          for (const auto& node : c.nodes)
            send_to(node, c.bytes);
          break;
      }
    }
    return true;
  }

  /// Sends a heartbeat to every peer.
  void beat() {
    auto hb = heartbeat_bytes();
    for (auto& [node, p] : peers)
      if (p.dealer || p.via_router)
        send_to(node, hb);
  }

  /// Reports peers silent for longer than `missed_heartbeats` periods.
  void check_liveness(clock_type::time_point now) {
    auto limit = cfg.heartbeat_period * cfg.missed_heartbeats;
    for (auto& [node, p] : peers)
      if (p.alive && now - p.last_heard > limit)
        mark_down(node, "missed " + std::to_string(cfg.missed_heartbeats) + " heartbeats");
  }

  void run() {
    // Liveness is checked ten times per period so that a silent peer is reported soon after
    // it has missed its heartbeats, not up to a whole period later.
    auto check_period
      = std::max<clock_type::duration>(cfg.heartbeat_period / 10, std::chrono::milliseconds{1});
    auto next_beat = clock_type::now() + cfg.heartbeat_period;
    auto next_check = clock_type::now() + check_period;
    auto last_activity = clock_type::now();
    for (;;) {
      if (items_dirty)
        rebuild_items();
      auto now = clock_type::now();
      if (now >= next_beat) {
        beat();
        next_beat = now + cfg.heartbeat_period;
      }
      if (now >= next_check) {
        check_liveness(now);
        next_check = now + check_period;
      }
      auto wait
        = std::chrono::ceil<std::chrono::milliseconds>(std::min(next_beat, next_check) - now);
      // Right after traffic the next message usually follows within microseconds: keep
      // polling without sleeping for a short while instead of paying for a wake-up.
      if (now - last_activity < cfg.busy_poll)
        wait = std::chrono::milliseconds{0};
      try {
        if (zmq::poll(items.data(), items.size(), std::max(wait, std::chrono::milliseconds{0})) > 0)
          last_activity = clock_type::now();
        std::size_t k = 0;
        if (items[k++].revents & ZMQ_POLLIN) {
          if (!drain_commands())
            break;
        }
        if (router && (items[k++].revents & ZMQ_POLLIN))
          drain_router();
        // A connect command may have changed the dealer set; its items are rebuilt next round.
        if (!items_dirty) {
          for (std::size_t j = 0; j < item_peers.size(); ++j)
            if (items[k + j].revents & ZMQ_POLLIN)
              drain_dealer(item_peers[j]);
        }
      } catch (const zmq::error_t& ex) {
        if (ex.num() == ETERM)
          break;
      }
    }
    say_goodbye();
  }

  void say_goodbye() {
    auto bye = gateway_message(msg::node_bye{cfg.node_id, "gateway stopped"});
    for (auto& [node, p] : peers)
      if (p.alive)
        send_to(node, bye);
    for (auto& [node, p] : peers)
      p.dealer.reset();
    router.reset();
  }
};

transport::transport(context& ctx, const gateway_config& cfg)
  : impl_(std::make_unique<impl>(*static_cast<zmq::context_t*>(ctx.native()), cfg)) {
  if (!cfg.bind.empty()) {
    impl_->router.emplace(impl_->ctx, zmq::socket_type::router);
    auto& r = *impl_->router;
    impl_->configure(r);
    r.set(zmq::sockopt::router_mandatory, true);
    r.set(zmq::sockopt::router_handover, true);
    try {
      r.bind(cfg.bind);
    } catch (const zmq::error_t& ex) {
      throw std::runtime_error("cannot bind " + cfg.bind + ": " + ex.what());
    }
    endpoint_ = r.get(zmq::sockopt::last_endpoint);
  }
}

void transport::start(transport_callbacks cb) {
  impl_->cb = std::move(cb);
  impl_->thread = std::thread([p = impl_.get()] {
    p->run();
  });
}

transport::~transport() {
  if (impl_->thread.joinable()) {
    impl_->push(command{command::type::stop, {}, nullptr, {}});
    impl_->thread.join();
  }
}

void transport::connect(std::string node, std::string endpoint) {
  impl_->push(command{command::type::connect, {std::move(node)}, nullptr, std::move(endpoint)});
}

void transport::send(std::string node, std::vector<std::byte> bytes) {
  impl_->push(command{command::type::send,
                      {std::move(node)},
                      std::make_shared<const std::vector<std::byte>>(std::move(bytes)),
                      {}});
}

void transport::send_to_all(std::vector<std::string> nodes, std::vector<std::byte> bytes) {
  impl_->push(command{command::type::send,
                      std::move(nodes),
                      std::make_shared<const std::vector<std::byte>>(std::move(bytes)),
                      {}});
}

gateway_stats transport::stats() const {
  return {impl_->sent.load(), impl_->received.load(), impl_->dropped.load(), impl_->rejected.load(),
          0};
}

} // namespace mummi::coupling
