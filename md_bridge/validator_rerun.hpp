#pragma once

/// Reading what `gmx mdrun -rerun` computes for many structures at once: the potential energy
/// of every frame from md.log and the forces of every frame from the .trr (nstfout = 1).
/// Internal to the validator.

#include <cstddef>
#include <filesystem>
#include <string_view>
#include <vector>

namespace mummi::md::detail {

struct frame_forces {
  std::size_t atoms = 0;
  /// Largest force norm, computed as GROMACS's minimisers do (in the file's precision; a
  /// non-finite force is skipped there too).
  double fmax_kj_mol_nm = 0;
  int fmax_atom = 0;        ///< 1-based
  double rms_kj_mol_nm = 0; ///< root mean square of the force norms
  bool finite = true;       ///< every force component is finite
};

/// One entry per frame of a .trr. Throws io_error naming the file when it is not a .trr, is
/// truncated, or a frame holds no forces.
std::vector<frame_forces> read_trr_forces(const std::filesystem::path& trr);

/// The "Potential" value of every "Energies" block of a rerun's md.log text, in order (a
/// closing "A V E R A G E S" section is not a frame). Non-finite values are returned as such.
/// Throws io_error naming `log_name` when a block has no "Potential" entry.
std::vector<double> rerun_potentials(std::string_view log_text,
                                     const std::filesystem::path& log_name);

} // namespace mummi::md::detail
