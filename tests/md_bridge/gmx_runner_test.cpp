// The GROMACS runner against the real `gmx`: minimisation results, failures of every kind,
// timeouts, cancellation, checkpoint restarts, and no process left behind.

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

#include "mummi/coupling/child_process.hpp"
#include "mummi/md_bridge/gmx_runner.hpp"
#include "mummi/md_bridge/gro.hpp"

#include "../support/md_files.hpp"

namespace md = mummi::md;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using mummi::test::processes_in;
using mummi::test::read_file;

fs::path data(const std::string& name) {
  return fs::path{MD_TEST_DATA} / "runner" / name;
}

bool process_gone(pid_t pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

class gmx_runner_test : public ::testing::Test {
protected:
  fs::path tpr(const std::string& mdp, const fs::path& gro, const std::string& name) {
    auto r = runner.grompp({.mdp = data(mdp),
                            .structure = gro,
                            .topology = data("chain.top"),
                            .output = dir / (name + ".tpr"),
                            .work_dir = dir});
    return r.tpr;
  }

  /// The test chain with bead 100 moved onto its nearest non-bonded bead.
  fs::path overlapping_chain() {
    auto s = md::read_gro(data("chain.gro"));
    const std::size_t i = 99;
    std::size_t best = 0;
    double best_d = 1e9;
    for (std::size_t j = 0; j < s.atoms.size(); ++j) {
      if (j + 2 >= i && j <= i + 2)
        continue;
      double d = 0;
      for (int k = 0; k < 3; ++k)
        d += std::pow(s.atoms[i].position_nm[k] - s.atoms[j].position_nm[k], 2);
      if (d < best_d) {
        best_d = d;
        best = j;
      }
    }
    s.atoms[i].position_nm = s.atoms[best].position_nm;
    auto path = dir / "overlap.gro";
    md::write_gro(s, path);
    return path;
  }

  md::gmx_runner runner{md::gmx_config{}};
  mummi::test::temp_dir tmp_{"mummi-runner"};
  fs::path dir = tmp_.path();
};

TEST_F(gmx_runner_test, minimises_and_reads_the_result) {
  auto input = tpr("em.mdp", data("chain.gro"), "em");
  md::mdrun_options o;
  o.deffnm = "em";
  o.threads = 1;
  o.pin = md::pinning::off;
  auto r = runner.mdrun(input, dir / "run", o);
  EXPECT_NE(r.command_line.find("-nt 1"), std::string::npos) << r.command_line;
  EXPECT_NE(r.command_line.find("-pin off"), std::string::npos) << r.command_line;
  ASSERT_TRUE(fs::exists(r.log));
  ASSERT_TRUE(fs::exists(r.confout));
  EXPECT_EQ(md::read_gro(r.confout).atoms.size(), 750u);
  // GROMACS's own banner went to the captured stderr.
  EXPECT_NE(read_file(dir / "run" / "em.stderr").find("GROMACS"), std::string::npos);

  auto em = md::read_em_result(r.log);
  EXPECT_TRUE(std::isfinite(em.epot_kj_mol));
  EXPECT_LT(em.epot_kj_mol, 0);
  EXPECT_GT(em.fmax_kj_mol_nm, 0);
  EXPECT_GE(em.fmax_atom, 1);
  EXPECT_GT(em.fnorm_kj_mol_nm, 0);
  EXPECT_LT(em.fnorm_kj_mol_nm, em.fmax_kj_mol_nm);
  EXPECT_LE(em.fmax_atom, 750);
  EXPECT_GT(em.steps, 1);
  // emtol 10 is not reached in 200 steps from this start; the log says so and the result
  // agrees with the log's last energies.
  EXPECT_FALSE(em.converged);
  EXPECT_GT(em.fmax_kj_mol_nm, 10);
  ASSERT_TRUE(r.last_progress);
  EXPECT_EQ(r.last_progress->step, 200);
}

TEST_F(gmx_runner_test, em_summary_parsing_rejects_an_unfinished_log) {
  auto input = tpr("em.mdp", data("chain.gro"), "em");
  auto r = runner.mdrun(input, dir, {.deffnm = "em", .threads = 1});
  auto text = read_file(r.log);
  auto cut = text.find("Steepest Descents did not converge");
  ASSERT_NE(cut, std::string::npos);
  EXPECT_THROW(md::parse_em_result(text.substr(0, cut), "cut.log"), md::io_error);
  auto em = md::parse_em_result(text, r.log);
  EXPECT_EQ(em.steps, 201);
}

TEST_F(gmx_runner_test, a_run_over_its_timeout_is_killed) {
  auto input = tpr("md_endless.mdp", data("chain.gro"), "endless");
  md::mdrun_options o;
  o.threads = 1;
  o.timeout = 2s;
  auto started = std::chrono::steady_clock::now();
  auto p = runner.start_mdrun(input, dir / "run", o);
  auto pid = p.pid();
  try {
    p.wait();
    FAIL() << "an endless run ended";
  } catch (const md::gmx_error& e) {
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::timeout) << e.what();
    EXPECT_NE(std::string{e.what()}.find(p.command_line()), std::string::npos);
    EXPECT_NE(std::string{e.what()}.find((dir / "run").string()), std::string::npos);
  }
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 2s);
  EXPECT_LT(took, 20s);
  EXPECT_TRUE(process_gone(pid));
  EXPECT_TRUE(processes_in(dir / "run").empty());
}

