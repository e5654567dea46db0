// Two gateways in one process, talking over real tcp loopback sockets.

#include "mummi/coupling/gateway.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "../support/actor_system.hpp"
#include "../support/sample_messages.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
using namespace std::chrono_literals;

namespace {

cpl::gateway_config config(std::string node, std::string bind = "tcp://127.0.0.1:*") {
  cpl::gateway_config c;
  c.node_id = std::move(node);
  c.bind = std::move(bind);
  c.heartbeat_period = 50ms;
  c.request_timeout = 5s;
  return c;
}

class gateway_test : public ::testing::Test {
protected:
  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};
  cpl::context ctx;

  /// Makes `a` reachable as `name` through `gw`, and waits until it is.
  void register_as(const caf::actor& gw, const std::string& name, const caf::actor& a) {
    caf::scoped_actor self{sys};
    self->request(gw, 5s, cpl::register_atom::value, name, a)
      .receive([] {},
               [this](caf::error& e) {
                 FAIL() << sys.render(e);
               });
  }
};

/// Waits for a peer_up of `node` on `self`.
bool await_up(caf::scoped_actor& self, const std::string& node, bool want_restarted = false) {
  bool seen = false;
  self->receive_while([&] {
    return !seen;
  })(
    [&](const cpl::peer_up& u) {
      seen = u.node == node && (!want_restarted || u.restarted);
    },
    [&](const cpl::peer_down&) {},
    caf::after(5s) >>
      [&] {
        seen = true;
      });
  return seen;
}

} // namespace

