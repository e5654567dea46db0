#pragma once

/// The coupling gateway: one per process, it lets local CAF actors reach actors in other
/// processes by (node, name) as if they were local.
///
/// The gateway is a CAF actor that owns the process's ZeroMQ sockets together with an I/O
/// thread (which waits for, reads and decodes what arrives).
/// Actors in the same process keep talking through CAF directly; only a message addressed to
/// another node is encoded (Cap'n Proto) and sent. Every message to the gateway is a tuple
/// starting with one of the atoms below:
///
/// | message                                   | effect / reply                                 |
/// |-------------------------------------------|------------------------------------------------|
/// | (connect_atom, node, endpoint)            | dial a peer; reply: unit, or `rejected` error   |
/// | (register_atom, name, caf::actor)         | make a local actor reachable as (this node,name)|
/// | (send_atom, address, T)                   | one-way; the target receives (address from, T)  |
/// | (request_atom, address, T)                | the target's reply (any body type) or an error  |
/// | (publish_atom, topic, T)                  | subscribers receive (address from, topic, T)    |
/// | (subscribe_atom, node, topic)             | the sender gets node's events on topic          |
/// | (watch_atom, node)                        | the sender gets peer_down / peer_up for node    |
/// | (endpoint_atom)                           | reply: the bound endpoint with its real port    |
/// | (stats_atom)                              | reply: gateway_stats                            |
///
/// T is any alternative of `mummi::messages::body`. A remote target that replies with an
/// error, or does not exist, makes the requester's handler receive a `caf::error` in the
/// "mummi" category (see `error_code`); a request without reply in time gets
/// `caf::sec::request_timeout`.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mummi/messages/messages.hpp"

namespace mummi::coupling {

using connect_atom = caf::atom_constant<caf::atom("gw_conn")>;
using register_atom = caf::atom_constant<caf::atom("gw_reg")>;
using send_atom = caf::atom_constant<caf::atom("gw_send")>;
using request_atom = caf::atom_constant<caf::atom("gw_req")>;
using publish_atom = caf::atom_constant<caf::atom("gw_pub")>;
using subscribe_atom = caf::atom_constant<caf::atom("gw_sub")>;
using watch_atom = caf::atom_constant<caf::atom("gw_watch")>;
using endpoint_atom = caf::atom_constant<caf::atom("gw_endp")>;
using stats_atom = caf::atom_constant<caf::atom("gw_stats")>;

/// Told to watchers when a peer missed `missed_heartbeats` heartbeats or said goodbye.
struct peer_down {
  std::string node;
  std::string reason;
};

/// Told to watchers when a peer is heard from: first contact, return after silence, or a
/// new incarnation (the process was restarted; `restarted` is then true).
struct peer_up {
  std::string node;
  std::uint64_t incarnation = 0;
  bool restarted = false;
};

/// Counters of one gateway since it started.
struct gateway_stats {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t dropped = 0;       ///< could not be sent (peer gone, queue full)
  std::uint64_t rejected = 0;      ///< received bytes that failed to decode
  std::uint64_t undeliverable = 0; ///< addressed to an actor not registered here
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_down& x) {
  return f(x.node, x.reason);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_up& x) {
  return f(x.node, x.incarnation, x.restarted);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, gateway_stats& x) {
  return f(x.sent, x.received, x.dropped, x.rejected, x.undeliverable);
}

/// Errors between actors that come from the coupling layer or a remote `error_reply`.
/// The codes are those of `messages::error_code`; category atom "mummi".
caf::error make_error(messages::error_code code, std::string text);

/// The code of an error made by `make_error` (or received from a peer); empty for other errors.
std::optional<messages::error_code> error_code_of(const caf::error& e);

/// A ZeroMQ context shared by the gateways of one process (needed for inproc:// endpoints).
/// Create one in `main`; it must outlive every gateway that uses it.
class context {
public:
  context();
  ~context();
  context(const context&) = delete;
  context& operator=(const context&) = delete;
  void* native() noexcept; ///< the zmq context, for the coupling library only

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct gateway_config {
  std::string node_id; ///< unique in the campaign, 1..255 bytes
  std::string bind;    ///< "tcp://127.0.0.1:*", "ipc:///path", "inproc://name", or "" (dial only)
  std::chrono::milliseconds heartbeat_period{1000};
  unsigned missed_heartbeats = 3; ///< silence of this many periods means the peer is down
  /// Longest a request sent to another node may wait for its response before the gateway
  /// answers it with a timeout error (the requester usually has a shorter timeout of its own).
  std::chrono::milliseconds request_timeout{30000};
  int send_high_water_mark = 100000; ///< messages queued per peer before dropping
  /// After traffic, the I/O thread polls without sleeping this long (lower latency, more CPU).
  std::chrono::microseconds busy_poll{0};
  std::size_t max_message_bytes = std::size_t{64} << 20;
};

/// Problems with a gateway_config, all of them ("" when it is fine).
std::string validate(const gateway_config& cfg);

/// Adds the coupling types (peer_down, peer_up, gateway_stats, error category) and all message
/// types to an actor system config, and sets the scheduler up for low message latency (idle
/// workers wait on a condition variable that new work signals, instead of CAF's default of
/// polling with 50 us naps). Call once before creating the actor system.
void add_coupling_types(caf::actor_system_config& cfg);

/// The actor system configuration of every mummi process: `add_coupling_types` applied.
struct system_config : caf::actor_system_config {
  system_config() {
    add_coupling_types(*this);
  }
};

/// Process-wide allocator policy for programs that move large messages (structure batches,
/// frames): freed memory stays in the process instead of being returned to the OS and faulted
/// in again for the next message (glibc: trim threshold 256 MiB, mmap threshold 64 MiB). This
/// took about a quarter off the round trip of a 92 KB batch. Call once, early in `main`.
void tune_allocator();

/// Owns a running gateway actor; destroying it stops the gateway and closes its sockets.
class gateway {
public:
  /// Spawns the gateway and binds `cfg.bind` (if set). Throws std::invalid_argument for a bad
  /// config and std::runtime_error when the endpoint cannot be bound.
  gateway(caf::actor_system& sys, context& ctx, gateway_config cfg);
  ~gateway();
  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  /// The handle local actors send to.
  const caf::actor& handle() const noexcept {
    return handle_;
  }
  /// The bound endpoint with the port the OS chose ("" when not bound).
  const std::string& endpoint() const noexcept {
    return endpoint_;
  }
  const std::string& node_id() const noexcept {
    return node_id_;
  }

private:
  caf::actor_system* sys_ = nullptr;
  caf::actor handle_;
  std::string endpoint_;
  std::string node_id_;
};

} // namespace mummi::coupling
