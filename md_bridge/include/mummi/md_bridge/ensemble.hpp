#pragma once

/// Restrained ensembles of a conformational state: production MD of a createsims system with an
/// umbrella restraint on the height of one protein domain above the membrane, the protein's
/// frames kept (made whole) for the frame store. Also the tools it needs: making a molecule
/// whole across periodic boundaries, and the collective variable (the domain's height above
/// the membrane mid-plane).
///
/// `run_ensemble` blocks: it runs GROMACS child processes. Call it from a thread (or detached
/// actor) that owns the work directory; `cancel` stops it from another thread. The other
/// functions are pure and thread-safe.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/gmx_runner.hpp"
#include "mummi/md_bridge/ndx.hpp"
#include "mummi/md_bridge/structure.hpp"
#include "mummi/md_bridge/topology.hpp"

namespace mummi::md {

/// Two bonded atoms of one molecule (0-based).
using atom_pair = std::pair<std::size_t, std::size_t>;

/// The bonded pairs of `m` ([ bonds ] and [ constraints ] lines whose condition holds for
/// `defines`), 0-based.
std::vector<atom_pair> bonded_pairs(const molecule_type& m,
                                    const std::set<std::string, std::less<>>& defines = {});

/// The order in which `make_whole` places a molecule's atoms: a breadth-first walk of the bond
/// graph from atom 0, each step placing `to` from `from`, which is already placed. Made once per
/// molecule, used for every frame.
struct whole_walk {
  std::size_t atoms = 0;
  std::vector<atom_pair> steps; ///< (from, to), in placing order; atoms - 1 of them
};

/// Plans the walk. Throws md_error naming the bond for an atom index not below `atoms`, and
/// naming the first atoms (and how many in all) that no chain of bonds joins to atom 0.
whole_walk plan_whole_walk(std::size_t atoms, std::span<const atom_pair> bonds);

/// Makes one molecule whole: atom 0 stays; every other atom is moved by whole box vectors to
/// the periodic image nearest the atom it is bonded to along the walk (minimum image per bond,
/// shifting along c, then b, then a, as GROMACS does for triclinic boxes). Bonds must be shorter
/// than half the smallest box edge. Throws md_error when `positions_nm` does not hold
/// `walk.atoms` atoms, or when the box has an edge of zero length.
void make_whole(std::span<vec3> positions_nm, const whole_walk& walk, const box_matrix& box_nm);

/// plan_whole_walk + make_whole, for one frame.
void make_whole(std::span<vec3> positions_nm, std::span<const atom_pair> bonds,
                const box_matrix& box_nm);

/// The two atom groups of the collective variable, 0-based system atom indices.
struct cv_groups {
  std::vector<std::size_t> domain;   ///< the protein domain whose height is measured
  std::vector<std::size_t> membrane; ///< every lipid bead
};

/// The collective variable: z of the domain's centre minus the membrane mid-plane (the mean z of
/// the membrane beads), in nm, positive above the membrane. Every bead counts equally (with
/// beads of equal mass, as in the demo system, the centre is the centre of mass GROMACS pulls
/// on). Periodic in z: each group is gathered around its own circular mean height before
/// averaging, and the difference is the minimum image, in [-box_z/2, box_z/2]. Throws md_error
/// for an empty group, an atom index out of range or a box without a z edge.
double domain_height_nm(std::span<const vec3> positions_nm, const box_matrix& box_nm,
                        const cv_groups& groups);
double domain_height_nm(const structure& s, const cv_groups& groups);

/// Where the protein lies in a system and which of its atoms form each group.
struct protein_in_system {
  std::size_t first_atom = 0; ///< 0-based index of the protein's first atom in the system
  std::size_t atoms = 0;
  std::vector<atom_pair> bonds; ///< within the protein, 0-based
  cv_groups cv;                 ///< system indices
};

/// Finds the (first) protein molecule `protein_molecule` in the system topology `top`, the
/// atoms of group `domain_group` of `protein_groups` (an .ndx of the protein alone, atom
/// numbers 1-based within the protein) and the beads of every molecule named in
/// `membrane_molecules`. Throws md_error listing every problem: protein molecule not in the
/// system, group missing (naming the groups there are) or empty or with atom numbers beyond the
/// protein, no membrane molecule in the system.
protein_in_system locate_protein(const topology& top, const std::string& protein_molecule,
                                 const index_file& protein_groups, const std::string& domain_group,
                                 const std::vector<std::string>& membrane_molecules);

/// One restrained ensemble.
struct ensemble_spec {
  std::string name = "ensemble";               ///< names the run's files in the work directory
  std::string protein_molecule;                ///< molecule type of the protein in the topology
  index_file protein_groups;                   ///< groups of the protein alone (e.g. protein.ndx)
  std::string domain_group = "DOM2";           ///< the group whose height is restrained
  std::vector<std::string> membrane_molecules; ///< lipid molecule types forming the membrane
  double reference_nm = 0;                     ///< restraint reference of the domain height
  double force_constant_kj_mol_nm2 = 1000;
  double run_ps = 0;   ///< length of the run; a multiple of the time step
  double frame_ps = 0; ///< between stored frames; a multiple of the time step
  /// Frames at or before this time (from the run's start) are not kept: the restraint pulls
  /// the domain to its reference meanwhile.
  double discard_ps = 0;
  std::int32_t label = coupling::no_label; ///< frame_meta.label of every frame
  std::int64_t source = -1;                ///< frame_meta.source of every frame
  /// Seed of the starting velocities, used only when the system has no checkpoint to continue
  /// from.
  std::uint64_t seed = 1;
};

struct ensemble_result {
  /// The protein's beads (made whole) of every kept frame; meta: step and time of the run
  /// (starting at 0), the spec's label and source.
  coupling::frame_block frames;
  /// Per kept frame: the restrained coordinate as GROMACS computed it at the frame's step (the
  /// domain's centre-of-mass height above the membrane's, in nm).
  std::vector<double> cv_nm;
  double ns_per_day = 0;
  double seconds = 0;                    ///< grompp + mdrun, wall clock
  std::filesystem::path trajectory;      ///< the protein-only .xtc
  std::filesystem::path pull_output;     ///< the pull coordinate over time (.xvg)
  std::filesystem::path final_structure; ///< the whole system at the last step (.gro)
  mdrun_result run;
};

/// Expected number of kept frames of `spec`: frames after `discard_ps` up to `run_ps`.
std::size_t expected_frames(const ensemble_spec& spec);

/// Runs one restrained ensemble from the equilibrated system of `system` in `work_dir`
/// (created; earlier output of the same name is replaced): writes `<name>.mdp` (the protocol's
/// common and production entries, then the run length, the protein-only compressed output every
/// `frame_ps` and the pull restraint), `<name>.ndx`, runs grompp and mdrun, follows the XTC
/// while mdrun writes it, and returns the frames after the discard time. Continues from the
/// system's checkpoint when there is one (the equilibration's last), otherwise draws velocities
/// at 310 K from `spec.seed`.
///
/// Throws md_error listing every problem of the spec (no protein, missing or empty group,
/// lengths not positive or not multiples of the time step, a discard not shorter than the run,
/// no frame after the discard, a reference the box cannot hold), gmx_error for a GROMACS
/// failure (including timeout and cancellation), io_error for a malformed trajectory or pull
/// output, or when the run ended with fewer frames than expected.
ensemble_result run_ensemble(const createsims_result& system, const createsims_protocol& protocol,
                             const ensemble_spec& spec, const std::filesystem::path& work_dir,
                             const gmx_config& gmx, const mdrun_options& mdrun,
                             const std::atomic<bool>* cancel = nullptr);

} // namespace mummi::md
