#pragma once

/// The node agent: one per compute node. It introduces its node to the head, answers liveness
/// pings and control messages, hosts the jobs the workflow manager places on it, and stops
/// itself (and so everything it started) when the head has been unreachable for longer than
/// the grace period: no orphans.
///
/// It registers itself with the gateway as "agent". Messages (all arrive through the gateway
/// as (address from, T)):
/// - job_spec -> job_accepted{job_id, node_id}, or error_reply{rejected} when the node has no
///   job runner, the job id is already running here, or the job needs more cores or GPUs than
///   are free (naming what it needs and what is free). An accepted job runs in a job actor
///   (job_actor.hpp) on its own block of cores (pinned when `pin`) and GPUs; its progress and
///   finish go, one way, to the address that sent the spec. Relative directories of the spec
///   are taken from `work_root`.
/// - job_cancel -> ack (the job then finishes as cancelled: mdrun gets SIGTERM and writes a
///   checkpoint), or error_reply{unknown_target} for a job not running here.
/// - control{stop} -> ack; running jobs are cancelled and waited for (up to `stop_wait`), then
///   the agent stops. The same happens when the head stays unreachable for `head_grace`.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mummi/actors/job_actor.hpp"

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
  /// How jobs run here; null: the node accepts no jobs.
  std::shared_ptr<const job_runner_config> jobs;
  std::filesystem::path work_root = "."; ///< relative job directories start here
  bool pin = false;                      ///< pin each job's mdrun to its cores
  /// Ids of this node's GPUs as mdrun numbers them (size = gpus); empty: 0 .. gpus-1.
  std::vector<std::string> gpu_ids;
  std::chrono::milliseconds stop_wait{30000}; ///< how long stopping waits for jobs to end
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
