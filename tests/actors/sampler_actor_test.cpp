// The sampler actor: 1,000 requests (some concurrent) across two sampler swaps, checkpoint and
// restore continuing exactly, rejected swaps leaving the old sampler in place, and the feedback
// history reaching the sampler a swap installs.

#include "../support/actor_system.hpp"
#include "mummi/actors/sampler_actor.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "mummi/coupling/gateway.hpp"
#include "mummi/messages/messages.hpp"

namespace msg = mummi::messages;
namespace ml = mummi::ml;
namespace act = mummi::actors;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t dims = 8;

/// Two Gaussian blobs in 8-D: A around 0, B around 5 (unit spread).
ml::state_ensembles two_blobs() {
  std::mt19937_64 rng(2024);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  ml::state_ensembles s;
  s.a.dims = dims;
  s.b.dims = dims;
  for (std::size_t i = 0; i < 200 * dims; ++i) {
    s.a.values.push_back(normal(rng));
    s.b.values.push_back(5.0f + normal(rng));
  }
  return s;
}

act::sampler_actor_config config(std::string sampler, ml::sampler_params params,
                                 std::uint64_t seed) {
  act::sampler_actor_config c;
  c.registry = std::make_shared<const ml::sampler_registry>(ml::sampler_registry::with_builtins());
  c.states = two_blobs();
  c.sampler = std::move(sampler);
  c.params = std::move(params);
  c.seed = seed;
  return c;
}

const ml::sampler_params small_ot{{"subsample", "48"}};

class sampler_actor_test : public ::testing::Test {
protected:
  mummi::coupling::system_config cfg;
  caf::actor_system sys{cfg};

  msg::structure_batch request(const caf::actor& a, std::uint64_t id, std::uint32_t count) {
    caf::scoped_actor self{sys};
    msg::structure_batch out;
    self->request(a, 10s, msg::structure_request{id, count})
      .receive(
        [&](msg::structure_batch& b) {
          out = std::move(b);
        },
        [&](caf::error& e) {
          ADD_FAILURE() << "structure_request " << id << ": " << sys.render(e);
        });
    return out;
  }

  /// The reply to a swap: an ack or an error_reply.
  std::variant<msg::ack, msg::error_reply> swap(const caf::actor& a, const std::string& name,
                                                const ml::sampler_params& params = {}) {
    msg::control c;
    c.command = msg::control_command::swap_sampler;
    c.target = name;
    for (const auto& [k, v] : params)
      c.params.push_back(msg::key_value{k, v});
    c.issuer = "test";
    // Sent one way, the reply comes back as an ordinary message (ack or error_reply).
    return mummi::test::ask<msg::ack>(sys, a, c, 10s, "the swap");
  }

  void swap_ok(const caf::actor& a, const std::string& name,
               const ml::sampler_params& params = {}) {
    auto r = swap(a, name, params);
    ASSERT_TRUE(std::holds_alternative<msg::ack>(r))
      << "swap to " << name << ": " << std::get<msg::error_reply>(r).message;
  }

  std::string checkpoint(const caf::actor& a) {
    caf::scoped_actor self{sys};
    std::string out;
    self->request(a, 10s, act::checkpoint_atom::value)
      .receive(
        [&](std::string& s) {
          out = std::move(s);
        },
        [&](caf::error& e) {
          ADD_FAILURE() << "checkpoint: " << sys.render(e);
        });
    return out;
  }

  void send_feedback(const caf::actor& a, const msg::feedback& f) {
    caf::anon_send(a, f);
  }
};

msg::feedback frame_at(const msg::structure& s) {
  msg::feedback f;
  f.kind = msg::feedback_kind::frame;
  f.structure_id = s.id;
  f.ok = true;
  f.latent = s.latent;
  return f;
}

// --- (1) a stream of 1,000 requests across two swaps ---------------------------------------