TEST_F(gmx_runner_test, cancel_from_another_thread_stops_the_run) {
  auto input = tpr("md_endless.mdp", data("chain.gro"), "endless");
  md::mdrun_options o;
  o.threads = 1;
  o.environment = {{"MUMMI_RUNNER_TEST", "marker-42"}};
  auto p = runner.start_mdrun(input, dir / "run", o);
  auto pid = p.pid();
  std::optional<md::mdrun_progress> seen;
  std::string environ_text;
  std::thread watcher([&p, &seen, &environ_text, pid] {
    environ_text = read_file("/proc/" + std::to_string(pid) + "/environ");
    auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      seen = p.progress();
      if (seen && seen->step >= 20)
        break;
      std::this_thread::sleep_for(20ms);
    }
    p.cancel();
  });
  try {
    p.wait();
    ADD_FAILURE() << "an endless run ended";
  } catch (const md::gmx_error& e) {
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::cancelled) << e.what();
  }
  watcher.join();
  ASSERT_TRUE(seen);
  EXPECT_GE(seen->step, 20);
  EXPECT_GT(seen->time_ps, 0);
  EXPECT_NE(environ_text.find("MUMMI_RUNNER_TEST=marker-42"), std::string::npos);
  EXPECT_TRUE(process_gone(pid));
}

TEST_F(gmx_runner_test, a_shared_flag_cancels_a_blocking_run) {
  auto input = tpr("md_endless.mdp", data("chain.gro"), "endless");
  std::atomic<bool> stop{false};
  std::thread canceller([&stop] {
    std::this_thread::sleep_for(1500ms);
    stop = true;
  });
  try {
    runner.mdrun(input, dir, {.threads = 1}, &stop);
    ADD_FAILURE() << "an endless run ended";
  } catch (const md::gmx_error& e) {
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::cancelled) << e.what();
  }
  canceller.join();
  EXPECT_TRUE(processes_in(dir).empty());
}

TEST_F(gmx_runner_test, destroying_a_running_handle_kills_the_run) {
  auto input = tpr("md_endless.mdp", data("chain.gro"), "endless");
  pid_t pid = -1;
  {
    auto p = runner.start_mdrun(input, dir / "run", {.threads = 1});
    pid = p.pid();
    std::this_thread::sleep_for(500ms);
    EXPECT_FALSE(process_gone(pid));
  }
  EXPECT_TRUE(process_gone(pid));
  EXPECT_TRUE(processes_in(dir / "run").empty());
}

