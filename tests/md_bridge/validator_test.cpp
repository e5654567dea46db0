// The vacuum-EM validator against the real `gmx`: relaxed structures pass, overlapping ones
// do not, a batch gives the verdicts of single runs and of the naive protocol, and run inputs
// are reused.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <thread>

#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/validator.hpp"

#include "../support/md_files.hpp"

namespace md = mummi::md;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

fs::path data(const std::string& name) {
  return fs::path{MD_TEST_DATA} / "runner" / name;
}

double distance(const md::vec3& a, const md::vec3& b) {
  double d = 0;
  for (int k = 0; k < 3; ++k)
    d += (a[k] - b[k]) * (a[k] - b[k]);
  return std::sqrt(d);
}

class validator_test : public ::testing::Test {
protected:
  void SetUp() override {
    chain = md::read_gro(data("chain.gro"));
  }

  md::validator_config config() const {
    md::validator_config c;
    c.topology = data("chain.top");
    c.work_root = dir / "work";
    return c;
  }

  /// Bead `i` put exactly on bead `j`.
  md::structure bead_on(std::size_t i, std::size_t j) const {
    auto s = chain;
    s.atoms[i].position_nm = s.atoms[j].position_nm;
    return s;
  }

  md::structure scaled(float factor) const {
    auto s = chain;
    md::vec3 c{};
    for (const auto& a : s.atoms)
      for (int k = 0; k < 3; ++k)
        c[k] += a.position_nm[k] / static_cast<float>(s.atoms.size());
    for (auto& a : s.atoms)
      for (int k = 0; k < 3; ++k)
        a.position_nm[k] = c[k] + factor * (a.position_nm[k] - c[k]);
    return s;
  }

  md::structure shaken(float amplitude_nm, unsigned salt) const {
    auto s = chain;
    unsigned state = 12345u + salt;
    for (auto& a : s.atoms)
      for (auto& x : a.position_nm) {
        state = state * 1103515245u + 12345u;
        x += amplitude_nm * (static_cast<float>((state >> 8) % 2001) / 1000.0f - 1.0f);
      }
    return s;
  }

  mummi::test::temp_dir tmp_{"mummi-validator-test"};
  fs::path dir = tmp_.path();
  md::structure chain;
};

TEST_F(validator_test, accepts_a_relaxed_structure) {
  md::validator v(config());
  auto verdicts = v.validate(std::span(&chain, 1));
  ASSERT_EQ(verdicts.size(), 1u);
  const auto& r = verdicts[0];
  ASSERT_TRUE(r.accepted) << r.reason;
  EXPECT_EQ(r.code, md::verdict_code::accepted);
  EXPECT_TRUE(std::isfinite(r.epot_kj_mol));
  EXPECT_LT(std::fabs(r.epot_kj_mol), 1e7);
  EXPECT_LT(r.fmax_kj_mol_nm, 1e6);
  EXPECT_GT(r.steps, 0);
  EXPECT_GT(r.seconds, 0);
  // Returned in the input's frame: the relaxed chain needed (almost) no moving.
  ASSERT_EQ(r.positions_nm.size(), chain.atoms.size());
  for (std::size_t i = 0; i < chain.atoms.size(); ++i)
    ASSERT_LT(distance(r.positions_nm[i], chain.atoms[i].position_nm), 0.05) << i;
}

TEST_F(validator_test, returns_the_fully_minimised_structure_when_asked) {
  auto c = config();
  c.decision_fmax_kj_mol_nm = 0; // run stage 2 in full
  md::validator full(c);
  md::validator early(config());
  auto f = full.validate(std::span(&chain, 1)).front();
  auto e = early.validate(std::span(&chain, 1)).front();
  ASSERT_TRUE(f.accepted) << f.reason;
  ASSERT_TRUE(e.accepted) << e.reason;
  EXPECT_GT(f.steps, e.steps);
  EXPECT_LT(f.epot_kj_mol, e.epot_kj_mol);
  EXPECT_LT(f.fmax_kj_mol_nm, e.fmax_kj_mol_nm);
  // Minimised in place, in the input's frame: the centre stayed, beads moved.
  md::vec3 before{}, after{};
  double largest = 0;
  for (std::size_t i = 0; i < chain.atoms.size(); ++i) {
    largest = std::max(largest, distance(f.positions_nm[i], chain.atoms[i].position_nm));
    for (int k = 0; k < 3; ++k) {
      before[k] += chain.atoms[i].position_nm[k] / static_cast<float>(chain.atoms.size());
      after[k] += f.positions_nm[i][k] / static_cast<float>(chain.atoms.size());
    }
  }
  EXPECT_LT(distance(before, after), 0.2);
  EXPECT_GT(largest, 0.05);
}

