// Two separate OS processes exchanging requests through their gateways; one of them is killed
// with SIGKILL and started again.

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <optional>

#include "../support/actor_system.hpp"
#include "../support/request_pump.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/coupling/gateway.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
using namespace std::chrono_literals;

namespace {

constexpr auto heartbeat = 100ms;

std::string peer_program() {
  return COUPLING_PEER_PATH; // set by CMake
}

/// Reads the peer's lines until one starts with `prefix`; returns the rest of it.
std::string expect_line(cpl::child_process& p, const std::string& prefix,
                        std::chrono::milliseconds timeout = 60s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto line = p.read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now()));
    if (!line)
      break;
    if (line->rfind(prefix, 0) == 0)
      return line->substr(prefix.size());
    if (line->rfind("requests failed", 0) == 0)
      return "FAILED: " + *line;
  }
  return "TIMEOUT waiting for '" + prefix + "'";
}

class cross_process_test : public ::testing::Test {
protected:
  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};
  cpl::context ctx;

  cpl::gateway_config config(std::string node, std::string bind) {
    cpl::gateway_config c;
    c.node_id = std::move(node);
    c.bind = std::move(bind);
    c.heartbeat_period = heartbeat;
    return c;
  }

  mummi::test::pump_result pump(const cpl::gateway& gw, const std::string& to,
                                std::uint64_t count) {
    auto p = sys.spawn(mummi::test::request_pump<msg::ping>, gw.handle(), msg::address{to, "echo"},
                       count, 16u, std::function<msg::ping(std::uint64_t)>([](std::uint64_t seq) {
                         return msg::ping{seq, std::vector<std::uint8_t>(64, 1)};
                       }),
                       std::function<std::uint64_t(const msg::ping&)>([](const msg::ping& x) {
                         return x.seq;
                       }),
                       false);
    mummi::test::pump_result out;
    caf::scoped_actor self{sys};
    self->request(p, 120s, mummi::test::pump_start_atom::value)
      .receive(
        [&](mummi::test::pump_result& r) {
          out = std::move(r);
        },
        [&](caf::error& e) {
          out.first_error = caf::to_string(e);
        });
    self->send_exit(p, caf::exit_reason::user_shutdown);
    return out;
  }

  /// Waits for a peer event about `node`; returns the time it took.
  template<class Event>
  std::optional<std::chrono::steady_clock::duration>
  await_event(caf::scoped_actor& self, const std::string& node, std::chrono::seconds timeout,
              bool want_restarted = false) {
    auto t0 = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::duration> took;
    bool done = false;
    self->receive_while([&] {
      return !done;
    })(
      [&](const Event& e) {
        bool match = e.node == node;
        if constexpr (std::is_same_v<Event, cpl::peer_up>)
          match = match && (!want_restarted || e.restarted);
        if (match) {
          took = std::chrono::steady_clock::now() - t0;
          done = true;
        }
      },
      [&](const cpl::peer_up&) {}, [&](const cpl::peer_down&) {},
      caf::after(timeout) >>
        [&] {
          done = true;
        });
    return took;
  }

  cpl::child_process start_peer(std::vector<std::string> args) {
    args.insert(args.begin(), peer_program());
    return cpl::child_process(std::move(args), {.stdout_pipe = true, .stdin_pipe = true});
  }
};

} // namespace

// The peer dials this process: 10,000 requests each way, all matched; SIGKILL; restart.
TEST_F(cross_process_test, killed_dialing_peer_is_detected_and_traffic_resumes_after_restart) {
  cpl::gateway head{sys, ctx, config("head", "tcp://127.0.0.1:*")};
  auto echo = sys.spawn(mummi::test::echo_actor);
  caf::scoped_actor self{sys};
  self->send(head.handle(), cpl::register_atom::value, std::string{"echo"}, echo);
  self->send(head.handle(), cpl::watch_atom::value, std::string{"node-1"});

  std::vector<std::string> args{"--node",         "node-1",
                                "--connect",      "head=" + head.endpoint(),
                                "--heartbeat-ms", std::to_string(heartbeat.count()),
                                "--requests",     "10000",
                                "--to",           "head"};
  auto peer = start_peer(args);
  ASSERT_TRUE(await_event<cpl::peer_up>(self, "node-1", 30s));
  auto mine = pump(head, "node-1", 10000); // concurrently with the peer's own 10,000
  EXPECT_EQ(mine.ok, 10000u) << mine.first_error;
  EXPECT_EQ(mine.mismatched, 0u);
  EXPECT_EQ(expect_line(peer, "requests ok "), "10000");

  peer.kill(SIGKILL);
  auto took = await_event<cpl::peer_down>(self, "node-1", 10s);
  ASSERT_TRUE(took) << "the watcher was never told";
  EXPECT_LE(*took, 3 * heartbeat + heartbeat / 2)
    << std::chrono::duration_cast<std::chrono::milliseconds>(*took).count() << " ms";
  // The survivor keeps working: local requests are answered, requests to the dead peer fail fast.
  auto local = pump(head, "head", 100);
  EXPECT_EQ(local.ok, 100u) << local.first_error;
  auto dead = pump(head, "node-1", 10);
  EXPECT_EQ(dead.failed, 10u);
  EXPECT_NE(dead.first_error.find("peer_down"), std::string::npos) << dead.first_error;

  // Started again (new incarnation), the peer is seen and traffic flows both ways again.
  auto again = start_peer(args);
  ASSERT_TRUE(await_event<cpl::peer_up>(self, "node-1", 30s));
  auto after = pump(head, "node-1", 1000);
  EXPECT_EQ(after.ok, 1000u) << after.first_error;
  EXPECT_EQ(expect_line(again, "requests ok "), "10000");
  self->send_exit(echo, caf::exit_reason::user_shutdown);
}

// This process dials the peer: the peer is killed and restarted on the same endpoint; the
// survivor's connection comes back by itself.
TEST_F(cross_process_test, killed_listening_peer_is_detected_and_redialed_after_restart) {
  cpl::gateway head{sys, ctx, config("head", "")};
  caf::scoped_actor self{sys};
  self->send(head.handle(), cpl::watch_atom::value, std::string{"node-1"});
  auto peer = start_peer({"--node", "node-1", "--bind", "tcp://127.0.0.1:*", "--heartbeat-ms",
                          std::to_string(heartbeat.count())});
  auto endpoint = expect_line(peer, "endpoint ");
  ASSERT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
  self->send(head.handle(), cpl::connect_atom::value, std::string{"node-1"}, endpoint);
  ASSERT_TRUE(await_event<cpl::peer_up>(self, "node-1", 30s));
  auto before = pump(head, "node-1", 10000);
  EXPECT_EQ(before.ok, 10000u) << before.first_error;

  peer.kill(SIGKILL);
  auto took = await_event<cpl::peer_down>(self, "node-1", 10s);
  ASSERT_TRUE(took);
  EXPECT_LE(*took, 3 * heartbeat + heartbeat / 2)
    << std::chrono::duration_cast<std::chrono::milliseconds>(*took).count() << " ms";

  auto again = start_peer(
    {"--node", "node-1", "--bind", endpoint, "--heartbeat-ms", std::to_string(heartbeat.count())});
  EXPECT_EQ(expect_line(again, "endpoint "), endpoint);
  ASSERT_TRUE(await_event<cpl::peer_up>(self, "node-1", 30s));
  auto after = pump(head, "node-1", 1000);
  EXPECT_EQ(after.ok, 1000u) << after.first_error;
}
