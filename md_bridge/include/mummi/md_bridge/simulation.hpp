#pragma once

/// The production simulation of a createsims system: mdrun to a target length, checkpointed
/// regularly, continued from its checkpoint by every later call (after a crash of mdrun or of
/// the caller), its frames followed while mdrun writes them and appended to an HDF5 frame
/// store (the protein made whole, or an index group of the system) with no frame stored twice
/// and none lost across restarts.
///
/// `run_simulation` blocks: it runs GROMACS child processes. Call it from a thread (or detached
/// actor) that owns the work directory and the store; `cancel` stops it from another thread
/// (mdrun gets SIGTERM and writes a checkpoint).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/gmx_runner.hpp"

namespace mummi::md {

struct simulation_spec {
  std::string name = "production"; ///< names the run's files in the work directory
  std::string protein_molecule;    ///< molecule type of the protein in the system topology
  /// Frames of: "protein" (the protein molecule, made whole across periodic boundaries) or the
  /// name of a group of the system's index file (stored as GROMACS wrote them).
  std::string selection = "protein";
  double length_ps = 0;          ///< stop here (the paper's simulations: 600 ns)
  double frame_ps = 0;           ///< between stored frames; a multiple of the time step
  double checkpoint_minutes = 5; ///< mdrun -cpt: wall-clock minutes between checkpoints
  std::int64_t source = -1;      ///< frame_meta.source of every frame (the simulation's id)
  /// Seed of the starting velocities, used only when createsims left no checkpoint.
  std::uint64_t seed = 1;
  coupling::frame_store_options store{}; ///< for a new store (atoms are set from the selection)
};

struct simulation_progress {
  std::int64_t step = 0;
  double ns_done = 0;     ///< simulated so far, all calls together
  double ns_per_day = 0;  ///< of this call
  std::size_t frames_stored = 0; ///< in the store, all calls together
};

struct simulation_result {
  simulation_progress progress;
  bool resumed = false;            ///< continued from the run's own checkpoint
  bool complete = false;           ///< reached the target length
  std::size_t frames_this_call = 0;
  std::size_t frames_skipped = 0;  ///< read again after a restart, already stored
  double bytes_per_frame = 0;      ///< the store file's size / its frames
  double seconds = 0;
  std::filesystem::path trajectory;
  std::filesystem::path checkpoint;
};

/// Expected number of frames of a whole run: one every `frame_ps` from 0 to `length_ps`
/// (mdrun writes step 0 too).
std::size_t expected_frames(const simulation_spec& spec, double step_ps);

/// Runs or continues the production simulation of `system` in `work_dir` and appends its frames
/// to the store at `store_path` (created when missing; it must hold this simulation's frames
/// only). The first call writes `<name>.mdp` (the protocol's common and production entries, the
/// length, the frame output of the selection), `<name>.ndx` and `<name>.tpr`; every call runs
/// mdrun, from `<name>.cpt` when there is one (appending to the trajectory), else from the
/// start. Frames already in the store (by step) are skipped. A run that already reached its
/// length returns at once. `on_progress` is called from this thread after each stored frame.
///
/// Throws md_error listing every problem of the spec (no protein, unknown group, lengths not
/// positive or not multiples of the time step), gmx_error for a GROMACS failure (its kind names
/// the reason: lincs_failure, non_finite_energy, timeout, cancelled, crashed, ...), io_error for
/// a malformed trajectory, coupling::store_error for the store.
simulation_result run_simulation(const createsims_result& system,
                                 const createsims_protocol& protocol, const simulation_spec& spec,
                                 const std::filesystem::path& work_dir,
                                 const std::filesystem::path& store_path, const gmx_config& gmx,
                                 const mdrun_options& mdrun,
                                 const std::function<void(const simulation_progress&)>& on_progress
                                 = {},
                                 const std::atomic<bool>* cancel = nullptr);

} // namespace mummi::md
