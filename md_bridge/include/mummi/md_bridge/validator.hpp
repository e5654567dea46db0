#pragma once

/// Vacuum-minimisation validator for generated protein structures.
///
/// The protocol (what one structure goes through, in a cubic box large enough that the
/// molecule never meets its periodic images):
///   stage 1  steepest descent with soft-core non-bonded interactions: the free-energy code
///            couples the protein's molecule type with intramolecular interactions included
///            (couple-intramol = yes) at a lambda where Lennard-Jones is soft-cored
///            (sc-alpha/sc-power/sc-sigma) and charges are off, so that overlapping beads
///            feel finite forces and are pushed apart instead of blowing up;
///   stage 2  plain steepest descent with the full force field.
/// A structure is accepted when the energy and the largest force after stage 2 are finite and
/// below the thresholds; a GROMACS failure in either stage (non-finite energies, a fatal
/// error) rejects it.
///
/// What makes `validate` faster than running the protocol naively (one grompp + mdrun pair per
/// stage and structure, one structure at a time; `validate_reference` does exactly that):
///   - structures run in parallel, one single-threaded mdrun per core;
///   - stage 2 stops as soon as the verdict is known: once Fmax < decision_fmax_kj_mol_nm
///     (default 10,000, a hundredth of the force threshold) with Epot below its threshold.
///     Steepest descent in GROMACS (deterministic for one thread) follows the same path
///     whatever its tolerance, and only ever lowers the energy, so the full run's final
///     Epot is no higher; its Fmax could only exceed the threshold again by climbing into an
///     overlap, which a descent cannot do. When stage 2 stops early with Epot over its
///     threshold, the full stage 2 is run instead;
///   - most structures are decided before stage 2 takes its first step: one
///     `mdrun -rerun` computes the stage-2 energy and forces of up to rerun_batch stage-1
///     results at once, and a structure whose Fmax there is clearly below the decision force
///     (and Epot clearly below its threshold, all finite) is accepted as stage 2 would
///     accept it at step 0. The others run stage 2. On its first batch the validator runs
///     stage 2 as well and compares; it uses reruns only when they agree (they do not, for
///     instance, when the topology has constraints, which minimisation applies and a rerun
///     does not);
///   - grompp runs once per stage and box: later structures get a copy of its .tpr with their
///     coordinates put in (checked once per stage and box to reproduce grompp's output).
/// The benchmark (bench/validator_bench.cpp) and the tests check the verdicts agree with
/// `validate_reference`. Consequently the coordinates returned by `validate` are those at the
/// decision point (already below the thresholds), not those after the protocol's full
/// stage 2; set decision_fmax_kj_mol_nm to 0 to run stage 2 in full.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mummi/md_bridge/gmx_runner.hpp"
#include "mummi/md_bridge/structure.hpp"

namespace mummi::md {

struct soft_core_stage {
  int nsteps = 500;
  double emtol_kj_mol_nm = 1000;
  double emstep_nm = 0.01;
  /// How far Lennard-Jones is decoupled (GROMACS vdw lambda: 0 full, 1 none).
  double vdw_lambda = 0.1;
  double sc_alpha = 0.5;
  int sc_power = 1;
  double sc_sigma_nm = 0.3;
  /// Pair-list radius (verlet-buffer-tolerance = -1): GROMACS's free-energy kernel stops with
  /// a fatal error when an excluded pair (a stretched bond) gets further apart than this.
  double rlist_nm = 2.0;
};

struct minimisation_stage {
  int nsteps = 1000;
  double emtol_kj_mol_nm = 10;
  double emstep_nm = 0.01;
};

struct validator_config {
  /// A .top with [ system ] and [ molecules ] (it may #include the force field and the
  /// protein's .itp); the structures are its atoms in its order.
  std::filesystem::path topology{};
  /// Molecule type whose non-bonded interactions are softened in stage 1; empty: the only
  /// molecule type listed in the topology's [ molecules ].
  std::string couple_moltype{};
  /// mdp lines both stages share: cut-offs, electrostatics (defaults suit Martini-like CG).
  std::string nonbonded_mdp = "cutoff-scheme = Verlet\n"
                              "coulombtype = reaction-field\n"
                              "epsilon-r = 15\n"
                              "epsilon-rf = 0\n"
                              "rcoulomb = 1.1\n"
                              "rvdw = 1.1\n"
                              "vdw-modifier = potential-shift\n";
  /// `define` of both stages (e.g. "-DFLEXIBLE"); empty: none.
  std::string define{};
  soft_core_stage stage1{};
  minimisation_stage stage2{};
  /// Accept when |Fmax| < this after stage 2 (and both values are finite).
  double max_fmax_kj_mol_nm = 1e6;
  /// Accept when |Epot| < this after stage 2.
  double max_abs_epot_kj_mol = 1e7;
  /// Stage 2 stops once Fmax is below this (see above; a hundredth of max_fmax_kj_mol_nm);
  /// 0: run stage 2 in full.
  double decision_fmax_kj_mol_nm = 1e4;
  /// Parallel structures (each one single-threaded mdrun); 0: one per hardware thread.
  unsigned workers = 0;
  /// Stage-1 results decided together by one `mdrun -rerun`; 0: no reruns.
  std::size_t rerun_batch = 8;
  /// Wall-clock limit per structure, both stages together; over it the verdict is `timeout`.
  std::chrono::milliseconds structure_timeout{std::chrono::minutes{2}};
  /// Cubic box edge: the structure's largest extent + 2 x box_margin_nm, rounded up to a
  /// multiple of box_step_nm (so that similar structures share a box, and a run input).
  double box_margin_nm = 3.0;
  double box_step_nm = 2.0;
  /// Where the validator makes its work directory (mummi-validator-XXXXXX, removed with the
  /// validator); empty: the system's temporary directory.
  std::filesystem::path work_root{};
  /// Keep the work directory and each structure's GROMACS files instead of removing them.
  bool keep_files = false;
  gmx_config gmx{};
};

enum class verdict_code {
  accepted,
  fmax_too_large, ///< finite, but |Fmax| over the threshold after stage 2
  epot_too_large, ///< finite, but |Epot| over the threshold after stage 2
  non_finite,     ///< energies or forces not finite (GROMACS stopped, or the result says so)
  blew_up,        ///< LINCS or SETTLE could not hold the constraints
  gromacs_error,  ///< GROMACS stopped with another error (its text is in the reason)
  timeout,        ///< over structure_timeout
  bad_input,      ///< the structure cannot be written as a GROMACS input (e.g. no atoms)
};

/// "accepted", "fmax_too_large", ...
std::string_view to_string(verdict_code code) noexcept;

struct validation_verdict {
  bool accepted = false;
  verdict_code code = verdict_code::bad_input;
  std::string reason{}; ///< for people: the stage and what happened there
  /// After the last stage that finished (NaN when none did); read from a rerun's log (six
  /// significant digits) for a structure a rerun decided.
  double epot_kj_mol = 0;
  double fmax_kj_mol_nm = 0;
  int steps = 0;      ///< minimisation steps of both stages, as GROMACS counts them
  double seconds = 0; ///< wall clock of this structure
  /// The minimised coordinates (input atom order and frame) of an accepted structure.
  std::vector<vec3> positions_nm{};
};

/// Validates structures against one topology. Immutable after construction: `validate` may be
/// called from any thread, also concurrently; each call blocks until its batch is done.
class validator {
public:
  /// Checks the configuration (every problem at once) and writes the stages' mdp files under
  /// the work root. Throws md_error / io_error.
  explicit validator(validator_config config);
  ~validator();
  validator(const validator&) = delete;
  validator& operator=(const validator&) = delete;

