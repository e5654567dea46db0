#pragma once

// Pieces shared by the runs of a createsims system (ensemble.cpp, simulation.cpp): problem
// lists, step counts, index-group numbering, the protein's place in the system and how a run
// starts its velocities. Private to mummi::md.

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mummi/md_bridge/gmx_runner.hpp"
#include "mummi/md_bridge/xtc.hpp"

#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/ensemble.hpp"
#include "mummi/md_bridge/mdp.hpp"

namespace mummi::md::detail {

/// "head" followed by one indented line per problem.
inline std::string join_problems(const std::string& head, const std::vector<std::string>& problems) {
  auto s = head;
  for (const auto& p : problems)
    s += "\n  " + p;
  return s;
}

inline std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

/// `value / dt` when it is a whole number of steps.
inline std::optional<std::int64_t> steps_of(double value, double dt) {
  const double n = value / dt;
  if (!std::isfinite(n) || std::abs(n - std::round(n)) > 1e-6)
    return std::nullopt;
  return std::llround(n);
}

/// GROMACS index numbers (1-based) of `count` atoms from `first` (0-based).
inline std::vector<std::int32_t> numbers_1_based(std::size_t first, std::size_t count) {
  std::vector<std::int32_t> v(count);
  for (std::size_t i = 0; i < count; ++i)
    v[i] = static_cast<std::int32_t>(first + i + 1);
  return v;
}

inline std::vector<std::int32_t> numbers_1_based(const std::vector<std::size_t>& atoms) {
  std::vector<std::int32_t> v;
  v.reserve(atoms.size());
  for (auto a : atoms)
    v.push_back(static_cast<std::int32_t>(a + 1));
  return v;
}

/// Where the first copy of molecule `protein_molecule` lies in a system topology.
struct protein_search {
  protein_in_system protein; ///< first atom, atoms, bonds; cv.membrane as below; cv.domain empty
  bool found = false;        ///< the protein is in [ molecules ]
  bool complete = true;      ///< false: the scan stopped at a molecule without a type
};

/// Scans [ molecules ] for the protein, gathering the beads of `membrane_molecules` into
/// `cv.membrane` on the way. Appends to `problems` a molecule without a type (the scan stops
/// there) or the protein not being in [ molecules ].
protein_search find_protein(const topology& top, const std::string& protein_molecule,
                            const std::vector<std::string>& membrane_molecules,
                            std::vector<std::string>& problems);

/// The parameters of a production-like run: the protocol's common and production entries.
mdp production_params(const createsims_protocol& protocol);

/// The checkpoint createsims left beside its last structure, if there is one.
std::optional<std::filesystem::path> system_checkpoint(const createsims_result& system);

/// Sets a run from a createsims system: starting at step 0, `nsteps` steps, compressed output
/// of index group `group` every `frame_steps`, and continuing from the system's checkpoint
/// (velocities kept) when there is one, else velocities drawn at the protocol's ref-t from
/// `seed`.
void set_run(mdp& params, std::int64_t nsteps, std::int64_t frame_steps, const std::string& group,
             bool continuing, std::uint64_t seed);

/// grompp's input for a run from `system` (its structure, topology and, when any, checkpoint).
grompp_input system_run_input(const createsims_result& system, const std::filesystem::path& mdp,
                              const std::filesystem::path& ndx, const std::filesystem::path& tpr,
                              const std::filesystem::path& work_dir);

/// A GROMACS runner that keeps no backup copies of the files it overwrites.
gmx_runner run_runner(const gmx_config& gmx);

/// Runs mdrun on `tpr` in `work_dir` (in a thread of its own) while this thread follows the
/// trajectory `xtc` it writes, giving each new frame to `take` as soon as it is complete
/// (`reader_options` may skip frames stored before). Raising `cancel` stops mdrun (SIGTERM; it
/// writes a checkpoint) and the run ends with gmx_error(cancelled). After mdrun ends, the
/// frames left are taken; mdrun's failure is rethrown, and a trajectory that ends with an
/// incomplete frame is an io_error. Exceptions from `take` stop mdrun and are rethrown.
mdrun_result run_and_follow(const gmx_runner& runner, const std::filesystem::path& tpr,
                            const std::filesystem::path& work_dir, const mdrun_options& options,
                            const std::filesystem::path& xtc,
                            const xtc_stream_options& reader_options,
                            const std::function<void(const xtc_frame&)>& take,
                            const std::atomic<bool>* cancel);

} // namespace mummi::md::detail
