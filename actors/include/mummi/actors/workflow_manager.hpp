#pragma once

/// The workflow manager (WM) of the head: keeps every node busy with the campaign's jobs and
/// loses none of them. Event driven (no polling): it acts on structures arriving from the
/// structure generator, nodes joining or being lost (node registry), and jobs finishing.
///
/// - Structures: it keeps up to `buffer` validated structures on hand, asking the structure
///   generator for more whenever it has fewer (one request at a time).
/// - Placement: whenever a node has free cores and GPUs, queued simulations go first (on the
///   node whose createsims made their system when it has room), then a createsims for the next
///   structure, unless the simulations done, running and prepared already reach the stopping
///   point. Each job's directories live under `campaign_dir`/sims/<structure id>/.
/// - Supervision: a failed job is placed again after a backoff (base x 2^(failures - 1)) up to
///   `max_attempts` failures, a createsims with a new seed, a simulation from its checkpoint;
///   then it is given up and (createsims) the structure is reported failed to the sampler. A
///   job on a lost node is placed elsewhere at once (no failure counted); a node that joins is
///   given work at once.
/// - Feedback: every createsims outcome goes to the structure generator.
/// - Journal: every job state change and attempt is written (its own connection) before the
///   placement is sent; on spawn, queued, running and cancelled jobs of the journal are queued
///   again, structures delivered earlier but never given a job are taken back.
/// - Stop: when `stop_after_simulations` simulations have succeeded, or after `wall_time`, or
///   on control{stop}: nothing new starts, running jobs are cancelled (checkpointed) and, once
///   all have reported, the campaign is done.
///
/// Messages: (address, job_progress), (address, job_finished) from node agents (register the
/// WM with the gateway as "wm"); node_status from the registry; control{stop} -> ack;
/// (stats_atom) -> monitor_event{topic "workflow", kind "stats"}; (await_done_atom) -> the
/// same event once the campaign is done.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "mummi/actors/structure_generator.hpp"
#include "mummi/md_bridge/structure.hpp"

namespace mummi::actors {

using await_done_atom = caf::atom_constant<caf::atom("awaitdone")>;

struct job_resources {
  std::uint32_t cores = 1;
  std::uint32_t gpus = 0;
};

struct workflow_config {
  caf::actor gateway;             ///< the head's gateway (placements go through it)
  caf::actor registry;            ///< the node registry (the WM watches it)
  caf::actor structure_generator;
  /// The campaign journal (the WM opens its own connection to it).
  std::filesystem::path journal;
  std::filesystem::path campaign_dir;
  md::structure protein;          ///< atom names etc. of the structures written for createsims
  job_resources createsims{1, 0}; ///< the paper: 1 GPU + 6 cores each
  job_resources simulation{1, 0};
  double target_ns = 1;           ///< simulation length (the paper: 600 ns)
  double frame_ps = 500;
  double checkpoint_minutes = 5;
  std::size_t buffer = 2;
  std::size_t stop_after_simulations = 0;  ///< 0: no such stopping point
  std::chrono::seconds wall_time{0};       ///< 0: none
  std::uint32_t max_attempts = 3;
  std::chrono::milliseconds backoff{1000};
  std::uint64_t seed = 1;                  ///< createsims seeds derive from it
};

/// Spawns the WM. Throws coupling::journal_error for a journal it cannot open and
/// std::invalid_argument for null actors or zero resources.
caf::actor spawn_workflow_manager(caf::actor_system& sys, workflow_config cfg);

} // namespace mummi::actors
