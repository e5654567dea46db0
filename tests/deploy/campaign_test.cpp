// A small real campaign: a head (gateway, node registry, structure generator with the demo
// model, workflow manager, one journal) and real `mummi node` processes with the real `gmx`:
// structures are generated and validated, createsims and short simulations run on the nodes
// until the stopping point (a second node that joins mid-campaign gets work at once), the
// journal records every job, attempt and feedback, and each simulation's frames are stored
// once. Then: a head killed and resumed, a node killed, a job that always fails.

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <map>
#include <string>
#include <vector>

#include "mummi/actors/node_registry.hpp"
#include "mummi/actors/structure_generator.hpp"
#include "mummi/actors/workflow_manager.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/coupling/frame_store.hpp"
#include "mummi/coupling/gateway.hpp"
#include "mummi/coupling/journal.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/messages/messages.hpp"

#include "../support/md_files.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
namespace act = mummi::actors;
namespace md = mummi::md;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path data_dir = MUMMI_DATA_DIR;

struct run_result {
  int status = -1;
  std::string out, err;
};

/// Runs mummi to its end (up to 300 s) with stdout and stderr in files named after `prefix`.
run_result run_mummi_child(std::vector<std::string> args, const fs::path& prefix) {
  args.insert(args.begin(), MUMMI_PATH);
  cpl::spawn_options o;
  o.stdout_file = prefix.string() + ".out";
  o.stderr_file = prefix.string() + ".err";
  cpl::child_process p(std::move(args), {}, o);
  run_result r;
  r.status = p.wait_for(300s).value_or(-1);
  r.out = mummi::test::read_file(o.stdout_file);
  r.err = mummi::test::read_file(o.stderr_file);
  return r;
}

/// The first value the sqlite3 shell prints for `sql`, without its line end.
std::string sqlite_value(const fs::path& db, const std::string& sql) {
  const std::string cmd = "sqlite3 '" + db.string() + "' \"" + sql + "\"";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr)
    return "popen failed";
  char buf[256] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  std::string v = got ? buf : "";
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r'))
    v.pop_back();
  return v;
}

} // namespace

