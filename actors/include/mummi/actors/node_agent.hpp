#pragma once

/// The node agent: one per compute node. It introduces its node to the head, answers liveness
/// pings and control messages, and stops itself (and so everything it started) when the head
/// has been unreachable for longer than the grace period: no orphans.
///
/// It registers itself with the gateway as "agent". Jobs (createsims, simulation) are placed
/// on it by the workflow manager in later parts of the system.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace mummi::actors {

struct node_agent_config {
  std::string node_id;
  std::string head_node = "head";
  std::uint32_t cores = 0;
  std::uint32_t gpus = 0;
  std::chrono::milliseconds head_grace{60000}; ///< how long to wait for a lost head
};

/// Spawns the agent; it terminates on a `stop` control message or when the grace period
/// runs out (exit reason `user_shutdown` or `unreachable` respectively).
caf::actor spawn_node_agent(caf::actor_system& sys, caf::actor gateway, node_agent_config cfg,
                            std::shared_ptr<spdlog::logger> log);

/// Cores and GPUs of this machine: hardware threads, and the entries of CUDA_VISIBLE_DEVICES
/// or ROCR_VISIBLE_DEVICES when set.
std::uint32_t detect_cores();
std::uint32_t detect_gpus();

} // namespace mummi::actors