TEST_F(validator_test, rejects_overlapping_beads) {
  md::validator v(config());
  std::vector<md::structure> bad = {
    bead_on(99, 399), // a bead on a bead far along the chain: its bonds span the molecule
    scaled(0.1f),     // everything on top of everything
    bead_on(200, 199) // two bonded beads at one place
  };
  auto verdicts = v.validate(bad);
  ASSERT_EQ(verdicts.size(), bad.size());
  for (std::size_t i = 0; i < bad.size(); ++i) {
    EXPECT_FALSE(verdicts[i].accepted) << i << ": " << verdicts[i].reason;
    EXPECT_TRUE(verdicts[i].positions_nm.empty());
    EXPECT_FALSE(verdicts[i].reason.empty());
  }
  EXPECT_EQ(verdicts[2].code, md::verdict_code::non_finite) << verdicts[2].reason;
  EXPECT_NE(verdicts[2].reason.find("stage 1"), std::string::npos) << verdicts[2].reason;
}

TEST_F(validator_test, thresholds_decide) {
  auto c = config();
  c.max_abs_epot_kj_mol = 10; // the relaxed chain's energy is about -1e4 kJ/mol
  c.decision_fmax_kj_mol_nm = 5;
  md::validator v(c);
  auto r = v.validate(std::span(&chain, 1)).front();
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.code, md::verdict_code::epot_too_large) << r.reason;
  EXPECT_LT(r.epot_kj_mol, -1000);
}

TEST_F(validator_test, batch_verdicts_equal_single_and_naive_verdicts) {
  md::validator v(config());
  std::vector<md::structure> batch
    = {shaken(0.05f, 1), bead_on(99, 399), shaken(0.1f, 2), bead_on(300, 301), scaled(0.6f)};
  auto together = v.validate(batch);
  auto naive = v.validate_reference(batch);
  ASSERT_EQ(together.size(), batch.size());
  ASSERT_EQ(naive.size(), batch.size());
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto alone = v.validate(std::span(&batch[i], 1)).front();
    EXPECT_EQ(together[i].code, alone.code)
      << i << ": " << together[i].reason << " / " << alone.reason;
    EXPECT_EQ(together[i].code, naive[i].code)
      << i << ": " << together[i].reason << " / " << naive[i].reason;
    // Same stage 1 and the same start of stage 2: the batch and the single run agree (to the
    // six digits a rerun's log gives, where one of them was decided by a rerun).
    if (together[i].accepted) {
      EXPECT_NEAR(together[i].epot_kj_mol, alone.epot_kj_mol, 1e-5 * std::fabs(alone.epot_kj_mol))
        << i;
      EXPECT_NEAR(together[i].fmax_kj_mol_nm, alone.fmax_kj_mol_nm, 1e-5 * alone.fmax_kj_mol_nm)
        << i;
      EXPECT_EQ(together[i].steps, alone.steps) << i;
      // The naive run went on minimising: its energy is no higher.
      EXPECT_LE(naive[i].epot_kj_mol, together[i].epot_kj_mol) << i;
      EXPECT_GE(naive[i].steps, together[i].steps) << i;
    }
    accepted += together[i].accepted ? 1 : 0;
  }
  EXPECT_GE(accepted, 2u);
  EXPECT_LT(accepted, batch.size());
}

TEST_F(validator_test, reuses_run_inputs_and_decides_by_rerun) {
  auto c = config();
  c.workers = 1; // the order of the runs below is then fixed
  md::validator v(c);
  std::vector<md::structure> first
    = {shaken(0.02f, 3), shaken(0.02f, 4), shaken(0.02f, 5), shaken(0.02f, 6)};
  for (const auto& r : v.validate(first))
    EXPECT_TRUE(r.accepted) << r.reason;
  // Stage 1: the first structure's input is grompp's, the second's is checked as a template,
  // the last two are copies of it. One rerun decided all four; for the first two, stage 2
  // ran as well to check it (by grompp's inputs: no template yet).
  auto st = v.stats();
  EXPECT_EQ(st.reused_inputs, 2u) << st.grompp_runs << " grompp runs";
  EXPECT_EQ(st.reruns, 1u);
  EXPECT_TRUE(st.reruns_trusted);
  EXPECT_EQ(st.decided_by_rerun, 2u);

  // From now on the rerun decides, with the verdicts and energies of the naive protocol's
  // first stage-2 step.
  std::vector<md::structure> second = {shaken(0.02f, 7), shaken(0.03f, 8), bead_on(300, 301)};
  auto fast = v.validate(second);
  st = v.stats();
  EXPECT_EQ(st.reruns, 2u);
  EXPECT_EQ(st.decided_by_rerun, 4u);
  auto stepwise = v.validate_reference(second);
  for (std::size_t i = 0; i < second.size(); ++i)
    EXPECT_EQ(fast[i].code, stepwise[i].code)
      << i << ": " << fast[i].reason << " / " << stepwise[i].reason;
  EXPECT_FALSE(fast[2].accepted);
}

