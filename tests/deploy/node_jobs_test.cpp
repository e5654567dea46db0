// Jobs on a real node agent process (`mummi node`) placed through a real gateway, with the real
// `gmx`: a createsims job accepted and finished, a job refused while the node's cores are
// taken, a simulation cancelled and then continued to its end with every frame stored once,
// and, when the node process is killed with SIGKILL, no mdrun of it left behind.

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "mummi/actors/node_registry.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/coupling/frame_store.hpp"
#include "mummi/coupling/gateway.hpp"
#include "mummi/messages/messages.hpp"

#include "../support/md_files.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
namespace act = mummi::actors;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path data_dir = MUMMI_DATA_DIR;

/// A head: gateway, node registry and a "wm" mailbox (the scoped actor) for job reports.
class node_jobs : public ::testing::Test {
protected:
  node_jobs() : gw_(sys_, ctx_, head_config()), self_(sys_) {
    auto log = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
    registry_ = act::spawn_node_registry(sys_, gw_.handle(), {"head", "test", 200ms}, log);
    self_->send(gw_.handle(), cpl::register_atom::value, std::string{"wm"},
                caf::actor_cast<caf::actor>(self_));
  }

  static cpl::gateway_config head_config() {
    cpl::gateway_config gc;
    gc.node_id = "head";
    gc.bind = "tcp://127.0.0.1:*";
    gc.heartbeat_period = 200ms;
    return gc;
  }

  /// Starts `mummi node` with 2 cores working under the test's directory; waits until it joined.
  cpl::child_process start_node(const std::string& id) {
    cpl::spawn_options o;
    o.stderr_file = tmp_ / (id + ".log");
    cpl::child_process p({MUMMI_PATH, "node", "--head", gw_.endpoint(), "--node-id", id,
                          "--cores", "2", "--gpus", "0", "--heartbeat-ms", "200", "--grace-s",
                          "5", "--work-root", tmp_.path().string()},
                         {}, o);
    bool joined = false;
    self_->request(registry_, 30s, act::await_nodes_atom::value, std::uint32_t{1})
      .receive([&](std::vector<msg::node_status>&) { joined = true; },
               [](caf::error&) {});
    EXPECT_TRUE(joined) << mummi::test::read_file(tmp_ / (id + ".log"));
    return p;
  }

  /// Places `job` on node `node`: its job_accepted, or the error text.
  std::variant<msg::job_accepted, std::string> place(const std::string& node,
                                                     const msg::job_spec& job) {
    std::variant<msg::job_accepted, std::string> out = std::string("no reply");
    self_
      ->request(gw_.handle(), 20s, cpl::request_atom::value, msg::address{node, "agent"}, job)
      .receive([&](msg::job_accepted& a) { out = a; },
               [&](caf::error& e) { out = sys_.render(e); });
    return out;
  }

  /// Waits for job `id` to finish, collecting its progress; calls `on_progress` with each.
  msg::job_finished wait_finished(std::uint64_t id,
                                  const std::function<void(const msg::job_progress&)>& on_progress
                                  = {}) {
    msg::job_finished out;
    bool done = false;
    while (!done)
      self_->receive(
        [&](const msg::address&, msg::job_progress& p) {
          if (p.job_id == id && on_progress)
            on_progress(p);
        },
        [&](const msg::address&, msg::job_finished& f) {
          if (f.job_id == id) {
            out = f;
            done = true;
          }
        },
        caf::after(300s) >> [&] {
          ADD_FAILURE() << "job " << id << " did not finish";
          done = true;
        });
    return out;
  }

  static msg::job_spec simulation(std::uint64_t id, const std::string& work, double ns) {
    msg::job_spec j;
    j.job_id = id;
    j.kind = msg::job_kind::simulation;
    j.cores = 2;
    j.target_ns = ns;
    j.input_dir = "cs";
    j.work_dir = work;
    j.params = {{"frame_ps", "2"}, {"checkpoint_minutes", "0.005"}};
    return j;
  }