  const validator_config& config() const noexcept {
    return config_;
  }

  /// One verdict per structure, in order, using `workers` parallel runs. Throws gmx_error when
  /// GROMACS cannot be run at all (not_found) or when `cancel` is raised (cancelled).
  std::vector<validation_verdict> validate(std::span<const structure> structures,
                                           const std::atomic<bool>* cancel = nullptr) const;

  /// The protocol run naively, as a reference: one structure at a time, grompp + mdrun for
  /// each stage, stage 2 in full. Same verdict codes as `validate`.
  std::vector<validation_verdict> validate_reference(std::span<const structure> structures,
                                                     const std::atomic<bool>* cancel
                                                     = nullptr) const;

  /// The mdp text of stage 1, stage 2 as the protocol defines it, and stage 2 as `validate`
  /// runs it (stopping at the decision force).
  const std::string& stage1_mdp() const noexcept {
    return mdp1_;
  }
  const std::string& stage2_mdp() const noexcept {
    return mdp2_;
  }
  const std::string& stage2_decision_mdp() const noexcept {
    return mdp2_decision_;
  }

  /// The structure as the protocol starts from it: centred in its cubic box (see
  /// box_margin_nm), without velocities.
  structure prepared(const structure& s) const;

  /// What the validator did so far (all calls together, validate_reference's included).
  struct statistics {
    std::size_t grompp_runs = 0;      ///< run inputs made by grompp (template checks included)
    std::size_t reused_inputs = 0;    ///< run inputs made from a checked template
    std::size_t reruns = 0;           ///< `mdrun -rerun` processes
    std::size_t decided_by_rerun = 0; ///< structures accepted without a stage-2 run
    bool reruns_trusted = false;      ///< the first rerun agreed with stage 2
  };
  statistics stats() const;

private:
  struct caches;
  struct started; // a structure after stage 1
  enum class stage2_mode { decide_early, full };
  std::unique_ptr<started> run_stage1(const structure& s, std::size_t index, bool reuse,
                                      const std::atomic<bool>* cancel) const;
  em_result minimise(started& st, const char* mdp, const std::filesystem::path& from,
                     const std::string& name, bool reuse, const std::atomic<bool>* cancel) const;
  validation_verdict run_stage2(started& st, stage2_mode mode, bool reuse,
                                const std::atomic<bool>* cancel) const;
  /// Stage-2 energy and largest force of each structure by one rerun; nothing for a
  /// structure the rerun cannot decide (or all, when the rerun fails).
  std::vector<std::optional<em_result>> rerun(std::vector<started*>& chunk,
                                              const std::atomic<bool>* cancel) const;
  validation_verdict judge(started& st, const em_result& em2, const std::string& final_gro) const;
  void make_tpr(const std::string& mdp, const std::filesystem::path& gro,
                const std::filesystem::path& tpr, const std::filesystem::path& dir, bool reuse,
                std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) const;

  validator_config config_;
  gmx_runner runner_;
  std::filesystem::path root_;
  std::string mdp1_, mdp2_, mdp2_decision_, mdp_rerun_;
  std::unique_ptr<caches> caches_;
};

} // namespace mummi::md