TEST_F(validator_test, a_cancelled_batch_stops_and_leaves_no_process) {
  md::validator v(config());
  std::vector<md::structure> batch;
  for (unsigned i = 0; i < 8; ++i)
    batch.push_back(shaken(0.1f, 10 + i));
  std::atomic<bool> stop{false};
  std::thread canceller([&stop] {
    std::this_thread::sleep_for(300ms);
    stop = true;
  });
  auto started = std::chrono::steady_clock::now();
  try {
    v.validate(batch, &stop);
    ADD_FAILURE() << "a cancelled batch finished";
  } catch (const md::gmx_error& e) {
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::cancelled) << e.what();
  }
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  // No process is left working under the validator's directory.
  EXPECT_EQ(mummi::test::processes_under(dir), std::vector<pid_t>{});
}

TEST_F(validator_test, a_structure_over_its_time_limit_is_a_timeout) {
  auto c = config();
  c.structure_timeout = 1ms;
  md::validator v(c);
  auto r = v.validate(std::span(&chain, 1)).front();
  EXPECT_EQ(r.code, md::verdict_code::timeout) << r.reason;
  EXPECT_FALSE(r.accepted);
}

TEST_F(validator_test, a_structure_that_is_not_the_topologys_is_bad_input) {
  md::validator v(config());
  md::structure empty;
  auto shorter = chain;
  shorter.atoms.pop_back();
  std::vector<md::structure> batch = {empty, shorter};
  auto verdicts = v.validate(batch);
  for (const auto& r : verdicts) {
    EXPECT_EQ(r.code, md::verdict_code::bad_input) << r.reason;
    EXPECT_FALSE(r.accepted);
  }
  EXPECT_NE(verdicts[1].reason.find("does not match topology"), std::string::npos)
    << verdicts[1].reason;
}

TEST_F(validator_test, configuration_problems_are_reported_together) {
  md::validator_config c;
  c.topology = dir / "missing.top";
  c.stage1.nsteps = -1;
  c.stage1.vdw_lambda = 2;
  c.decision_fmax_kj_mol_nm = 2e6;
  try {
    md::validator v(c);
    FAIL() << "accepted a broken configuration";
  } catch (const md::md_error& e) {
    std::string what = e.what();
    for (const char* key :
         {"topology", "stage1.nsteps", "stage1.vdw_lambda", "decision_fmax_kj_mol_nm"})
      EXPECT_NE(what.find(key), std::string::npos) << key << " missing in: " << what;
  }
}

TEST_F(validator_test, the_softened_molecule_type_must_be_named_when_ambiguous) {
  const auto top = mummi::test::read_file(data("chain.top"));
  std::ofstream(dir / "two.top") << top << "OTHER  1\n";
  auto c = config();
  c.topology = dir / "two.top";
  EXPECT_THROW(md::validator{c}, md::md_error);
  c.couple_moltype = "CHAIN";
  EXPECT_NO_THROW(md::validator{c});
}

TEST_F(validator_test, validates_the_demo_protein) {
  const fs::path demo = DEMO_DATA;
  std::ofstream(dir / "demo.top") << "#include \"" << fs::absolute(demo / "forcefield.itp").string()
                                  << "\"\n#include \""
                                  << fs::absolute(demo / "protein.itp").string()
                                  << "\"\n\n[ system ]\ndemo protein in vacuum\n\n"
                                     "[ molecules ]\nDPR 1\n";
  auto c = config();
  c.topology = dir / "demo.top";
  md::validator v(c);
  auto protein = md::read_gro(demo / "protein.gro");
  auto broken = protein; // two bonded beads of the linker at one place
  broken.atoms[75].position_nm = broken.atoms[74].position_nm;
  std::vector<md::structure> batch = {protein, broken};
  auto verdicts = v.validate(batch);
  EXPECT_TRUE(verdicts[0].accepted) << verdicts[0].reason;
  EXPECT_FALSE(verdicts[1].accepted) << verdicts[1].reason;
  EXPECT_EQ(verdicts[1].code, md::verdict_code::non_finite) << verdicts[1].reason;
}

} // namespace