TEST(campaign, a_small_campaign_runs_to_its_stopping_point_and_a_node_joining_gets_work) {
  const mummi::test::temp_dir tmp;
  const fs::path campaign = tmp / "campaign";
  fs::create_directories(campaign);
  const fs::path journal_path = campaign / "journal.sqlite";

  cpl::system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  cpl::context ctx;
  cpl::gateway_config gc;
  gc.node_id = "head";
  gc.bind = "tcp://127.0.0.1:*";
  gc.heartbeat_period = 200ms;
  cpl::gateway gw{sys, ctx, gc};
  auto log = std::make_shared<spdlog::logger>("test",
                                              std::make_shared<spdlog::sinks::null_sink_mt>());
  const auto registry = act::spawn_node_registry(sys, gw.handle(), {"head", "test", 200ms}, log);

  const auto protein = md::read_gro(data_dir / "demo" / "protein.gro");
  auto sg_cfg = act::structure_generator_for(md::demo_system(data_dir / "demo"), protein,
                                             data_dir / "demo" / "model.ae",
                                             {data_dir / "demo" / "frames.h5"}, tmp / "sg");
  sg_cfg.sampler.sampler = "ot_feedback";
  sg_cfg.buffer = 1;
  sg_cfg.factor_extra = 1;
  sg_cfg.batch = 4;
  sg_cfg.validator.validator.workers = 1;
  sg_cfg.journal = std::make_shared<cpl::journal>(
    cpl::journal::open(journal_path, cpl::journal_mode::create));
  const auto sg = act::spawn_structure_generator(sys, sg_cfg);

  act::workflow_config wc;
  wc.gateway = gw.handle();
  wc.registry = registry;
  wc.structure_generator = sg;
  wc.journal = journal_path;
  wc.campaign_dir = campaign;
  wc.protein = protein;
  wc.createsims = {2, 0};
  wc.simulation = {2, 0};
  wc.target_ns = 0.02; // 1,000 steps of 20 fs
  wc.frame_ps = 2;
  wc.checkpoint_minutes = 0.05;
  wc.buffer = 2;
  wc.stop_after_simulations = 3;
  const auto wm = act::spawn_workflow_manager(sys, wc);

  const auto start_node = [&](const std::string& id) {
    cpl::spawn_options o;
    o.stderr_file = tmp / (id + ".log");
    return cpl::child_process({MUMMI_PATH, "node", "--head", gw.endpoint(), "--node-id", id,
                               "--cores", "2", "--gpus", "0", "--heartbeat-ms", "200",
                               "--grace-s", "5"},
                              {}, o);
  };
  auto n1 = start_node("n1");
  // n2 joins once n1 is busy (every job takes both of a node's cores).
  caf::scoped_actor self{sys};
  for (bool busy = false; !busy;) {
    self->request(wm, 10s, act::stats_atom::value)
      .receive([&](msg::monitor_event& e) { busy = msg::fields_of(e)["cores_busy"] == "2"; },
               [&](caf::error& e) { FAIL() << sys.render(e); });
    self->receive(caf::after(100ms) >> [] {});
  }
  auto n2 = start_node("n2");

  std::map<std::string, std::string> done;
  self->request(wm, 600s, act::await_done_atom::value)
    .receive([&](msg::monitor_event& e) { done = msg::fields_of(e); },
             [&](caf::error& e) { ADD_FAILURE() << sys.render(e); });
  ASSERT_FALSE(done.empty()) << mummi::test::read_file(tmp / "n1.log");
  EXPECT_EQ(done["simulation_succeeded"], "3");
  EXPECT_EQ(done["createsims_succeeded"], "3");
  EXPECT_EQ(done["createsims_failed"], "0");
  EXPECT_EQ(done["nodes"], "2");
  EXPECT_DOUBLE_EQ(std::stod(done["ns_simulated"]), 0.06);

  // The journal (its own connection): every job with one attempt, some of them on the node
  // that joined, each simulation's frames once, three createsims outcomes fed back.
  const auto j = cpl::journal::open(journal_path, cpl::journal_mode::open);
  std::size_t simulations = 0, on_n2 = 0;
  for (const auto& job : j.jobs()) {
    EXPECT_EQ(job.state, cpl::job_state::succeeded) << job.job_id << " " << job.message;
    on_n2 += job.node == "n2";
    EXPECT_EQ(j.attempt_count(job.job_id), 1U);
    if (job.kind != msg::job_kind::simulation)
      continue;
    simulations += 1;
    const auto frames = cpl::frame_store::open(fs::path(job.work_dir) / "frames.h5").read_all();
    ASSERT_EQ(frames.frames(), 11U) << job.work_dir;
    for (std::size_t f = 0; f < frames.frames(); ++f)
      EXPECT_EQ(frames.meta[f].step, static_cast<std::int64_t>(100 * f));
    EXPECT_TRUE(fs::exists(fs::path(job.input_dir) / "production.tpr"));
  }
  EXPECT_EQ(simulations, 3U);
  EXPECT_GE(on_n2, 1U);
  std::size_t createsims_feedback = 0;
  for (const auto& e : j.sampler_log())
    if (e.op == cpl::sampler_op::feedback
        && std::get<msg::feedback>(*e.body).kind == msg::feedback_kind::createsims)
      createsims_feedback += 1;
  EXPECT_EQ(createsims_feedback, 3U);
  std::size_t simulation_done_events = 0, joined_events = 0;
  for (const auto& e : j.events()) {
    simulation_done_events += e.kind == "simulation_done";
    joined_events += e.kind == "node_joined";
  }
  EXPECT_EQ(simulation_done_events, 3U);
  EXPECT_EQ(joined_events, 2U);

  msg::control stop;
  stop.command = msg::control_command::stop;
  for (const char* id : {"n1", "n2"})
    self->request(gw.handle(), 10s, cpl::request_atom::value, msg::address{id, "agent"}, stop)
      .receive([](msg::ack&) {}, [](caf::error&) {});
  EXPECT_TRUE(n1.wait_for(20s).has_value());
  EXPECT_TRUE(n2.wait_for(20s).has_value());
  caf::anon_send_exit(wm, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
}

namespace {

/// A campaign configuration for `mummi run` with short jobs; `extra` is appended.
void write_config(const fs::path& file, const fs::path& dir, const std::string& extra) {
  std::ofstream(file) << "campaign: {name: t, dir: " << dir.string() << "}\n"
                      << "head: {heartbeat_ms: 100, missed_heartbeats: 3}\n"
                      << "structure_generator: {buffer: 1, factor_extra: 1, batch: 2}\n"
                      << extra;
}

/// Waits (up to 300 s) until the campaign in `dir` runs a simulation that has stored frames,
/// written a checkpoint and passes `accept`; returns it.
std::optional<cpl::journal_job>
running_simulation(const fs::path& dir, const std::function<bool(const cpl::journal_job&)>& accept
                                        = {}) {
  const auto deadline = std::chrono::steady_clock::now() + 300s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
    if (!fs::exists(dir / "journal.sqlite"))
      continue;
    const auto j = cpl::journal::open(dir / "journal.sqlite", cpl::journal_mode::open);
    for (const auto& job : j.jobs())
      if (job.kind == msg::job_kind::simulation && job.state == cpl::job_state::running
          && fs::exists(fs::path(job.work_dir) / "production.cpt")
          && fs::exists(fs::path(job.work_dir) / "frames.h5") && (!accept || accept(job)))
        return job;
    // (A journal is linked into place only once complete, so opening it while the head
    // starts is safe.)
  }
  return std::nullopt;
}

/// Checks that `simulations` simulations succeeded, each with `frames` frames at steps 0, 100,
/// ... (every frame once); returns the jobs that took more than one attempt.
std::vector<cpl::journal_job> expect_frames_once(const cpl::journal& j, std::size_t simulations,
                                                 std::size_t frames) {
  std::vector<cpl::journal_job> retried;
  std::size_t done = 0;
  for (const auto& job : j.jobs()) {
    if (job.kind != msg::job_kind::simulation || job.state != cpl::job_state::succeeded)
      continue;
    done += 1;
    const auto f = cpl::frame_store::open(fs::path(job.work_dir) / "frames.h5").read_all();
    EXPECT_EQ(f.frames(), frames) << job.work_dir;
    for (std::size_t i = 0; i < f.frames(); ++i)
      EXPECT_EQ(f.meta[i].step, static_cast<std::int64_t>(100 * i)) << job.work_dir;
    if (j.attempt_count(job.job_id) >= 2)
      retried.push_back(job);
  }
  EXPECT_EQ(done, simulations);
  return retried;
}

/// The pid of the process whose command line holds `needle` (0 when none).
pid_t pid_with_argument(const std::string& needle) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}

