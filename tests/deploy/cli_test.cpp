// The `mummi` executable, run as a user runs it.

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "../support/actor_system.hpp"
#include "mummi/actors/node_registry.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/coupling/gateway.hpp"

namespace cpl = mummi::coupling;
using namespace std::chrono_literals;

namespace {

struct result {
  int status = -1;
  std::string out;
};

result run_mummi(std::vector<std::string> args, std::chrono::seconds timeout = 60s) {
  args.insert(args.begin(), MUMMI_PATH);
  cpl::child_process p(std::move(args), {.stdout_pipe = true});
  result r;
  while (auto line = p.read_line(timeout))
    r.out += *line + "\n";
  if (auto st = p.wait_for(10s))
    r.status = WIFEXITED(*st) ? WEXITSTATUS(*st) : 128 + WTERMSIG(*st);
  return r;
}

std::filesystem::path temp_dir() {
  auto d = std::filesystem::temp_directory_path()
    / ("mummi-cli-" + std::to_string(::getpid()) + "-"
       + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

} // namespace

TEST(cli, version_and_help) {
  auto v = run_mummi({"--version"});
  EXPECT_EQ(v.status, 0);
  EXPECT_NE(v.out.find("mummi "), std::string::npos) << v.out;
  auto h = run_mummi({"--help"});
  EXPECT_EQ(h.status, 0);
  for (const char* sub : {"run", "node", "validate"})
    EXPECT_NE(h.out.find(sub), std::string::npos) << h.out;
}

TEST(cli, run_starts_node_agents_that_join_answer_and_stop) {
  auto dir = temp_dir();
  std::ofstream(dir / "c.yaml") << "campaign: {name: t, dir: " << (dir / "run").string()
                                << "}\nhead: {heartbeat_ms: 100}\nnodes: {local: 3}\n";
  auto r = run_mummi({"run", (dir / "c.yaml").string()});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("3 of 3 node agents joined, answered and stopped\n"), std::string::npos)
    << r.out;
  EXPECT_NE(r.out.find("node-0002"), std::string::npos) << r.out;
  std::ifstream ep{dir / "run" / "head.endpoint"};
  std::string endpoint;
  ep >> endpoint;
  EXPECT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
}

TEST(cli, node_with_a_malformed_head_endpoint_fails_at_once) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_mummi({"node", "--head", "foo", "--node-id", "n1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(cli, validate_reports_every_problem_and_fails) {
  auto dir = temp_dir();
  std::ofstream(dir / "bad.yaml") << "head: {heartbeat_ms: -1, grace_s: x}\nnodes: {count: 2}\n";
  auto bad = run_mummi({"validate", (dir / "bad.yaml").string()});
  EXPECT_EQ(bad.status, 2);
  std::ofstream(dir / "good.yaml") << "nodes: {local: 1}\n";
  auto good = run_mummi({"validate", (dir / "good.yaml").string()});
  EXPECT_EQ(good.status, 0);
  EXPECT_NE(good.out.find("valid"), std::string::npos);
}

// A node agent whose head is gone for longer than the grace period stops by itself.
TEST(cli, node_agent_stops_when_the_head_is_gone_past_the_grace_period) {
  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};
  cpl::context ctx;
  cpl::gateway_config gc;
  gc.node_id = "head";
  gc.bind = "tcp://127.0.0.1:*";
  gc.heartbeat_period = 100ms;
  auto head = std::make_unique<cpl::gateway>(sys, ctx, gc);
  auto log = std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
  auto registry
    = mummi::actors::spawn_node_registry(sys, head->handle(), {"head", "t", 100ms}, log);
  cpl::child_process node({MUMMI_PATH, "node", "--head", head->endpoint(), "--node-id", "n1",
                           "--heartbeat-ms", "100", "--grace-s", "1"});
  caf::scoped_actor self{sys};
  bool joined = false;
  self->request(registry, 30s, mummi::actors::await_nodes_atom::value, std::uint32_t{1})
    .receive(
      [&](std::vector<mummi::messages::node_status>&) {
        joined = true;
      },
      [](caf::error&) {});
  ASSERT_TRUE(joined);
  EXPECT_TRUE(node.running());
  self->send_exit(registry, caf::exit_reason::user_shutdown);
  head.reset(); // the head goes away
  auto t0 = std::chrono::steady_clock::now();
  auto status = node.wait_for(15s);
  ASSERT_TRUE(status) << "the node agent outlived its head";
  EXPECT_TRUE(WIFEXITED(*status)) << cpl::describe_wait_status(*status);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}
