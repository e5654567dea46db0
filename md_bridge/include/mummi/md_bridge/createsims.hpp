#pragma once

/// Createsims: from a protein structure to a production-ready GROMACS run input. Build the
/// membrane system around the protein, minimise it with position restraints (rebuilding with
/// a new seed when minimisation fails, a bounded number of times), run the equilibration
/// stages, check the result, and prepare the production input.
///
/// Blocking: runs GROMACS child processes. Call from a thread (or detached actor) that owns the
/// work directory; `cancel` stops the running stage from another thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mummi/md_bridge/gmx_runner.hpp"
#include "mummi/md_bridge/membrane_builder.hpp"
#include "mummi/md_bridge/structure.hpp"
#include "mummi/md_bridge/topology.hpp"

namespace mummi::md {

using mdp_entries = std::vector<std::pair<std::string, std::string>>;

/// One GROMACS run of the protocol: its mdp entries on top of the protocol's common ones.
struct md_stage {
  std::string name;
  mdp_entries mdp;
  /// Give grompp the starting structure as restraint reference (`-r`); the stage's mdp turns
  /// the restraints on (e.g. `define = -DPOSRES`).
  bool restrained = false;
};

/// The physical system: force field and molecule files, the lipid templates, the protein.
struct system_spec {
  /// `#include`d by the system's topology in this order: the force field first, then every
  /// molecule file (solvent, ions, lipids, protein).
  std::vector<std::filesystem::path> includes;
  /// Extra lipid templates in insane's form (optional); lipids whose molecule file carries an
  /// `;@INSANE` line need none.
  std::filesystem::path lipid_templates;
  std::string protein_molecule;  ///< molecule type of the protein in `includes`
  std::size_t anchor_atom = 0;   ///< 0-based atom of the protein placed at `anchor_depth_nm`
  double anchor_depth_nm = 0.3;  ///< above the bilayer mid-plane
  /// The membrane, solvent and ions; its `protein` is filled from each structure.
  membrane_recipe recipe;
};

/// The protocol (MuMMI's: EM with restraints, equilibration ramping dt, production).
struct createsims_protocol {
  mdp_entries common;                 ///< entries every stage shares (cut-offs, electrostatics)
  md_stage minimisation;
  std::vector<md_stage> equilibration;
  md_stage production;                ///< only prepared (grompp), not run
  int max_builds = 10;                ///< build attempts (new seed each) before giving up
  /// A minimisation passes when its energies are finite and Fmax is below this.
  double max_fmax_kj_mol_nm = 1e4;
  /// Half-thickness of the membrane core that must hold no solvent after equilibration.
  double core_half_thickness_nm = 0.6;
  std::chrono::seconds stage_timeout{3600};
};

/// The protocol of the demo system and of Martini 3 systems (REFERENCE: MuMMI's createsims):
/// dt 2 -> 10 -> 20 fs with restraints released in the last stage; reaction-field,
/// epsilon_r 15, 1.1 nm cut-offs, v-rescale 310 K, semi-isotropic c-rescale.
createsims_protocol default_protocol();

/// The demo system of data/demo/ (`data_dir`), 9 x 9 x 13 nm, about 9,000 beads.
system_spec demo_system(const std::filesystem::path& data_dir);

/// Writes the topology of the system's protein alone (in vacuum, as the validator needs it):
/// the system's includes (as absolute paths) and one protein molecule. Throws io_error.
void write_protein_topology(const system_spec& spec, const std::filesystem::path& top,
                            const std::string& system_name);

/// What createsims checked on its output.
struct system_checks {
  std::size_t atoms = 0;            ///< in the structure file
  std::size_t topology_atoms = 0;   ///< as [ molecules ] counts them
  double net_charge = 0;
  /// Lipids per species found in each leaflet of the final structure vs the builder's target.
  std::vector<molecule_block> upper_found, upper_target, lower_found, lower_target;
  std::size_t solvent_in_core = 0;  ///< solvent beads within the core half-thickness
  double head_distance_nm = 0;      ///< mean head height of the upper minus the lower leaflet
  /// Problems found (empty = all checks passed).
  std::vector<std::string> problems;
};

struct stage_report {
  std::string name;
  double seconds = 0;
  std::size_t attempt = 0;
};

struct createsims_result {
  std::filesystem::path production_tpr;
  std::filesystem::path structure;  ///< the equilibrated system (.gro)
  std::filesystem::path topology;   ///< topol.top
  std::filesystem::path index;      ///< index.ndx (Solvent, Rest)
  std::size_t builds = 0;           ///< build attempts made
  std::vector<std::string> failed_builds; ///< why each earlier build was given up
  std::uint64_t seed = 0;           ///< seed of the build that went on
  em_result minimisation;
  std::vector<stage_report> stages;
  system_checks checks;
};

/// Checks a system structure against its topology and the lipid counts wanted per leaflet:
/// atom count, net charge, each leaflet within one lipid of its target (a lipid's leaflet is
/// the side of its first bead, its head, relative to the local mid-plane: the mean z of lipid
/// beads over a 1.5 nm grid), head groups of the two leaflets at least 2 nm apart, no solvent
/// (`recipe`'s solvent and ion names) within `core_half_nm` of the local mid-plane.
system_checks check_system(const std::filesystem::path& gro, const std::filesystem::path& top,
                           const std::vector<molecule_block>& upper_target,
                           const std::vector<molecule_block>& lower_target,
                           const membrane_recipe& recipe, double core_half_nm);

/// The "A V E R A G E S" block of an md.log: energy term -> average ("Temperature",
/// "Pressure (bar)", ...). Throws io_error naming the log when it has none (the run did not
/// finish).
std::map<std::string, double> read_md_averages(const std::filesystem::path& log);

/// Lipid templates of every molecule type of `t` that carries an `;@INSANE` annotation.
std::vector<lipid_template> lipid_templates_from(const topology& t);

/// Runs the whole pipeline in `dir` (created if needed). A build whose minimisation or
/// equilibration fails in GROMACS, or whose equilibrated system fails its checks, is replaced
/// by a new build with another seed, at most `protocol.max_builds` builds in all. Throws
/// gmx_error for a failure rebuilding cannot fix (timeout, cancellation, no gmx program),
/// recipe_error for an unusable recipe, md_error when every build failed (the message says
/// why each did).
/// The output of a run_createsims that finished in `dir` with `protocol` (made earlier, or on
/// another node): topology, index, the last equilibration stage's structure and the production
/// input; the build reports are not kept. Throws io_error naming the first missing file (the
/// production input is written last, so its absence means the run did not finish).
createsims_result createsims_output(const std::filesystem::path& dir,
                                    const createsims_protocol& protocol);

createsims_result run_createsims(const system_spec& system, const createsims_protocol& protocol,
                                 const structure& protein, const std::filesystem::path& dir,
                                 std::uint64_t seed, const gmx_config& gmx,
                                 const mdrun_options& mdrun, const std::atomic<bool>* cancel = nullptr);

} // namespace mummi::md