  mummi::test::temp_dir tmp_;
  cpl::system_config sys_cfg_;
  caf::actor_system sys_{sys_cfg_};
  cpl::context ctx_;
  cpl::gateway gw_;
  caf::scoped_actor self_;
  caf::actor registry_;
};

std::size_t frames_in(const fs::path& store) {
  return cpl::frame_store::open(store).frame_count();
}

} // namespace

TEST_F(node_jobs, jobs_placed_on_a_node_process_run_report_and_leave_nothing_behind) {
  fs::create_directories(tmp_ / "in");
  fs::copy_file(data_dir / "demo" / "protein.gro", tmp_ / "in" / "structure.gro");
  auto node = start_node("n1");

  msg::job_spec cs;
  cs.job_id = 1;
  cs.kind = msg::job_kind::createsims;
  cs.seed = 3;
  cs.cores = 2;
  cs.input_dir = "in"; // relative: under the node's --work-root
  cs.work_dir = "cs";
  const auto accepted = place("n1", cs);
  ASSERT_TRUE(std::holds_alternative<msg::job_accepted>(accepted))
    << std::get<std::string>(accepted);
  EXPECT_EQ(std::get<msg::job_accepted>(accepted).node_id, "n1");
  // Both cores are taken: another job is refused, naming what is free.
  auto second = simulation(9, "x", 0.04);
  second.cores = 1;
  const auto refused = place("n1", second);
  ASSERT_TRUE(std::holds_alternative<std::string>(refused));
  EXPECT_NE(std::get<std::string>(refused).find("needs 1 cores and 0 GPUs; node n1 has 0 of 2 "
                                                 "cores"),
            std::string::npos)
    << std::get<std::string>(refused);
  const auto cs_done = wait_finished(1);
  ASSERT_EQ(cs_done.status, msg::job_status::succeeded) << cs_done.message;
  EXPECT_TRUE(fs::exists(tmp_ / "cs" / "production.tpr"));

  // A simulation cancelled after its first report, then placed again and run to its end.
  ASSERT_TRUE(std::holds_alternative<msg::job_accepted>(place("n1", simulation(2, "sim", 0.4))));
  bool cancel_sent = false;
  const auto cancelled = wait_finished(2, [&](const msg::job_progress& p) {
    if (cancel_sent || p.frames < 20)
      return;
    cancel_sent = true;
    self_->request(gw_.handle(), 10s, cpl::request_atom::value, msg::address{"n1", "agent"},
                   msg::job_cancel{2, "test"})
      .receive([](msg::ack&) {}, [](caf::error& e) { ADD_FAILURE() << to_string(e); });
  });
  EXPECT_TRUE(cancel_sent);
  EXPECT_EQ(cancelled.status, msg::job_status::cancelled) << cancelled.message;
  EXPECT_LT(frames_in(tmp_ / "sim" / "frames.h5"), 201U);
  ASSERT_TRUE(std::holds_alternative<msg::job_accepted>(place("n1", simulation(2, "sim", 0.4))));
  const auto finished = wait_finished(2);
  ASSERT_EQ(finished.status, msg::job_status::succeeded) << finished.message;
  EXPECT_DOUBLE_EQ(finished.ns_done, 0.4);
  EXPECT_EQ(frames_in(tmp_ / "sim" / "frames.h5"), 201U);

  // The node process killed while a long simulation runs: its mdrun goes with it.
  ASSERT_TRUE(std::holds_alternative<msg::job_accepted>(place("n1", simulation(3, "long", 40))));
  bool killed = false;
  self_->receive(
    [&](const msg::address&, msg::job_progress&) {
      EXPECT_FALSE(mummi::test::processes_in(tmp_ / "long").empty()) << "no mdrun is running";
      ::kill(node.pid(), SIGKILL);
      killed = true;
    },
    caf::after(120s) >> [] {});
  ASSERT_TRUE(killed);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!mummi::test::processes_in(tmp_ / "long").empty()
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(mummi::test::processes_in(tmp_ / "long").empty())
    << "mdrun outlived its node agent";
}
