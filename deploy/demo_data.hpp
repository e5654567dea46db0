#pragma once

// `mummi demo-data`: the training frames of the demo campaign. One createsims system of the
// demo protein, then two restrained ensembles of it: state A (DOM2 held on the membrane, where
// the demo protein's structure puts it) and state B (DOM2 held away from the membrane), their
// protein frames written to one frame store, and the demo model (round 0) trained on them.

#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace mummi::deploy {

struct demo_data_options {
  std::filesystem::path out;  ///< frames.h5 and model.ae go here (neither is ever replaced)
  std::filesystem::path work; ///< the simulations' folders (default: out/simulations)
  double ns_per_state = 2.5; ///< run length of each ensemble (ns)
  double frame_ps = 4;       ///< between stored frames (ps)
  double discard_ps = 500;   ///< frames up to this time of each run are not kept (ps)
  unsigned threads = 0;      ///< mdrun threads (0: mdrun decides)
  std::uint64_t seed = 1;    ///< seed of the createsims build
  std::string gmx = "gmx";   ///< the GROMACS program
  /// The states: restraint references of DOM2's height above the membrane mid-plane (nm) and
  /// the restraint's force constant. A is where createsims leaves DOM2 (2.9-3.0 nm); B is
  /// 2.5 nm farther, well within the 10-bead linker's reach and half the box height.
  double state_a_nm = 3.0;
  double state_b_nm = 5.5;
  double force_constant_kj_mol_nm2 = 1000;
};

/// Registers the subcommand's options into `options` (which must outlive parsing).
CLI::App* add_demo_data_command(CLI::App& app, demo_data_options& options);

/// Makes the demo frames as `options` says from the demo system under `data_dir` (which holds
/// demo/), logs progress on stderr and prints a summary; returns the exit code. Throws for a
/// failure (an existing frames.h5, bad options, a GROMACS or store error).
int run_demo_data(const demo_data_options& options, const std::filesystem::path& data_dir);

} // namespace mummi::deploy
