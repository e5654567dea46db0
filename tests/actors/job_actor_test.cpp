// The job actor with the real `gmx` on the demo system: a createsims job and then a simulation
// job on its output report progress and success; a simulation cancelled through its flag ends
// as cancelled and a new job on the same directory continues it to the end with every frame
// stored once; inputs a job cannot use fail it as bad_input, naming the problem.

#include "mummi/actors/job_actor.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/messages/registry.hpp"

#include "../support/temp_dir.hpp"

namespace msg = mummi::messages;
namespace md = mummi::md;
namespace act = mummi::actors;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path data_dir = MUMMI_SOURCE_DATA_DIR;

struct job_outcome {
  std::vector<msg::job_progress> progress;
  msg::job_finished finished;
};

class job_actor_test : public ::testing::Test {
protected:
  job_actor_test() {
    msg::add_message_types(sys_cfg_);
    auto cfg = std::make_shared<act::job_runner_config>();
    cfg->system = md::demo_system(data_dir / "demo");
    cfg->progress_period = 0ms;
    runner_ = std::move(cfg);
  }

  /// Runs `job` to its end, raising its cancel flag after `cancel_after` progress messages.
  job_outcome run(caf::actor_system& sys, const msg::job_spec& job, std::size_t cancel_after = 0) {
    caf::scoped_actor self{sys};
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    act::spawn_job_actor(sys, runner_, job, {}, self, cancel);
    job_outcome out;
    bool done = false;
    while (!done)
      self->receive(
        [&](msg::job_progress& p) {
          out.progress.push_back(p);
          if (cancel_after > 0 && out.progress.size() == cancel_after)
            *cancel = true;
        },
        [&](msg::job_finished& f) {
          out.finished = f;
          done = true;
        },
        caf::after(600s) >> [&] {
          ADD_FAILURE() << "job " << job.job_id << " did not finish";
          done = true;
        });
    return out;
  }

  msg::job_spec createsims_job(std::uint64_t id, const fs::path& input, const fs::path& work) {
    msg::job_spec j;
    j.job_id = id;
    j.kind = msg::job_kind::createsims;
    j.seed = 3;
    j.cores = 2;
    j.input_dir = input.string();
    j.work_dir = work.string();
    return j;
  }

  msg::job_spec simulation_job(std::uint64_t id, const fs::path& input, const fs::path& work,
                               double target_ns) {
    msg::job_spec j;
    j.job_id = id;
    j.kind = msg::job_kind::simulation;
    j.cores = 2;
    j.target_ns = target_ns;
    j.input_dir = input.string();
    j.work_dir = work.string();
    j.params = {{"frame_ps", "2"}, {"checkpoint_minutes", "0.005"}};
    return j;
  }

  caf::actor_system_config sys_cfg_;
  std::shared_ptr<const act::job_runner_config> runner_;
};

std::vector<std::int64_t> steps_in(const fs::path& store) {
  std::vector<std::int64_t> out;
  for (const auto& m : mummi::coupling::frame_store::open(store).read_all().meta)
    out.push_back(m.step);
  return out;
}

} // namespace

TEST_F(job_actor_test, createsims_then_simulation_then_a_cancelled_simulation_continued) {
  caf::actor_system sys{sys_cfg_};
  const mummi::test::temp_dir tmp;
  fs::create_directories(tmp / "structure");
  fs::copy_file(data_dir / "demo" / "protein.gro", tmp / "structure" / "structure.gro");

  const auto cs = run(sys, createsims_job(1, tmp / "structure", tmp / "cs"));
  ASSERT_EQ(cs.finished.status, msg::job_status::succeeded) << cs.finished.message;
  EXPECT_EQ(cs.finished.job_id, 1U);
  EXPECT_EQ(cs.finished.output_dir, (tmp / "cs").string());
  EXPECT_TRUE(fs::exists(tmp / "cs" / "production.tpr"));

  const auto sim = run(sys, simulation_job(2, tmp / "cs", tmp / "sim", 0.04));
  ASSERT_EQ(sim.finished.status, msg::job_status::succeeded) << sim.finished.message;
  EXPECT_DOUBLE_EQ(sim.finished.ns_done, 0.04);
  ASSERT_FALSE(sim.progress.empty());
  EXPECT_EQ(sim.progress.back().frames, 21U);
  EXPECT_DOUBLE_EQ(sim.progress.back().ns_done, 0.04);
  EXPECT_EQ(steps_in(tmp / "sim" / "frames.h5").size(), 21U);

  // Cancelled after 30 stored frames, then continued by a new job on the same directory.
  const auto long_job = simulation_job(3, tmp / "cs", tmp / "long", 0.4);
  const auto cancelled = run(sys, long_job, 30);
  EXPECT_EQ(cancelled.finished.status, msg::job_status::cancelled) << cancelled.finished.message;
  EXPECT_EQ(cancelled.finished.reason, msg::failure_reason::cancelled);
  const auto stored = steps_in(tmp / "long" / "frames.h5").size();
  EXPECT_GE(stored, 30U);
  EXPECT_LT(stored, 201U);
  const auto continued = run(sys, long_job);
  ASSERT_EQ(continued.finished.status, msg::job_status::succeeded) << continued.finished.message;
  std::vector<std::int64_t> every;
  for (std::int64_t s = 0; s <= 20000; s += 100)
    every.push_back(s);
  EXPECT_EQ(steps_in(tmp / "long" / "frames.h5"), every);
}

TEST_F(job_actor_test, inputs_a_job_cannot_use_fail_it_as_bad_input) {
  caf::actor_system sys{sys_cfg_};
  const mummi::test::temp_dir tmp;
  const auto no_structure = run(sys, createsims_job(7, tmp / "nothing", tmp / "cs"));
  EXPECT_EQ(no_structure.finished.status, msg::job_status::failed);
  EXPECT_EQ(no_structure.finished.reason, msg::failure_reason::bad_input);
  EXPECT_NE(no_structure.finished.message.find("structure.gro"), std::string::npos)
    << no_structure.finished.message;

  const auto no_system = run(sys, simulation_job(8, tmp / "nothing", tmp / "sim", 0.04));
  EXPECT_EQ(no_system.finished.reason, msg::failure_reason::bad_input);
  EXPECT_NE(no_system.finished.message.find("no finished createsims output"), std::string::npos)
    << no_system.finished.message;

  auto odd = simulation_job(9, tmp / "nothing", tmp / "sim", 0.04);
  odd.params.push_back({"colour", "red"});
  const auto unknown = run(sys, odd);
  EXPECT_EQ(unknown.finished.reason, msg::failure_reason::bad_input);
  EXPECT_NE(unknown.finished.message.find("'colour'"), std::string::npos)
    << unknown.finished.message;
  odd.params = {{"frame_ps", "-2"}};
  const auto negative = run(sys, odd);
  EXPECT_NE(negative.finished.message.find("frame_ps = '-2' is not a positive number"),
            std::string::npos)
    << negative.finished.message;
}