TEST_F(gmx_runner_test, broken_topology_is_a_fatal_error_with_gromacs_text) {
  auto top = read_file(data("chain.top"));
  auto at = top.find("  A     72.0");
  ASSERT_NE(at, std::string::npos);
  top.replace(at, 3, "  X");
  std::ofstream(dir / "broken.top") << top;
  try {
    runner.grompp({.mdp = data("em.mdp"),
                   .structure = data("chain.gro"),
                   .topology = dir / "broken.top",
                   .output = dir / "broken.tpr",
                   .work_dir = dir});
    FAIL() << "grompp accepted a topology with an undefined atom type";
  } catch (const md::gmx_error& e) {
    const auto& d = e.info();
    EXPECT_EQ(d.kind, md::gmx_error_kind::fatal_error);
    EXPECT_NE(d.message.find("Atomtype A not found"), std::string::npos) << d.message;
    EXPECT_NE(d.message.find("Fatal error:"), std::string::npos) << d.message;
    EXPECT_NE(d.source_file.find("src/gromacs/"), std::string::npos) << d.source_file;
    EXPECT_GT(d.source_line, 0);
    EXPECT_NE(d.command_line.find("grompp"), std::string::npos);
    EXPECT_NE(std::string{e.what()}.find("broken.top"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir / "broken.tpr"));
}

TEST_F(gmx_runner_test, missing_input_is_a_fatal_error) {
  try {
    runner.mdrun(dir / "missing.tpr", dir, {.threads = 1});
    FAIL() << "mdrun ran without an input";
  } catch (const md::gmx_error& e) {
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::fatal_error) << e.what();
    EXPECT_NE(e.info().message.find("missing.tpr"), std::string::npos) << e.info().message;
  }
}

TEST_F(gmx_runner_test, a_missing_gmx_program_is_not_found) {
  for (std::string program : {"/nonexistent/bin/gmx", "mummi-no-such-gmx-program"}) {
    md::gmx_runner missing{md::gmx_config{.gmx = program}};
    try {
      missing.mdrun(data("none.tpr"), dir, {});
      ADD_FAILURE() << program << " started";
    } catch (const md::gmx_error& e) {
      EXPECT_EQ(e.what_kind(), md::gmx_error_kind::not_found) << e.what();
      EXPECT_NE(std::string{e.what()}.find(program), std::string::npos) << e.what();
    }
  }
}

TEST_F(gmx_runner_test, overlapping_beads_blow_up_md) {
  auto input = tpr("blowup.mdp", overlapping_chain(), "blowup");
  try {
    runner.mdrun(input, dir, {.deffnm = "blowup", .threads = 1, .timeout = 120s});
    FAIL() << "MD from overlapping beads with every bond constrained and dt 50 fs survived";
  } catch (const md::gmx_error& e) {
    auto k = e.what_kind();
    EXPECT_TRUE(k == md::gmx_error_kind::lincs_failure
                || k == md::gmx_error_kind::non_finite_energy)
      << e.what();
    EXPECT_NE(std::string{e.what()}.find("LINCS"), std::string::npos) << e.what();
  }
}

TEST_F(gmx_runner_test, coincident_bonded_beads_give_non_finite_energy) {
  auto s = md::read_gro(data("chain.gro"));
  s.atoms[1].position_nm = s.atoms[0].position_nm;
  md::write_gro(s, dir / "coincident.gro");
  auto input = tpr("em.mdp", dir / "coincident.gro", "coincident");
  try {
    runner.mdrun(input, dir, {.deffnm = "coincident", .threads = 1});
    FAIL() << "minimisation with two bonded beads at one place succeeded";
  } catch (const md::gmx_error& e) {
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::non_finite_energy) << e.what();
  }
}

