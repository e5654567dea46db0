#pragma once

// Actors shared by the tests and benchmarks.

#include <caf/all.hpp>

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

} // namespace mummi::test
