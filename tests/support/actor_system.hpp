#pragma once

// Actors shared by the tests and benchmarks.

#include <caf/all.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <variant>

#include "mummi/coupling/gateway.hpp"

namespace mummi::test {

/// Replies to every ping with the same ping; used as a remote target in tests and benchmarks.
inline caf::behavior echo_actor(caf::event_based_actor*) {
  return {
    [](const messages::address&, messages::ping& p) {
      return std::move(p);
    },
    [](const messages::address&, messages::structure_batch& b) {
      return std::move(b);
    },
    [](const messages::address&, messages::structure_request& r) {
      return messages::ack{"request " + std::to_string(r.request_id)};
    },
  };
}

/// Sends `request` to `target` from a scoped actor and waits for its reply: a `Reply`, or an
/// error_reply (a timeout becomes one naming `what`).
template <class Reply, class Request>
std::variant<Reply, messages::error_reply> ask(caf::actor_system& sys, const caf::actor& target,
                                               Request request, std::chrono::seconds timeout,
                                               const std::string& what) {
  caf::scoped_actor self{sys};
  std::variant<Reply, messages::error_reply> out;
  self->send(target, std::move(request));
  self->receive(
    [&out](Reply& r) {
      out = std::move(r);
    },
    [&out](messages::error_reply& r) {
      out = std::move(r);
    },
    caf::after(timeout) >>
      [&out, &what] {
        out = messages::error_reply{messages::error_code::timeout, "no reply to " + what};
      });
  return out;
}

} // namespace mummi::test
