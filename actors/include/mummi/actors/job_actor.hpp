#pragma once

/// The job actor: runs one job a node agent accepted, a createsims (membrane system around a
/// validated structure, minimisation, equilibration) or a production simulation of a
/// createsims output, on the cores it was given, and reports to its listener.
///
/// Messages it sends to the listener (none are answered):
/// - job_progress{job_id, ns_done, ns_per_day, frames} while a simulation stores frames (at
///   most one per `progress_period`, and the last one);
/// - job_finished{job_id, status, reason, message, output_dir, ns_done}, once, last: succeeded
///   (output_dir: the createsims output, or the simulation's work directory), failed with a
///   typed reason (blew_up for LINCS/SETTLE failures, non_finite_energy, timeout,
///   process_crashed, bad_input for a spec, file or input the job cannot use, other), or
///   cancelled when the flag was raised (mdrun got SIGTERM and wrote a checkpoint).
///
/// Inputs and outputs (`job_spec`):
/// - createsims: `input_dir`/structure.gro, the protein; output in `work_dir`; `seed` seeds the
///   build (a retry gets a new one).
/// - simulation: `input_dir` is a createsims output; runs in `work_dir` to `target_ns`, frames
///   into `work_dir`/frames.h5; a job given the same work_dir again continues from the
///   simulation's checkpoint (after a crash, on any node that sees the directory).
/// - `cores`: mdrun threads (0: the machine's); the placement's GPUs and pinning go to mdrun.
/// - `params` (simulation): `frame_ps` and `checkpoint_minutes` override the runner's; any
///   other key fails the job as bad_input.
///
/// The actor runs detached and quits after job_finished. Blocking GROMACS work happens in its
/// thread; cancellation therefore goes through the shared flag, not a message.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/gmx_runner.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::actors {

struct job_runner_config {
  md::system_spec system;          ///< the physical system (force field, lipids, protein)
  md::createsims_protocol protocol = md::default_protocol();
  md::gmx_config gmx{};
  double frame_ps = 500;           ///< simulations: between stored frames (MuMMI: 0.5 ns)
  double checkpoint_minutes = 5;   ///< simulations: mdrun -cpt
  std::chrono::milliseconds progress_period{1000};
};

/// Where on its node a job runs.
struct job_placement {
  /// The job's GPUs, comma-separated ("2,3"): mdrun's CUDA_VISIBLE_DEVICES and
  /// ROCR_VISIBLE_DEVICES (empty: none set).
  std::string gpu_ids;
  int pin_offset = -1;  ///< first core when pinning (-pin on -pinoffset); -1: no pinning
};

/// Spawns the job actor, which starts the job at once. `cancel` (shared with whoever may
/// cancel the job) stops it; it must not be null.
caf::actor spawn_job_actor(caf::actor_system& sys, std::shared_ptr<const job_runner_config> cfg,
                           messages::job_spec job, job_placement placement, caf::actor listener,
                           std::shared_ptr<std::atomic<bool>> cancel);

/// The failure reason a GROMACS error kind stands for.
messages::failure_reason failure_reason_of(md::gmx_error_kind kind) noexcept;

} // namespace mummi::actors