TEST_F(gateway_test, request_reaches_a_remote_actor_and_the_reply_comes_back) {
  cpl::gateway head{sys, ctx, config("head")};
  cpl::gateway node{sys, ctx, config("node-1", "")};
  ASSERT_NE(head.endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  auto echo = sys.spawn(mummi::test::echo_actor);
  caf::scoped_actor self{sys};
  register_as(head.handle(), "echo", echo);
  self->send(node.handle(), cpl::connect_atom::value, std::string{"head"}, head.endpoint());

  for (std::uint64_t i = 0; i < 100; ++i) {
    msg::ping p{i, {1, 2, 3}};
    self->request(node.handle(), 5s, cpl::request_atom::value, msg::address{"head", "echo"}, p)
      .receive(
        [&](msg::ping& r) {
          EXPECT_EQ(r, p);
        },
        [](caf::error& e) {
          FAIL() << caf::to_string(e);
        });
  }
  // And the other way round: the head reaches an actor on the node that dialed it.
  register_as(node.handle(), "echo", echo);
  auto batch = mummi::test::sample_batch(10);
  self->request(head.handle(), 5s, cpl::request_atom::value, msg::address{"node-1", "echo"}, batch)
    .receive(
      [&](msg::structure_batch& r) {
        EXPECT_EQ(r, batch);
      },
      [](caf::error& e) {
        FAIL() << caf::to_string(e);
      });
  self->send_exit(echo, caf::exit_reason::user_shutdown);
}

TEST_F(gateway_test, unknown_remote_actor_gives_an_error_naming_it) {
  cpl::gateway head{sys, ctx, config("head")};
  cpl::gateway node{sys, ctx, config("node-1", "")};
  caf::scoped_actor self{sys};
  self->send(node.handle(), cpl::connect_atom::value, std::string{"head"}, head.endpoint());
  self
    ->request(node.handle(), 5s, cpl::request_atom::value, msg::address{"head", "nobody"},
              msg::ping{1, {}})
    .receive(
      [](msg::ping&) {
        FAIL() << "a reply from nobody";
      },
      [](caf::error& e) {
        EXPECT_EQ(cpl::error_code_of(e), msg::error_code::unknown_target);
        EXPECT_NE(caf::to_string(e).find("nobody"), std::string::npos) << caf::to_string(e);
      });
}

TEST_F(gateway_test, one_way_messages_carry_the_sender_address) {
  cpl::gateway head{sys, ctx, config("head")};
  cpl::gateway node{sys, ctx, config("node-1", "")};
  caf::scoped_actor self{sys};
  register_as(head.handle(), "wm", caf::actor{self});
  self->send(node.handle(), cpl::connect_atom::value, std::string{"head"}, head.endpoint());
  self->send(node.handle(), cpl::send_atom::value, msg::address{"head", "wm"},
             msg::job_progress{7, 1.5, 2000.0, 3});
  bool got = false;
  self->receive_while([&] {
    return !got;
  })(
    [&](const msg::address& from, const msg::job_progress& p) {
      EXPECT_EQ(from.node, "node-1");
      EXPECT_EQ(p.job_id, 7u);
      got = true;
    },
    [](const cpl::peer_up&) {},
    caf::after(5s) >>
      [&] {
        got = true;
        FAIL() << "nothing came";
      });
}

TEST_F(gateway_test, subscribers_receive_published_events_and_resubscribe_after_restart) {
  auto head = std::make_unique<cpl::gateway>(sys, ctx, config("head"));
  auto endpoint = head->endpoint();
  cpl::gateway monitor{sys, ctx, config("monitor-1", "")};
  caf::scoped_actor self{sys};
  self->send(monitor.handle(), cpl::connect_atom::value, std::string{"head"}, endpoint);
  self->send(monitor.handle(), cpl::watch_atom::value, std::string{"head"});
  ASSERT_TRUE(await_up(self, "head"));
  self->send(monitor.handle(), cpl::subscribe_atom::value, std::string{"head"},
             std::string{"jobs"});
  auto publish_until_seen = [&](cpl::gateway& g, std::uint64_t seq) {
    bool seen = false;
    for (int attempt = 0; attempt < 100 && !seen; ++attempt) {
      self->send(g.handle(), cpl::publish_atom::value, std::string{"jobs"},
                 msg::monitor_event{seq, 0, "jobs", "job_started", "job 1", {}});
      self->receive(
        [&](const msg::address& from, const std::string& topic, const msg::monitor_event& ev) {
          seen = from.node == "head" && topic == "jobs" && ev.seq == seq;
        },
        [](const cpl::peer_up&) {}, [](const cpl::peer_down&) {}, caf::after(50ms) >> [] {});
    }
    return seen;
  };
  EXPECT_TRUE(publish_until_seen(*head, 1));
  // The head restarts on the same endpoint: the monitor's subscription is renewed by itself.
  head.reset();
  head = std::make_unique<cpl::gateway>(sys, ctx, config("head", endpoint));
  EXPECT_TRUE(publish_until_seen(*head, 2));
}

TEST_F(gateway_test, watcher_is_told_when_a_peer_stops_and_requests_to_it_fail_fast) {
  cpl::gateway head{sys, ctx, config("head")};
  auto node = std::make_unique<cpl::gateway>(sys, ctx, config("node-1", ""));
  caf::scoped_actor self{sys};
  self->send(head.handle(), cpl::watch_atom::value, std::string{"node-1"});
  self->send(node->handle(), cpl::connect_atom::value, std::string{"head"}, head.endpoint());
  ASSERT_TRUE(await_up(self, "node-1"));
  node.reset();
  std::optional<cpl::peer_down> down;
  self->receive(
    [&](cpl::peer_down& d) {
      down = d;
    },
    caf::after(5s) >> [] {});
  ASSERT_TRUE(down);
  EXPECT_EQ(down->node, "node-1");
  auto t0 = std::chrono::steady_clock::now();
  self
    ->request(head.handle(), 5s, cpl::request_atom::value, msg::address{"node-1", "echo"},
              msg::ping{1, {}})
    .receive(
      [](msg::ping&) {
        FAIL();
      },
      [](caf::error& e) {
        EXPECT_EQ(cpl::error_code_of(e), msg::error_code::peer_down);
      });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(gateway_test, config_problems_are_all_reported) {
  cpl::gateway_config c;
  c.bind = "udp://x";
  c.heartbeat_period = 0ms;
  auto p = cpl::validate(c);
  EXPECT_NE(p.find("node_id"), std::string::npos) << p;
  EXPECT_NE(p.find("udp://x"), std::string::npos) << p;
  EXPECT_NE(p.find("heartbeat"), std::string::npos) << p;
  EXPECT_THROW((cpl::gateway{sys, ctx, c}), std::invalid_argument);
}

TEST_F(gateway_test, binding_a_taken_port_is_a_clear_error) {
  cpl::gateway a{sys, ctx, config("a")};
  try {
    cpl::gateway b{sys, ctx, config("b", a.endpoint())};
    FAIL() << "bound twice";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string{e.what()}.find(a.endpoint()), std::string::npos) << e.what();
  }
}

TEST_F(gateway_test, local_targets_are_reached_without_the_wire) {
  cpl::gateway head{sys, ctx, config("head", "")};
  auto echo = sys.spawn(mummi::test::echo_actor);
  caf::scoped_actor self{sys};
  register_as(head.handle(), "echo", echo);
  self
    ->request(head.handle(), 5s, cpl::request_atom::value, msg::address{"head", "echo"},
              msg::ping{5, {9}})
    .receive(
      [](msg::ping& p) {
        EXPECT_EQ(p.seq, 5u);
      },
      [](caf::error& e) {
        FAIL() << caf::to_string(e);
      });
  self->request(head.handle(), 5s, cpl::stats_atom::value)
    .receive(
      [](const cpl::gateway_stats& s) {
        EXPECT_EQ(s.sent, 0u);
      },
      [](caf::error& e) {
        FAIL() << caf::to_string(e);
      });
  self->send_exit(echo, caf::exit_reason::user_shutdown);
}

TEST_F(gateway_test, ipc_and_inproc_endpoints_work_like_tcp) {
  auto ipc = "ipc://"
    + (std::filesystem::temp_directory_path()
       / ("mummi-gw-" + std::to_string(::getpid()) + ".sock"))
        .string();
  for (const std::string& bind : {ipc, std::string{"inproc://mummi-head"}}) {
    cpl::gateway head{sys, ctx, config("head", bind)};
    cpl::gateway node{sys, ctx, config("node-1", "")};
    EXPECT_EQ(head.endpoint(), bind);
    auto echo = sys.spawn(mummi::test::echo_actor);
    caf::scoped_actor self{sys};
    self->send(head.handle(), cpl::register_atom::value, std::string{"echo"}, echo);
    self->send(node.handle(), cpl::connect_atom::value, std::string{"head"}, head.endpoint());
    self
      ->request(node.handle(), 5s, cpl::request_atom::value, msg::address{"head", "echo"},
                msg::ping{3, {4}})
      .receive(
        [](msg::ping& p) {
          EXPECT_EQ(p.seq, 3u);
        },
        [&](caf::error& e) {
          FAIL() << bind << ": " << sys.render(e);
        });
    self->send_exit(echo, caf::exit_reason::user_shutdown);
  }
}

namespace {

/// Takes every ping and never answers it.
caf::behavior silent_actor(caf::stateful_actor<std::vector<caf::response_promise>>* self) {
  return {[self](const msg::address&, const msg::ping&) {
    self->state.push_back(self->make_response_promise());
    return self->state.back();
  }};
}

} // namespace

TEST_F(gateway_test, a_remote_request_without_answer_times_out_with_a_gateway_error) {
  cpl::gateway head{sys, ctx, config("head")};
  auto c = config("node-1", "");
  c.request_timeout = 300ms;
  cpl::gateway node{sys, ctx, c};
  auto silent = sys.spawn(silent_actor);
  caf::scoped_actor self{sys};
  self->send(head.handle(), cpl::register_atom::value, std::string{"silent"}, silent);
  self->send(node.handle(), cpl::connect_atom::value, std::string{"head"}, head.endpoint());
  auto t0 = std::chrono::steady_clock::now();
  self
    ->request(node.handle(), 30s, cpl::request_atom::value, msg::address{"head", "silent"},
              msg::ping{1, {}})
    .receive(
      [](msg::ping&) {
        FAIL() << "a reply from a silent actor";
      },
      [&](caf::error& e) {
        EXPECT_EQ(cpl::error_code_of(e), msg::error_code::timeout) << sys.render(e);
      });
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
  self->send_exit(silent, caf::exit_reason::user_shutdown);
}

TEST_F(gateway_test, dialing_a_malformed_endpoint_is_an_error_naming_it) {
  cpl::gateway node{sys, ctx, config("node-1", "")};
  caf::scoped_actor self{sys};
  for (const char* bad : {"foo", "tcp://", "tcp://127.0.0.1:notaport"}) {
    self
      ->request(node.handle(), 5s, cpl::connect_atom::value, std::string{"head"}, std::string{bad})
      .receive(
        [&] {
          FAIL() << bad << " was accepted";
        },
        [&](caf::error& e) {
          EXPECT_EQ(cpl::error_code_of(e), msg::error_code::rejected);
          EXPECT_NE(sys.render(e).find(bad), std::string::npos) << sys.render(e);
        });
  }
  // The gateway is still alive and usable.
  self->request(node.handle(), 5s, cpl::stats_atom::value)
    .receive([](const cpl::gateway_stats&) {},
             [&](caf::error& e) {
               FAIL() << sys.render(e);
             });
}
