#pragma once

// The ZeroMQ side of a gateway: every socket of the process, used under one lock by whichever
// thread sends, plus an I/O thread that waits for, reads and decodes what arrives and keeps
// peer liveness with heartbeats. Private to the coupling library.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mummi/coupling/gateway.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::coupling {

/// What the I/O thread tells its owner; the callbacks run on the I/O thread.
struct transport_callbacks {
  /// A decoded envelope; `from.node` is the authenticated peer, whatever the bytes said.
  std::function<void(messages::envelope&&)> on_message;
  /// A peer came up (first contact, came back, or restarted).
  std::function<void(peer_up)> on_peer_up;
  /// A peer went silent or said goodbye.
  std::function<void(peer_down)> on_peer_down;
};

class transport {
public:
  /// Binds `cfg.bind` (if set). Throws std::runtime_error when the endpoint cannot be bound.
  transport(context& ctx, const gateway_config& cfg);
  /// Says goodbye to every peer, stops and joins the I/O thread.
  ~transport();

  /// Starts the I/O thread; call once. The callbacks run on that thread.
  void start(transport_callbacks cb);
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  const std::string& endpoint() const noexcept {
    return endpoint_;
  }

  /// Dials `endpoint` and treats whatever answers there as `node`. Thread-safe. Throws
  /// std::invalid_argument for an endpoint ZeroMQ cannot dial ("foo", "tcp://nohost").
  void connect(std::string node, std::string endpoint);
  /// Sends encoded bytes to `node` from the calling thread. Thread-safe, never blocks (a full
  /// queue or an unknown peer drops the message and counts it).
  void send(std::string node, std::vector<std::byte> bytes);
  /// Sends the same bytes to several nodes. Thread-safe, never blocks.
  void send_to_all(std::vector<std::string> nodes, std::vector<std::byte> bytes);

  gateway_stats stats() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string endpoint_;
};

} // namespace mummi::coupling
