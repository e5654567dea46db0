#include "transport.hpp"

#include <poll.h>
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

struct peer {
  std::unique_ptr<zmq::socket_t> dealer; // set when this process dialed the peer
  bool via_router = false;               // the peer dialed this process
  bool alive = false;
  bool ever_heard = false;
  std::uint64_t incarnation = 0;
  clock_type::time_point last_heard{};
};

/// One message as it came off a socket, decoded outside the socket lock.
struct arrival {
  std::string node;
  bool via_router = false;
  zmq::message_t payload;
};

} // namespace

// Threading: every socket operation happens under `mtx`, on whichever thread needs it. A
// sender writes straight to the socket (no hand-over to the I/O thread, so no wake-up on the
// way out); the I/O thread only sleeps in poll(2) on the sockets' ZMQ_FD notification
// descriptors and an eventfd, and reads what arrives. ZMQ_FD is edge-triggered: any operation
// on a socket may consume its notification, so a sender that finds its socket readable after
// sending wakes the I/O thread through the eventfd.
struct transport::impl {
  zmq::context_t& ctx;
  gateway_config cfg;
  transport_callbacks cb;
  std::uint64_t incarnation = new_incarnation();
  int wake_fd = -1;
  std::atomic<bool> stopping{false};

  std::mutex mtx; // guards everything below
  std::optional<zmq::socket_t> router;
  std::unordered_map<std::string, peer> peers;
  bool fds_dirty = true;
  std::uint64_t heartbeat_seq = 0;