TEST_F(sampler_actor_test, every_request_is_answered_once_with_unique_ids_across_swaps) {
  auto a = act::spawn_sampler_actor(sys, config("ot", small_ot, 11));
  std::mutex mu;
  std::map<std::uint64_t, msg::structure_batch> answers; // request id -> its one answer
  std::map<std::uint64_t, std::uint32_t> asked;          // request id -> count
  std::vector<std::string> problems;

  // Each phase: `threads` senders, each streaming `per_thread` requests without waiting, then
  // collecting the answers.
  std::uint64_t next_request = 1;
  auto phase = [&](int threads, int per_thread, std::uint64_t salt) {
    std::vector<std::thread> senders;
    for (int t = 0; t < threads; ++t) {
      const std::uint64_t first = next_request;
      next_request += static_cast<std::uint64_t>(per_thread);
      senders.emplace_back([&, t, first, per_thread, salt] {
        std::mt19937_64 rng(salt * 100 + static_cast<std::uint64_t>(t));
        std::uniform_int_distribution<std::uint32_t> count(1, 7);
        caf::scoped_actor self{sys};
        for (int i = 0; i < per_thread; ++i) {
          const std::uint64_t id = first + static_cast<std::uint64_t>(i);
          const std::uint32_t n = count(rng);
          {
            std::lock_guard lock(mu);
            asked[id] = n;
          }
          self->send(a, msg::structure_request{id, n});
        }
        int i = 0;
        bool timed_out = false;
        self->receive_while([&] {
          return i < per_thread && !timed_out;
        })(
          [&](msg::structure_batch& b) {
            ++i;
            std::lock_guard lock(mu);
            if (!answers.emplace(b.request_id, std::move(b)).second)
              problems.push_back("request " + std::to_string(b.request_id) + " answered twice");
          },
          caf::after(10s) >>
            [&] {
              timed_out = true;
            });
        // Nothing more may arrive: an extra answer is a duplicate.
        self->receive(
          [&](msg::structure_batch& b) {
            std::lock_guard lock(mu);
            problems.push_back("extra answer to request " + std::to_string(b.request_id));
          },
          caf::after(50ms) >> [] {});
        if (timed_out) {
          std::lock_guard lock(mu);
          problems.push_back("thread " + std::to_string(t) + " got " + std::to_string(i) + " of "
                             + std::to_string(per_thread) + " answers");
        }
      });
    }
    for (auto& s : senders)
      s.join();
  };

  phase(4, 125, 1); // ot
  ASSERT_EQ(answers.size(), 500u);
  swap_ok(a, "random");
  // Frame feedback for some structures of the first phase arrives while requests stream in.
  std::thread feeder([&] {
    std::vector<msg::structure> first;
    {
      std::lock_guard lock(mu);
      for (std::uint64_t r = 1; r <= 30; ++r)
        first.push_back(answers.at(r).structures.front());
    }
    for (const auto& s : first)
      caf::anon_send(a, frame_at(s));
  });
  phase(4, 62, 2); // random
  feeder.join();
  swap_ok(a, "ot_feedback", small_ot);
  phase(4, 63, 3); // ot_feedback

  for (const auto& p : problems)
    ADD_FAILURE() << p;
  ASSERT_EQ(next_request, 1001u);
  ASSERT_EQ(answers.size(), 1000u);
  std::set<std::uint64_t> ids;
  std::size_t total = 0;
  for (const auto& [rid, batch] : answers) {
    ASSERT_EQ(batch.structures.size(), asked.at(rid)) << "request " << rid;
    const std::string want = rid <= 500 ? "ot" : rid <= 748 ? "random" : "ot_feedback";
    for (const auto& s : batch.structures) {
      EXPECT_TRUE(ids.insert(s.id).second) << "structure id " << s.id << " repeated";
      EXPECT_EQ(s.sampler, want) << "request " << rid;
      EXPECT_EQ(s.latent.size(), dims);
      EXPECT_TRUE(s.coords_nm.empty());
      if (want == "random")
        EXPECT_EQ(s.lambda, -1.0f);
      else
        EXPECT_TRUE(s.lambda >= 0.0f && s.lambda <= 1.0f) << s.lambda;
      ++total;
    }
  }
  EXPECT_EQ(ids.size(), total);
  // Actor ids are 1..total: no gap, no repeat, whatever the sampler.
  EXPECT_EQ(*ids.begin(), 1u);
  EXPECT_EQ(*ids.rbegin(), total);
  EXPECT_NE(checkpoint(a).find("\nhistory 30\n"), std::string::npos);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

// --- (2) checkpoint and restore ------------------------------------------------------------

TEST_F(sampler_actor_test, a_restored_actor_continues_exactly_like_the_original) {
  auto cfg_a = config("ot", small_ot, 42);
  auto a = act::spawn_sampler_actor(sys, cfg_a);
  std::vector<msg::structure> seen;
  for (std::uint64_t r = 1; r <= 5; ++r)
    for (auto& s : request(a, r, 4).structures)
      seen.push_back(s);
  for (std::size_t i = 0; i < 6; ++i)
    send_feedback(a, frame_at(seen[i]));
  msg::feedback failed;
  failed.kind = msg::feedback_kind::validation;
  failed.structure_id = seen[7].id;
  failed.ok = false;
  send_feedback(a, failed);
  swap_ok(a, "ot_feedback", {{"subsample", "48"}, {"weight", "0.9"}});
  for (auto& s : request(a, 6, 5).structures)
    send_feedback(a, frame_at(s));

  const std::string ckpt = checkpoint(a);
  ASSERT_FALSE(ckpt.empty());
  auto cfg_b = config("random", {}, 999); // ignored: the checkpoint decides
  cfg_b.checkpoint = ckpt;
  auto b = act::spawn_sampler_actor(sys, cfg_b);
  EXPECT_EQ(checkpoint(b), ckpt);

  for (std::uint64_t r = 7; r <= 12; ++r) {
    const auto from_a = request(a, r, 3);
    const auto from_b = request(b, r, 3);
    ASSERT_EQ(from_a, from_b) << "request " << r;
    ASSERT_EQ(from_a.structures.size(), 3u);
    send_feedback(a, frame_at(from_a.structures[0]));
    send_feedback(b, frame_at(from_b.structures[0]));
  }
  swap_ok(a, "ot", small_ot);
  swap_ok(b, "ot", small_ot);
  EXPECT_EQ(request(a, 13, 7), request(b, 13, 7));
  EXPECT_EQ(checkpoint(a), checkpoint(b));
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

TEST_F(sampler_actor_test, bad_checkpoints_and_bad_first_samplers_are_refused_at_spawn) {
  EXPECT_THROW(act::spawn_sampler_actor(sys, config("no_such_sampler", {}, 1)), ml::sampler_error);
  auto no_registry = config("ot", small_ot, 1);
  no_registry.registry = nullptr;
  EXPECT_THROW(act::spawn_sampler_actor(sys, no_registry), std::invalid_argument);

  auto a = act::spawn_sampler_actor(sys, config("ot", small_ot, 5));
  request(a, 1, 2);
  const std::string good = checkpoint(a);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  const std::vector<std::string> bad
    = {"", "not a checkpoint", good.substr(0, good.size() / 2), good + "trailing\n", [&] {
         std::string s = good;
         s.replace(s.find("next_id "), 9, "next_id x");
         return s;
       }()};
  for (const auto& text : bad) {
    auto c = config("ot", small_ot, 5);
    c.checkpoint = text;
    try {
      act::spawn_sampler_actor(sys, c);
      ADD_FAILURE() << "accepted a bad checkpoint: " << text.substr(0, 60);
    } catch (const ml::sampler_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("sampler actor checkpoint, byte offset"), std::string::npos) << what;
    }
  }
}

// --- (3) bad swaps -------------------------------------------------------------------------

TEST_F(sampler_actor_test, a_bad_swap_is_answered_with_an_error_and_the_old_sampler_stays) {
  auto a = act::spawn_sampler_actor(sys, config("ot", small_ot, 3));
  const auto first = request(a, 1, 3);
  ASSERT_EQ(first.structures.size(), 3u);

  auto r = swap(a, "no_such_sampler");
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(r));
  EXPECT_EQ(std::get<msg::error_reply>(r).code, msg::error_code::rejected);
  EXPECT_NE(std::get<msg::error_reply>(r).message.find("no_such_sampler"), std::string::npos)
    << std::get<msg::error_reply>(r).message;

  r = swap(a, "ot_feedback", {{"lambda_min", "abc"}});
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(r));
  EXPECT_NE(std::get<msg::error_reply>(r).message.find("lambda_min"), std::string::npos)
    << std::get<msg::error_reply>(r).message;

  msg::control pause;
  pause.command = msg::control_command::pause;
  caf::scoped_actor self{sys};
  bool refused = false;
  self->send(a, pause);
  self->receive(
    [&](msg::error_reply& e) {
      refused = e.code == msg::error_code::rejected;
    },
    [&](msg::ack&) {}, caf::after(10s) >> [] {});
  EXPECT_TRUE(refused);

  const auto after = request(a, 2, 4);
  ASSERT_EQ(after.structures.size(), 4u);
  for (const auto& s : after.structures) {
    EXPECT_EQ(s.sampler, "ot");
    EXPECT_GT(s.id, first.structures.back().id);
  }
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

