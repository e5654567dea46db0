// The production simulation of the demo system with the real `gmx`: frames of the whole
// protein stored at every frame interval up to the target length, a finished run not run
// again; mdrun killed with SIGKILL in the middle continues from its checkpoint and the store
// ends with every frame exactly once; an index-group selection; bad specs refused listing
// every problem before anything runs.

#include "mummi/md_bridge/simulation.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/md_bridge/ensemble.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/topology.hpp"

#include "../support/md_files.hpp"

namespace md = mummi::md;
namespace cpl = mummi::coupling;
namespace fs = std::filesystem;

namespace {

const fs::path demo_dir = fs::path(MUMMI_DATA_DIR) / "demo";

/// One createsims system shared by the tests (it takes most of their time).
class simulation_run : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<mummi::test::temp_dir>("mummi-simulation-test");
    system_ = std::make_unique<md::createsims_result>(
      md::run_createsims(md::demo_system(demo_dir), md::default_protocol(),
                         md::read_gro(demo_dir / "protein.gro"), dir_->path() / "createsims", 3,
                         md::gmx_config{}, two_threads()));
  }
  static void TearDownTestSuite() {
    system_.reset();
    dir_.reset();
  }

  static md::mdrun_options two_threads() {
    md::mdrun_options o;
    o.threads = 2;
    return o;
  }

  static md::simulation_spec spec(const std::string& name, double length_ps) {
    md::simulation_spec s;
    s.name = name;
    s.protein_molecule = "DPR";
    s.length_ps = length_ps;
    s.frame_ps = 2;
    s.source = 42;
    return s;
  }

  static inline std::unique_ptr<mummi::test::temp_dir> dir_;
  static inline std::unique_ptr<md::createsims_result> system_;
};

/// Steps of every frame in a store, in order.
std::vector<std::int64_t> steps_in(const fs::path& store) {
  std::vector<std::int64_t> out;
  for (const auto& m : cpl::frame_store::open(store).read_all().meta)
    out.push_back(m.step);
  return out;
}

std::vector<std::int64_t> every_step(std::int64_t last, std::int64_t stride) {
  std::vector<std::int64_t> out;
  for (std::int64_t s = 0; s <= last; s += stride)
    out.push_back(s);
  return out;
}

/// Largest distance between bonded atoms of the protein over every frame of a store.
float longest_bond(const cpl::frame_block& frames, const fs::path& system_topology) {
  const auto top = md::read_topology(system_topology);
  const auto* dpr = md::find_molecule_type(top, "DPR");
  if (dpr == nullptr)
    return 1e9F;
  const auto bonds = md::bonded_pairs(*dpr, top.defines);
  float longest = 0;
  for (std::size_t f = 0; f < frames.frames(); ++f) {
    const auto x = frames.frame(f);
    for (const auto& [a, b] : bonds) {
      const float dx = x[3 * a] - x[3 * b], dy = x[3 * a + 1] - x[3 * b + 1],
                  dz = x[3 * a + 2] - x[3 * b + 2];
      longest = std::max(longest, std::sqrt(dx * dx + dy * dy + dz * dz));
    }
  }
  return longest;
}

} // namespace

TEST_F(simulation_run, stores_the_whole_protein_every_frame_interval_up_to_the_length) {
  const auto work = dir_->path() / "a";
  const auto store = work / "frames.h5";
  std::vector<md::simulation_progress> seen;
  const auto r = md::run_simulation(*system_, md::default_protocol(), spec("prod", 40), work,
                                    store, md::gmx_config{}, two_threads(),
                                    [&seen](const md::simulation_progress& p) { seen.push_back(p); });
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(r.resumed);
  // 40 ps at 20 fs = 2,000 steps, a frame every 100 steps, step 0 included.
  EXPECT_EQ(md::expected_frames(spec("prod", 40), 0.02), 21U);
  EXPECT_EQ(steps_in(store), every_step(2000, 100));
  EXPECT_EQ(r.frames_this_call, 21U);
  EXPECT_EQ(r.progress.frames_stored, 21U);
  EXPECT_DOUBLE_EQ(r.progress.ns_done, 0.04);
  EXPECT_GT(r.progress.ns_per_day, 0);
  EXPECT_GT(r.bytes_per_frame, 0);
  // float32 coordinates (1,524 bytes a frame) barely compress; with 21 frames the file's
  // chunk and header overhead adds about half of that.
  EXPECT_LT(r.bytes_per_frame, 2 * 127 * 12);
  ASSERT_EQ(seen.size(), 21U);
  EXPECT_EQ(seen.back().step, 2000);
  EXPECT_EQ(seen.front().step, 0);

  const auto frames = cpl::frame_store::open(store).read_all();
  EXPECT_EQ(frames.atoms, 127U);
  for (const auto& m : frames.meta) {
    EXPECT_EQ(m.source, 42);
    EXPECT_DOUBLE_EQ(m.time_ps, static_cast<double>(m.step) * 0.02);
  }
  // Made whole: every bond of the protein is short in every frame.
  EXPECT_LT(longest_bond(frames, system_->topology), 1.0F);

  // Finished: a second call runs nothing and stores nothing.
  const auto again = md::run_simulation(*system_, md::default_protocol(), spec("prod", 40), work,
                                        store, md::gmx_config{}, two_threads());
  EXPECT_TRUE(again.complete);
  EXPECT_EQ(again.frames_this_call, 0U);
  EXPECT_EQ(steps_in(store).size(), 21U);
}