TEST_F(gmx_runner_test, a_minimisation_converging_with_nan_forces_is_non_finite) {
  // With a tolerance above the other forces, GROMACS declares convergence at step 0: its
  // Fmax skips the NaN forces of the coincident bonded pair, its "Norm of force" does not.
  auto mdp = read_file(data("em.mdp"));
  auto at = mdp.find("emtol          = 10");
  ASSERT_NE(at, std::string::npos);
  mdp.replace(at, 19, "emtol = 1e5");
  std::ofstream(dir / "loose.mdp") << mdp;
  auto s = md::read_gro(data("chain.gro"));
  s.atoms[1].position_nm = s.atoms[0].position_nm;
  md::write_gro(s, dir / "coincident.gro");
  auto input = runner
                 .grompp({.mdp = dir / "loose.mdp",
                          .structure = dir / "coincident.gro",
                          .topology = data("chain.top"),
                          .output = dir / "loose.tpr",
                          .work_dir = dir})
                 .tpr;
  try {
    runner.mdrun(input, dir, {.deffnm = "loose", .threads = 1});
    FAIL() << "a minimisation with NaN forces passed";
  } catch (const md::gmx_error& e) {
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::non_finite_energy) << e.what();
  }
  auto em = md::read_em_result(dir / "loose.log");
  EXPECT_TRUE(em.converged);
  EXPECT_TRUE(std::isfinite(em.fmax_kj_mol_nm));
  EXPECT_TRUE(std::isnan(em.fnorm_kj_mol_nm));
}

TEST_F(gmx_runner_test, a_checkpoint_restart_continues_the_run) {
  auto input = tpr("md.mdp", data("chain.gro"), "md");
  md::mdrun_options first;
  first.threads = 1;
  first.extra_args = {"-nsteps", "200"};
  auto r1 = runner.mdrun(input, dir / "run", first);
  ASSERT_TRUE(r1.last_progress);
  EXPECT_EQ(r1.last_progress->step, 200);
  ASSERT_TRUE(fs::exists(r1.checkpoint));

  md::mdrun_options second;
  second.threads = 1;
  second.checkpoint = r1.checkpoint;
  auto r2 = runner.mdrun(input, dir / "run", second);
  ASSERT_TRUE(r2.last_progress);
  EXPECT_EQ(r2.last_progress->step, 400);
  EXPECT_DOUBLE_EQ(r2.last_progress->time_ps, 8.0);
  auto log = read_file(r2.log);
  EXPECT_NE(log.find("Restarting from checkpoint"), std::string::npos);
  // The continuation did not start again from step 0: one "Step 0" header only.
  std::size_t zero_headers = 0;
  for (auto at = log.find("\n              0        0.00000"); at != std::string::npos;
       at = log.find("\n              0        0.00000", at + 1))
    ++zero_headers;
  EXPECT_EQ(zero_headers, 1u);
}

TEST_F(gmx_runner_test, diagnosis_of_gromacs_output_texts) {
  // What GROMACS printed in the runs above, reduced to the lines the diagnosis reads.
  auto d = md::diagnose_gmx_output("Step 10, time 0.5 (ps)  LINCS WARNING\n"
                                   "relative constraint deviation after LINCS:\n");
  ASSERT_TRUE(d.kind);
  EXPECT_EQ(*d.kind, md::gmx_error_kind::lincs_failure);
  EXPECT_FALSE(md::diagnose_gmx_output("Steepest Descents converged to Fmax < 10\n").kind);
  d = md::diagnose_gmx_output("-------------------------------------------------------\n"
                              "Program:     gmx mdrun, version 2022.5\n"
                              "Source file: src/gromacs/mdlib/constr.cpp (line 123)\n"
                              "\n"
                              "Fatal error:\n"
                              "Too many LINCS warnings (1044)\n"
                              "\n"
                              "For more information and tips for troubleshooting\n");
  ASSERT_TRUE(d.kind);
  EXPECT_EQ(*d.kind, md::gmx_error_kind::lincs_failure);
  EXPECT_EQ(d.source_file, "src/gromacs/mdlib/constr.cpp");
  EXPECT_EQ(d.source_line, 123);
  EXPECT_EQ(d.message, "Fatal error:\nToo many LINCS warnings (1044)");
}

} // namespace