// --- (4) the history reaches the new sampler ---------------------------------------------

double nearest_squared_distance(const std::vector<float>& z,
                                const std::vector<std::vector<float>>& points) {
  double best = std::numeric_limits<double>::infinity();
  for (const auto& p : points) {
    double d = 0;
    for (std::size_t i = 0; i < z.size(); ++i)
      d += (z[i] - p[i]) * (z[i] - p[i]);
    best = std::min(best, d);
  }
  return best;
}

TEST_F(sampler_actor_test, the_feedback_history_reaches_the_sampler_a_swap_installs) {
  auto covered = act::spawn_sampler_actor(sys, config("ot", small_ot, 7));
  auto fresh = act::spawn_sampler_actor(sys, config("ot", small_ot, 7));
  const auto batch = request(covered, 1, 40);
  ASSERT_EQ(batch, request(fresh, 1, 40));
  std::vector<std::vector<float>> frames;
  for (const auto& s : batch.structures) {
    send_feedback(covered, frame_at(s));
    frames.push_back(s.latent);
  }
  msg::feedback wrong_size;
  wrong_size.kind = msg::feedback_kind::frame;
  wrong_size.structure_id = 1;
  wrong_size.latent = {1.0f, 2.0f};
  send_feedback(covered, wrong_size);

  swap_ok(covered, "ot_feedback", {{"subsample", "48"}, {"weight", "1"}});
  swap_ok(fresh, "ot_feedback", {{"subsample", "48"}, {"weight", "1"}});
  const std::string ckpt = checkpoint(covered);
  EXPECT_NE(ckpt.find("\nhistory 40\n"), std::string::npos);
  EXPECT_NE(ckpt.find("\nrejected 1\n"), std::string::npos);
  EXPECT_NE(checkpoint(fresh).find("\nhistory 0\n"), std::string::npos);

  const auto from_covered = request(covered, 2, 60);
  const auto from_fresh = request(fresh, 2, 60);
  ASSERT_EQ(from_covered.structures.size(), 60u);
  EXPECT_NE(from_covered, from_fresh);
  double covered_mean = 0, fresh_mean = 0;
  for (std::size_t i = 0; i < 60; ++i) {
    covered_mean += nearest_squared_distance(from_covered.structures[i].latent, frames) / 60;
    fresh_mean += nearest_squared_distance(from_fresh.structures[i].latent, frames) / 60;
  }
  // The sampler given the frames picks away from them; the fresh one does not know them.
  EXPECT_GT(covered_mean, fresh_mean);
  caf::anon_send_exit(covered, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(fresh, caf::exit_reason::user_shutdown);
}

} // namespace