TEST_F(simulation_run, mdrun_killed_mid_run_continues_from_its_checkpoint_without_losing_frames) {
  const auto work = dir_->path() / "b";
  const auto store = work / "frames.h5";
  auto s = spec("prod", 400); // 20,000 steps, 201 frames
  s.checkpoint_minutes = 0.005; // every 0.3 s
  std::atomic<bool> killed{false};
  bool threw = false;
  try {
    md::run_simulation(*system_, md::default_protocol(), s, work, store, md::gmx_config{},
                       two_threads(), [&](const md::simulation_progress& p) {
                         // Once frames are stored and a checkpoint exists, SIGKILL mdrun.
                         if (!killed && p.frames_stored >= 40 && fs::exists(work / "prod.cpt")) {
                           killed = true;
                           const auto pids = mummi::test::processes_in(work);
                           ASSERT_FALSE(pids.empty());
                           for (const auto pid : pids)
                             ::kill(pid, SIGKILL);
                         }
                       });
  } catch (const md::gmx_error& e) {
    threw = true;
    EXPECT_EQ(e.what_kind(), md::gmx_error_kind::crashed) << e.what();
  }
  ASSERT_TRUE(killed);
  ASSERT_TRUE(threw) << "the run finished before mdrun was killed";
  const auto before = steps_in(store);
  ASSERT_GE(before.size(), 40U);
  ASSERT_LT(before.size(), 201U);

  const auto r = md::run_simulation(*system_, md::default_protocol(), s, work, store,
                                    md::gmx_config{}, two_threads());
  EXPECT_TRUE(r.resumed);
  EXPECT_TRUE(r.complete);
  // Every frame once: the ones stored before the kill, then the rest from the checkpoint on.
  EXPECT_EQ(steps_in(store), every_step(20000, 100));
  EXPECT_EQ(r.frames_this_call, 201U - before.size());
  std::printf("[ numbers  ] killed after %zu frames; the restart stored %zu more; %.0f bytes "
              "per frame\n",
              before.size(), r.frames_this_call, r.bytes_per_frame);
}

TEST_F(simulation_run, an_index_group_can_be_the_selection) {
  const auto work = dir_->path() / "c";
  auto s = spec("rest", 10);
  s.selection = "Rest"; // createsims' group of everything but the solvent
  const auto r = md::run_simulation(*system_, md::default_protocol(), s, work, work / "rest.h5",
                                    md::gmx_config{}, two_threads());
  EXPECT_TRUE(r.complete);
  const auto frames = cpl::frame_store::open(work / "rest.h5").read_all();
  EXPECT_EQ(frames.frames(), 6U);
  EXPECT_GT(frames.atoms, 127U);
}

TEST(simulation_inputs, bad_specs_are_refused_before_any_run_with_every_problem_named) {
  const mummi::test::temp_dir tmp("mummi-simulation-inputs");
  md::createsims_result system;
  system.topology = tmp / "topol.top";
  system.index = tmp / "index.ndx";
  system.structure = tmp / "system.gro";
  md::topology top;
  for (const auto& f : md::demo_system(demo_dir).includes)
    md::add_include(top, fs::absolute(f).string());
  top.system_name = "inputs";
  top.molecules = {{"W", 10, {}}};
  md::write_top(top, system.topology);
  md::index_file index;
  index.add_group("Solvent", {1, 2, 3});
  md::write_ndx(index, system.index);
  md::simulation_spec s;
  s.name = "x/y";
  s.protein_molecule = "DPR";
  s.length_ps = 1.01;
  s.frame_ps = 0;
  s.checkpoint_minutes = -1;
  s.selection = "Membrane";
  try {
    md::run_simulation(system, md::default_protocol(), s, tmp / "work", tmp / "f.h5",
                       md::gmx_config{}, {});
    ADD_FAILURE() << "a bad spec was run";
  } catch (const md::md_error& e) {
    const std::string m = e.what();
    for (const char* part :
         {"name 'x/y' cannot name files", "length 1.01 ps is not a multiple of the time step",
          "frame interval 0 ps is not positive", "checkpoint interval -1 minutes",
          "the protein molecule 'DPR' is not in the system", "selection 'Membrane'",
          "its groups: Solvent"})
      EXPECT_NE(m.find(part), std::string::npos) << part << "\n" << m;
  }
  EXPECT_FALSE(fs::exists(tmp / "f.h5"));
  EXPECT_FALSE(fs::exists(tmp / "work"));
}