const char* const two_simulations = "nodes: {local: 2}\n"
                                    "jobs:\n  createsims: {cores: 1}\n"
                                    "  simulation: {cores: 1, length_ns: 0.4, frame_ps: 2, "
                                    "checkpoint_minutes: 0.01}\n"
                                    "stop: {simulations: 2}\n";

} // namespace

// The head (`mummi run`) killed with SIGKILL while a simulation runs: its local node agents and
// their mdrun go with it; `mummi run --resume` finishes the campaign, the killed simulation
// continues from its checkpoint, and every simulation's frames are stored exactly once.
TEST(campaign, a_head_killed_mid_simulation_resumes_without_losing_or_repeating_frames) {
  const mummi::test::temp_dir tmp;
  const fs::path dir = tmp / "run";
  write_config(tmp / "c.yaml", dir, two_simulations);
  cpl::spawn_options o;
  o.stdout_file = tmp / "first.out";
  o.stderr_file = tmp / "first.err";
  cpl::child_process head({MUMMI_PATH, "run", (tmp / "c.yaml").string()}, {}, o);
  const auto killed = running_simulation(dir);
  ASSERT_TRUE(killed) << mummi::test::read_file(tmp / "first.err");
  ::kill(head.pid(), SIGKILL);
  (void)head.wait_for(10s);
  const auto gone = std::chrono::steady_clock::now() + 20s;
  while (!mummi::test::processes_under(dir).empty() && std::chrono::steady_clock::now() < gone)
    std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(mummi::test::processes_under(dir).empty()) << "processes outlived the head";

  auto r = run_mummi_child({"run", "--resume", dir.string()}, tmp / "second");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("2 simulations done"), std::string::npos) << r.out;
  const auto j = cpl::journal::open(dir / "journal.sqlite", cpl::journal_mode::open);
  const auto retried = expect_frames_once(j, 2, 201);
  ASSERT_EQ(retried.size(), 1U);
  EXPECT_EQ(retried[0].job_id, killed->job_id);
}

