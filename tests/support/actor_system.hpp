#pragma once

// An actor system configured as mummi's processes configure theirs, for tests.

#include <caf/all.hpp>

#include "mummi/coupling/gateway.hpp"

namespace mummi::test {

struct system_config : caf::actor_system_config {
  system_config() {
    coupling::add_coupling_types(*this);
  }
};

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