  std::atomic<std::uint64_t> sent{0}, received{0}, dropped{0}, rejected{0};
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

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof(one));
  }

  static bool readable(zmq::socket_t& s) {
    return (s.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
  }

  // -- under mtx -------------------------------------------------------------------------------

  /// Sends to a peer; wakes the I/O thread if the send swallowed a read notification.
  bool send_locked(const std::string& node, const shared_bytes& bytes) {
    auto i = peers.find(node);
    if (i == peers.end()) {
      ++dropped;
      return false;
    }
    zmq::socket_t* used = nullptr;
    bool ok = false;
    try {
      if (i->second.dealer) {
        used = i->second.dealer.get();
        ok = used->send(share(bytes), zmq::send_flags::dontwait).has_value();
      } else if (router && i->second.via_router) {
        used = &*router;
        ok = used->send(zmq::buffer(node), zmq::send_flags::sndmore | zmq::send_flags::dontwait)
          && used->send(share(bytes), zmq::send_flags::dontwait);
      }
    } catch (const zmq::error_t&) {
      // EHOSTUNREACH: the peer's connection is gone (ROUTER_MANDATORY).
      ok = false;
    }
    ++(ok ? sent : dropped);
    if (used != nullptr && readable(*used))
      wake();
    return ok;
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

  void connect_locked(const std::string& node, const std::string& endpoint) {
    auto& p = peers[node];
    if (p.dealer)
      return;
    auto dealer = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    configure(*dealer);
    dealer->set(zmq::sockopt::routing_id, cfg.node_id);
    dealer->set(zmq::sockopt::immediate, false);
    dealer->set(zmq::sockopt::reconnect_ivl, 100);
    dealer->set(zmq::sockopt::reconnect_ivl_max, 1000);
    try {
      dealer->connect(endpoint);
    } catch (const zmq::error_t& ex) {
      if (!p.via_router && !p.alive)
        peers.erase(node);
      throw std::invalid_argument("cannot connect to node '" + node + "' at '" + endpoint
                                  + "': " + ex.what());
    }
    p.dealer = std::move(dealer);
    p.last_heard = clock_type::now();
    fds_dirty = true;
    // Announce ourselves at once; the message waits in the queue until the link is up.
    send_locked(node, heartbeat_bytes());
    wake(); // the I/O thread must start watching the new socket
  }

  void heard_from(const std::string& node, bool via_router, const msg::heartbeat* hb) {
    auto& p = peers[node];
    p.last_heard = clock_type::now();
    if (via_router && !p.via_router) {
      p.via_router = true;
      // First contact from a dialing peer: answer with a heartbeat so it learns of us at once.
      if (!p.dealer)
        send_locked(node, heartbeat_bytes());
    }
    if (hb == nullptr)
      return;
    bool restarted = p.ever_heard && hb->incarnation != p.incarnation;
    if (!p.alive || restarted) {
      p.alive = true;
      p.ever_heard = true;
      p.incarnation = hb->incarnation;
      if (cb.on_peer_up)
        cb.on_peer_up(peer_up{node, hb->incarnation, restarted});
      if (via_router && restarted)
        send_locked(node, heartbeat_bytes());
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

  /// Moves everything readable off the sockets into `out`.
  void collect_locked(std::vector<arrival>& out) {
    for (int n = 0; router && n < 512 && readable(*router); ++n) {
      zmq::message_t id, payload;
      if (!router->recv(id, zmq::recv_flags::dontwait))
        break;
      if (!id.more()) // a ROUTER always delivers the routing frame first; be safe
        continue;
      (void)router->recv(payload, zmq::recv_flags::none);
      while (payload.more()) { // extra frames are not part of the protocol: drop them
        zmq::message_t extra;
        (void)router->recv(extra, zmq::recv_flags::none);
        ++rejected;
      }
      out.push_back({id.to_string(), true, std::move(payload)});
    }
    for (auto& [node, p] : peers) {
      for (int n = 0; p.dealer && n < 512 && readable(*p.dealer); ++n) {
        zmq::message_t payload;
        if (!p.dealer->recv(payload, zmq::recv_flags::dontwait))
          break;
        out.push_back({node, false, std::move(payload)});
      }
    }
  }

  /// Whether any socket still has something to read (the 512-message batches stop early).
  bool more_to_read_locked() {
    if (router && readable(*router))
      return true;
    for (auto& [node, p] : peers)
      if (p.dealer && readable(*p.dealer))
        return true;
    return false;
  }

  /// Handles one arrival; `decoded` was decoded outside the lock.
  void deliver_locked(arrival& a, msg::decode_result& decoded) {
    ++received;
    if (!decoded) {
      ++rejected;
      heard_from(a.node, a.via_router, nullptr);
      return;
    }
    auto& e = *decoded;
    e.from.node = a.node; // the transport knows who sent it, whatever the bytes claim
    if (e.to.actor.empty() && e.payload) {
      // Gateway-level traffic.
      if (auto* hb = std::get_if<msg::heartbeat>(&*e.payload)) {
        heard_from(a.node, a.via_router, hb);
        return;
      }
      if (auto* bye = std::get_if<msg::node_bye>(&*e.payload)) {
        heard_from(a.node, a.via_router, nullptr);
        mark_down(a.node, "said goodbye: " + bye->reason);
        return;
      }
    }
    heard_from(a.node, a.via_router, nullptr);
    if (cb.on_message)
      cb.on_message(std::move(e));
  }

  /// Sends a heartbeat to every peer.
  void beat_locked() {
    auto hb = heartbeat_bytes();
    for (auto& [node, p] : peers)
      if (p.dealer || p.via_router)
        send_locked(node, hb);
  }

  /// Reports peers silent for longer than `missed_heartbeats` periods.
  void check_liveness_locked(clock_type::time_point now) {
    auto limit = cfg.heartbeat_period * cfg.missed_heartbeats;
    for (auto& [node, p] : peers)
      if (p.alive && now - p.last_heard > limit)
        mark_down(node, "missed " + std::to_string(cfg.missed_heartbeats) + " heartbeats");
  }

  void watched_fds_locked(std::vector<pollfd>& fds) {
    fds.clear();
    fds.push_back({wake_fd, POLLIN, 0});
    if (router)
      fds.push_back({router->get(zmq::sockopt::fd), POLLIN, 0});
    for (auto& [node, p] : peers)
      if (p.dealer)
        fds.push_back({p.dealer->get(zmq::sockopt::fd), POLLIN, 0});
    fds_dirty = false;
  }

  // -- I/O thread ------------------------------------------------------------------------------

  void run() {
    // Liveness is checked ten times per period so that a silent peer is reported soon after
    // it has missed its heartbeats, not up to a whole period later.
    auto check_period
      = std::max<clock_type::duration>(cfg.heartbeat_period / 10, std::chrono::milliseconds{1});
    auto next_beat = clock_type::now() + cfg.heartbeat_period;
    auto next_check = clock_type::now() + check_period;
    auto last_activity = clock_type::now();
    std::vector<pollfd> fds;
    std::vector<arrival> batch;
    std::vector<msg::decode_result> decoded;
    bool backlog = true; // look at the sockets before the first sleep
    while (!stopping) {
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (fds_dirty)
          watched_fds_locked(fds);
      }
      auto now = clock_type::now();
      auto wait
        = std::chrono::ceil<std::chrono::milliseconds>(std::min(next_beat, next_check) - now);
      // Right after traffic the next message usually follows within microseconds: keep
      // polling without sleeping for a short while instead of paying for a wake-up.
      if (backlog || now - last_activity < cfg.busy_poll)
        wait = std::chrono::milliseconds{0};
      int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(wait.count(), 0)));
      if (n > 0)
        last_activity = clock_type::now();
      if (fds[0].revents & POLLIN) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_fd, &count, sizeof(count));
      }
      try {
        batch.clear();
        {
          std::lock_guard<std::mutex> guard{mtx};
          collect_locked(batch);
        }
        decoded.clear();
        for (auto& a : batch)
          decoded.push_back(
            msg::decode(std::span<const std::byte>(static_cast<const std::byte*>(a.payload.data()),
                                                   a.payload.size()),
                        msg::decode_limits{cfg.max_message_bytes, 16}));
        std::lock_guard<std::mutex> guard{mtx};
        for (std::size_t i = 0; i < batch.size(); ++i)
          deliver_locked(batch[i], decoded[i]);
        now = clock_type::now();
        if (now >= next_beat) {
          beat_locked();
          next_beat = now + cfg.heartbeat_period;
        }
        if (now >= next_check) {
          check_liveness_locked(now);
          next_check = now + check_period;
        }
        backlog = more_to_read_locked();
      } catch (const zmq::error_t& ex) {
        if (ex.num() == ETERM)
          break;
      }
    }
    std::lock_guard<std::mutex> guard{mtx};
    say_goodbye_locked();
  }

  void say_goodbye_locked() {
    auto bye = gateway_message(msg::node_bye{cfg.node_id, "gateway stopped"});
    for (auto& [node, p] : peers)
      if (p.alive)
        send_locked(node, bye);
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
    // A gateway restarted in the same process finds its old port still taken for a moment:
    // ZeroMQ closes listening sockets asynchronously. Retry that case for up to a second.
    for (int attempt = 0;; ++attempt) {
      try {
        r.bind(cfg.bind);
        break;
      } catch (const zmq::error_t& ex) {
        if (ex.num() != EADDRINUSE || attempt >= 20)
          throw std::runtime_error("cannot bind " + cfg.bind + ": " + ex.what());
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
      }
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
    impl_->stopping = true;
    impl_->wake();
    impl_->thread.join();
  }
}

void transport::connect(std::string node, std::string endpoint) {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->connect_locked(node, endpoint);
}

void transport::send(std::string node, std::vector<std::byte> bytes) {
  auto shared = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->send_locked(node, shared);
}

void transport::send_to_all(std::vector<std::string> nodes, std::vector<std::byte> bytes) {
  auto shared = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  std::lock_guard<std::mutex> guard{impl_->mtx};
  for (const auto& node : nodes)
    impl_->send_locked(node, shared);
}

gateway_stats transport::stats() const {
  return {impl_->sent.load(), impl_->received.load(), impl_->dropped.load(), impl_->rejected.load(),
          0};
}

} // namespace mummi::coupling
