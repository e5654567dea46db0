#include "mummi/md_bridge/createsims.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "mummi/md_bridge/gro.hpp"

#include "../support/md_files.hpp"

namespace md = mummi::md;
namespace fs = std::filesystem;

namespace {

const fs::path demo_dir = fs::path(MUMMI_DATA_DIR) / "demo";

class createsims_test : public ::testing::Test {
protected:
  md::mdrun_options two_threads() const {
    md::mdrun_options o;
    o.threads = 2;
    return o;
  }
  /// Kept when the test fails, for a look at the GROMACS logs.
  mummi::test::temp_dir tmp_{mummi::test::keep_on_failure::yes};
  fs::path dir_ = tmp_.path();
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_F(createsims_test, demo_system_equilibrates_and_runs_1000_steps_at_20_fs) {
  const auto spec = md::demo_system(demo_dir);
  const auto protein = md::read_gro(demo_dir / "protein.gro");
  auto r = md::run_createsims(spec, md::default_protocol(), protein, dir_, 11, md::gmx_config{},
                              two_threads());
  EXPECT_LE(r.builds, 2u) << ::testing::PrintToString(r.failed_builds);
  EXPECT_EQ(r.failed_builds.size(), r.builds - 1);
  EXPECT_TRUE(std::isfinite(r.minimisation.epot_kj_mol));
  EXPECT_LT(r.minimisation.epot_kj_mol, 0);
  EXPECT_LT(r.minimisation.fmax_kj_mol_nm, md::default_protocol().max_fmax_kj_mol_nm);
  ASSERT_EQ(r.stages.size(), 4u);
  EXPECT_TRUE(r.checks.problems.empty());
  EXPECT_GE(r.checks.atoms, 3000u);
  EXPECT_LE(r.checks.atoms, 10000u);
  EXPECT_EQ(r.checks.atoms, r.checks.topology_atoms);
  ASSERT_TRUE(fs::exists(r.production_tpr));

  // 1,000 steps of the production input (20 fs), then the same checks and the temperature.
  auto o = two_threads();
  o.deffnm = "production";
  o.extra_args = {"-nsteps", "1000"};
  md::gmx_runner runner{md::gmx_config{}};
  auto run = runner.mdrun(r.production_tpr, dir_, o);
  auto checks = md::check_system(run.confout, r.topology, r.checks.upper_target,
                                 r.checks.lower_target, spec.recipe, 0.6);
  for (const auto& p : checks.problems)
    ADD_FAILURE() << p;
  EXPECT_EQ(checks.solvent_in_core, 0u);
  EXPECT_GT(checks.head_distance_nm, 3.0) << "bilayer intact";
  EXPECT_EQ(checks.upper_found.size(), checks.upper_target.size());
  auto averages = md::read_md_averages(run.log);
  ASSERT_TRUE(averages.count("Temperature"));
  EXPECT_NEAR(averages["Temperature"], 310.0, 5.0);
  EXPECT_TRUE(std::isfinite(averages["Potential"]));
  ASSERT_TRUE(run.last_progress.has_value());
  EXPECT_EQ(run.last_progress->step, 1000);
}

TEST_F(createsims_test, a_minimisation_that_never_passes_is_rebuilt_a_bounded_number_of_times) {
  auto spec = md::demo_system(demo_dir);
  spec.recipe.box_x_nm = spec.recipe.box_y_nm = 6; // small: quick to minimise
  auto protocol = md::default_protocol();
  protocol.max_builds = 2;
  protocol.max_fmax_kj_mol_nm = 1e-6; // no minimisation reaches this
  protocol.minimisation.mdp.push_back({"nsteps", "20"});
  try {
    md::run_createsims(spec, protocol, md::read_gro(demo_dir / "protein.gro"), dir_, 3,
                       md::gmx_config{}, two_threads());
    FAIL() << "createsims passed a minimisation that cannot pass";
  } catch (const md::gmx_error& e) {
    FAIL() << "expected md_error after every build, got " << e.what();
  } catch (const md::md_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "every one of 2 builds failed")) << what;
    EXPECT_TRUE(contains(what, "build 1 (seed 3)")) << what;
    EXPECT_TRUE(contains(what, "build 2 (seed")) << what;
  }
}

TEST_F(createsims_test, bad_system_inputs_name_the_problem) {
  const auto protein = md::read_gro(demo_dir / "protein.gro");
  auto spec = md::demo_system(demo_dir);
  spec.protein_molecule = "KRAS";
  try {
    md::run_createsims(spec, md::default_protocol(), protein, dir_, 1, md::gmx_config{},
                       two_threads());
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_TRUE(contains(e.what(), "protein molecule 'KRAS'")) << e.what();
  }

  spec = md::demo_system(demo_dir);
  auto shorter = protein;
  shorter.atoms.pop_back();
  try {
    md::run_createsims(spec, md::default_protocol(), shorter, dir_, 1, md::gmx_config{},
                       two_threads());
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_TRUE(contains(e.what(), "126 atoms but molecule DPR has 127")) << e.what();
  }

  // A lipid whose ;@INSANE form has more beads than its molecule.
  std::ofstream(dir_ / "bad_lipid.itp") << ";@INSANE alhead=C P, allink=G G, altail=CCCC CCCC, "
                                           "alname=BAD\n[ moleculetype ]\nBAD 1\n[ atoms ]\n"
                                           "1 Q 1 BAD NC3 1 1.0\n2 Q 1 BAD PO4 2 -1.0\n";
  spec.includes.push_back(dir_ / "bad_lipid.itp");
  try {
    md::run_createsims(spec, md::default_protocol(), protein, dir_ / "w", 1, md::gmx_config{},
                       two_threads());
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_TRUE(contains(e.what(), "lipid 'BAD': its form has 12 beads but its molecule has 2"))
      << e.what();
  }

  // A solvent name no file defines is found before any GROMACS run.
  spec = md::demo_system(demo_dir);
  spec.recipe.solvent = "PW";
  try {
    md::run_createsims(spec, md::default_protocol(), protein, dir_, 1, md::gmx_config{},
                       two_threads());
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_TRUE(contains(e.what(), "molecule 'PW' (solvent or ion) is defined in none"))
      << e.what();
  }

  // A recipe naming a lipid no file defines.
  spec = md::demo_system(demo_dir);
  spec.recipe.upper.lipids = {{"POPC", 1.0}};
  EXPECT_THROW(md::run_createsims(spec, md::default_protocol(), protein, dir_, 1, md::gmx_config{},
                                  two_threads()),
               md::recipe_error);
}

TEST(md_averages, a_log_without_averages_is_an_error_naming_it) {
  const mummi::test::temp_dir dir;
  const auto log = dir.path() / "unfinished.log";
  std::ofstream(log) << "           Step           Time\n              0        0.00000\n";
  try {
    md::read_md_averages(log);
    FAIL();
  } catch (const md::io_error& e) {
    EXPECT_TRUE(contains(e.what(), log.string())) << e.what();
    EXPECT_TRUE(contains(e.what(), "did not finish")) << e.what();
  }
}