// A simulation's mdrun killed with SIGKILL: the job fails as process_crashed, is placed again
// after the backoff and continues from its checkpoint; every frame is stored once.
TEST(campaign, a_killed_mdrun_is_restarted_from_its_checkpoint) {
  const mummi::test::temp_dir tmp;
  const fs::path dir = tmp / "run";
  write_config(tmp / "c.yaml", dir, two_simulations);
  cpl::spawn_options o;
  o.stdout_file = tmp / "out";
  o.stderr_file = tmp / "err";
  cpl::child_process head({MUMMI_PATH, "run", (tmp / "c.yaml").string()}, {}, o);
  const auto victim = running_simulation(dir);
  ASSERT_TRUE(victim) << mummi::test::read_file(tmp / "err");
  const auto pids = mummi::test::processes_in(victim->work_dir);
  ASSERT_FALSE(pids.empty());
  for (const auto pid : pids)
    ::kill(pid, SIGKILL);
  const auto status = head.wait_for(300s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << mummi::test::read_file(tmp / "out") << mummi::test::read_file(tmp / "err");
  const auto j = cpl::journal::open(dir / "journal.sqlite", cpl::journal_mode::open);
  const auto retried = expect_frames_once(j, 2, 201);
  ASSERT_EQ(retried.size(), 1U);
  EXPECT_EQ(retried[0].job_id, victim->job_id);
  EXPECT_EQ(sqlite_value(dir / "journal.sqlite",
                         "SELECT reason FROM attempts WHERE job_id = " +
                           std::to_string(victim->job_id) + " AND attempt = 1"),
            std::to_string(static_cast<int>(msg::failure_reason::process_crashed)));
}

// A node agent killed with SIGKILL while it runs a job: the head sees the node lost within
// the heartbeat timeout and the job runs on the other node (the loss is journaled and not
// counted as a failure); the campaign finishes with every frame stored once.
TEST(campaign, jobs_of_a_killed_node_run_on_the_other_node) {
  const mummi::test::temp_dir tmp;
  const fs::path dir = tmp / "run";
  write_config(tmp / "c.yaml", dir, two_simulations);
  cpl::spawn_options o;
  o.stdout_file = tmp / "out";
  o.stderr_file = tmp / "err";
  cpl::child_process head({MUMMI_PATH, "run", (tmp / "c.yaml").string()}, {}, o);
  const auto victim = running_simulation(dir, [](const cpl::journal_job& job) {
    return job.node == "node-0001";
  });
  ASSERT_TRUE(victim) << mummi::test::read_file(tmp / "err");
  const auto pid = pid_with_argument("--node-id node-0001");
  ASSERT_NE(pid, 0);
  ::kill(pid, SIGKILL);
  const auto status = head.wait_for(300s);
  ASSERT_TRUE(status.has_value());
  // The killed agent ends the run with an error status (it did not stop cleanly) but the
  // campaign itself finishes.
  EXPECT_NE(mummi::test::read_file(tmp / "out").find("2 simulations done"), std::string::npos)
    << mummi::test::read_file(tmp / "out") << mummi::test::read_file(tmp / "err");
  const auto j = cpl::journal::open(dir / "journal.sqlite", cpl::journal_mode::open);
  const auto retried = expect_frames_once(j, 2, 201);
  ASSERT_EQ(retried.size(), 1U);
  EXPECT_EQ(retried[0].job_id, victim->job_id);
  EXPECT_EQ(retried[0].node, "node-0000");
  std::size_t lost_events = 0;
  for (const auto& e : j.events())
    lost_events += e.kind == "node_lost" && e.text == "node-0001";
  EXPECT_EQ(lost_events, 1U);
}

// Createsims that can never finish (a 1 s limit per stage): each job is tried max_attempts
// times with new seeds, then given up, its structure reported failed to the sampler; the
// campaign ends at its wall time.
TEST(campaign, a_job_that_always_fails_is_given_up_after_its_attempts) {
  const mummi::test::temp_dir tmp;
  const fs::path dir = tmp / "run";
  write_config(tmp / "c.yaml", dir,
               "nodes: {local: 1}\ncreatesims: {stage_timeout_s: 1}\n"
               "jobs: {createsims: {cores: 1}, simulation: {cores: 1}, max_attempts: 2, "
               "backoff_ms: 100}\n"
               "stop: {simulations: 1, wall_time_s: 25}\n");
  auto r = run_mummi_child({"run", (tmp / "c.yaml").string()}, tmp / "run-out");
  EXPECT_EQ(r.status, 0) << r.out << r.err;

  const auto j = cpl::journal::open(dir / "journal.sqlite", cpl::journal_mode::open);
  std::size_t given_up = 0;
  for (const auto& job : j.jobs()) {
    EXPECT_EQ(job.kind, msg::job_kind::createsims);
    if (job.state != cpl::job_state::failed)
      continue;
    given_up += 1;
    EXPECT_EQ(j.attempt_count(job.job_id), 2U) << job.job_id;
    EXPECT_EQ(job.reason, msg::failure_reason::timeout) << job.message;
  }
  EXPECT_GE(given_up, 1U) << r.out;
  std::size_t failed_feedback = 0;
  for (const auto& e : j.sampler_log())
    if (e.op == cpl::sampler_op::feedback) {
      const auto& f = std::get<msg::feedback>(*e.body);
      failed_feedback += f.kind == msg::feedback_kind::createsims && !f.ok;
    }
  EXPECT_EQ(failed_feedback, given_up);
  std::size_t retries = 0;
  for (const auto& e : j.events())
    retries += e.kind == "retry";
  EXPECT_GE(retries, given_up);
}
