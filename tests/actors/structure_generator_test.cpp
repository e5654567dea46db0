// The structure generator with its real parts: the committed demo model decodes, the real
// `gmx` validates. Shown: the buffer fills to factor_extra x buffer and requests are answered
// in full with validated, never repeated structures; 1,000 requests with two sampler swaps in
// the middle lose and duplicate nothing (journal checked); a generator killed in the middle
// of work and resumed from its journal hands out exactly what an uninterrupted one does;
// outside feedback and control; a generator that cannot decode fails requests with the reason.

#include "../support/actor_system.hpp"
#include "mummi/actors/structure_generator.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/coupling/journal.hpp"
#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/messages/messages.hpp"
#include "mummi/messages/registry.hpp"
#include "mummi/ml/autoencoder.hpp"

#include "../support/temp_dir.hpp"

namespace msg = mummi::messages;
namespace md = mummi::md;
namespace ml = mummi::ml;
namespace act = mummi::actors;
namespace cpl = mummi::coupling;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path data_dir = MUMMI_SOURCE_DATA_DIR;

/// A control message.
msg::control command(msg::control_command c, std::string target = {}, std::string value = {},
                     std::string issuer = "test") {
  msg::control out;
  out.command = c;
  out.target = std::move(target);
  out.value = std::move(value);
  out.issuer = std::move(issuer);
  return out;
}

class structure_generator_test : public ::testing::Test {
protected:
  structure_generator_test() {
    msg::add_message_types(sys_cfg_);
  }

  void SetUp() override {
    base_ = act::structure_generator_for(
      md::demo_system(data_dir / "demo"), md::read_gro(data_dir / "demo" / "protein.gro"),
      data_dir / "demo" / "model.ae", {data_dir / "demo" / "frames.h5"}, tmp_ / "work");
  }

  act::structure_generator_config config(const std::string& sampler, std::uint64_t seed) const {
    act::structure_generator_config c = base_;
    c.sampler.sampler = sampler;
    c.sampler.seed = seed;
    c.validator.validator.workers = 2;
    c.validator.validator.work_root = tmp_ / ("runs-" + std::to_string(++runs_));
    c.buffer = 4;
    c.factor_extra = 2;
    c.batch = 8;
    return c;
  }

  std::shared_ptr<cpl::journal> journal(const std::string& name) const {
    return std::make_shared<cpl::journal>(
      cpl::journal::open(tmp_ / name, cpl::journal_mode::open_or_create));
  }

  msg::structure_batch get(caf::actor_system& sys, const caf::actor& sg, std::uint64_t id,
                           std::uint32_t count) {
    auto r = mummi::test::ask<msg::structure_batch>(sys, sg, msg::structure_request{id, count},
                                                    300s, "structure request");
    if (auto* e = std::get_if<msg::error_reply>(&r)) {
      ADD_FAILURE() << "request " << id << ": " << e->message;
      return {};
    }
    return std::get<msg::structure_batch>(std::move(r));
  }

  std::map<std::string, std::string> stats(caf::actor_system& sys, const caf::actor& sg) {
    auto r = mummi::test::ask<msg::monitor_event>(sys, sg, act::stats_atom::value, 30s, "stats");
    if (auto* e = std::get_if<msg::error_reply>(&r)) {
      ADD_FAILURE() << e->message;
      return {};
    }
    return msg::fields_of(std::get<msg::monitor_event>(r));
  }

  /// Waits until nothing is in flight and the buffer is full (the generator is idle).
  void wait_idle(caf::actor_system& sys, const caf::actor& sg, std::size_t ready) {
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = stats(sys, sg);
      if (s["in_flight"] == "0" && std::stoul(s["ready"]) >= ready)
        return;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "the structure generator did not become idle";
  }

  msg::ack control(caf::actor_system& sys, const caf::actor& sg, msg::control c) {
    auto r = mummi::test::ask<msg::ack>(sys, sg, std::move(c), 60s, "control");
    if (auto* e = std::get_if<msg::error_reply>(&r)) {
      ADD_FAILURE() << e->message;
      return {};
    }
    return std::get<msg::ack>(r);
  }

  caf::actor_system_config sys_cfg_;
  mummi::test::temp_dir tmp_;
  act::structure_generator_config base_;
  mutable int runs_ = 0;
};

void expect_validated(const msg::structure& s) {
  EXPECT_TRUE(s.valid) << s.id;
  EXPECT_EQ(s.coords_nm.size(), 127U * 3) << s.id;
  EXPECT_TRUE(std::isfinite(s.epot_kj_mol)) << s.id;
  EXPECT_LT(std::abs(s.fmax_kj_mol_nm), 1e6) << s.id;
  EXPECT_EQ(s.latent.size(), 32U) << s.id;
}

} // namespace

TEST_F(structure_generator_test, fills_its_buffer_and_answers_requests_with_unique_structures) {
  caf::actor_system sys{sys_cfg_};
  auto j = journal("journal.sqlite");
  auto cfg = config("ot_feedback", 3);
  cfg.journal = j;
  const caf::actor sg = act::spawn_structure_generator(sys, cfg);
  // factor_extra 2 x buffer 4: at least 8 validated structures ready before anyone asks.
  wait_idle(sys, sg, 8);
  auto s = stats(sys, sg);
  EXPECT_EQ(s["sampler"], "ot_feedback");
  EXPECT_EQ(s["delivered"], "0");
  EXPECT_GE(std::stoul(s["ready"]), 8U);

  std::set<std::uint64_t> ids;
  std::set<std::vector<float>> latents;
  std::uint64_t request = 0;
  for (std::uint32_t count : {5U, 3U, 12U, 1U}) {
    const auto b = get(sys, sg, ++request, count);
    EXPECT_EQ(b.request_id, request);
    ASSERT_EQ(b.structures.size(), count);
    for (const auto& x : b.structures) {
      expect_validated(x);
      EXPECT_EQ(x.sampler, "ot_feedback");
      EXPECT_TRUE(ids.insert(x.id).second) << "structure " << x.id << " handed out twice";
      EXPECT_TRUE(latents.insert(x.latent).second) << "latent point of " << x.id << " repeated";
      const auto row = j->find_structure(x.id);
      ASSERT_TRUE(row.has_value());
      EXPECT_EQ(row->state, cpl::structure_state::delivered);
      EXPECT_EQ(row->request_id, request);
      EXPECT_EQ(row->value.coords_nm, x.coords_nm);
    }
  }
  EXPECT_TRUE(get(sys, sg, 99, 0).structures.empty());
  wait_idle(sys, sg, 8);
  s = stats(sys, sg);
  EXPECT_EQ(s["delivered"], "21");
  EXPECT_EQ(j->count(cpl::structure_state::delivered), 21U);
  // Every verdict went back to the sampler: one validation feedback per validated structure.
  std::size_t feedback = 0;
  for (const auto& e : j->sampler_log())
    feedback += e.op == cpl::sampler_op::feedback;
  EXPECT_EQ(feedback, std::stoul(s["valid"]) + std::stoul(s["invalid"])
                        + std::stoul(s["duplicate"]));
  std::printf("[ numbers  ] sampled %s, valid %s, invalid %s, validation %s s\n",
              s["sampled"].c_str(), s["valid"].c_str(), s["invalid"].c_str(),
              s["validation_seconds"].c_str());
  caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
}

TEST_F(structure_generator_test, a_thousand_requests_across_two_swaps_lose_and_repeat_nothing) {
  caf::actor_system sys{sys_cfg_};
  auto j = journal("journal.sqlite");
  auto cfg = config("ot", 5);
  cfg.journal = j;
  cfg.batch = 16;
  const caf::actor sg = act::spawn_structure_generator(sys, cfg);

  caf::scoped_actor self{sys};
  constexpr std::uint64_t total = 1000;
  std::map<std::uint64_t, msg::structure_batch> replies;
  std::vector<std::string> errors;
  std::vector<std::string> acks;
  const auto receive_one = [&] {
    self->receive(
      [&](msg::structure_batch& b) {
        EXPECT_FALSE(replies.count(b.request_id)) << "request " << b.request_id << " twice";
        replies[b.request_id] = std::move(b);
      },
      [&](msg::ack& a) {
        acks.push_back(a.text);
      },
      [&](msg::error_reply& e) {
        errors.push_back(e.message);
      },
      caf::after(300s) >> [&] { errors.push_back("no reply within 300 s"); });
  };
  // All 1,000 requests are sent at once; the swaps go in after 300 and 600 answers.
  for (std::uint64_t id = 1; id <= total; ++id)
    self->send(sg, msg::structure_request{id, 1});
  const auto swap_to = [&](const std::string& name) {
    self->send(sg, command(msg::control_command::swap_sampler, name));
  };
  bool swapped_once = false, swapped_twice = false;
  while ((replies.size() < total || acks.size() < 2) && errors.empty()) {
    if (replies.size() >= 300 && !swapped_once) {
      swap_to("random");
      swapped_once = true;
    }
    if (replies.size() >= 600 && !swapped_twice) {
      swap_to("ot_feedback");
      swapped_twice = true;
    }
    receive_one();
  }
  ASSERT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(acks, (std::vector<std::string>{"sampler is now 'random'",
                                            "sampler is now 'ot_feedback'"}));
  ASSERT_EQ(replies.size(), total);
  std::set<std::uint64_t> ids;
  std::set<std::vector<float>> latents;
  std::map<std::string, std::size_t> by_sampler;
  for (const auto& [id, b] : replies) {
    ASSERT_EQ(b.structures.size(), 1U) << "request " << id;
    const auto& x = b.structures.front();
    EXPECT_TRUE(x.valid);
    EXPECT_TRUE(ids.insert(x.id).second) << "structure " << x.id << " handed out twice";
    EXPECT_TRUE(latents.insert(x.latent).second) << "latent point of " << x.id << " repeated";
    by_sampler[x.sampler] += 1;
  }
  EXPECT_EQ(by_sampler.size(), 3U);
  for (const auto& [name, n] : by_sampler)
    EXPECT_GT(n, 0U) << name;
  // The journal agrees: 1,000 delivered, each to its own request, both swaps logged in order.
  const auto delivered = j->structures(cpl::structure_state::delivered);
  ASSERT_EQ(delivered.size(), total);
  std::set<std::uint64_t> requests;
  for (const auto& d : delivered) {
    EXPECT_TRUE(requests.insert(d.request_id).second) << "request " << d.request_id;
    EXPECT_EQ(replies.at(d.request_id).structures.front().id, d.value.id);
  }
  std::vector<std::string> swaps;
  for (const auto& e : j->sampler_log())
    if (e.op == cpl::sampler_op::control)
      swaps.push_back(std::get<msg::control>(*e.body).target);
  EXPECT_EQ(swaps, (std::vector<std::string>{"random", "ot_feedback"}));
  const auto s = stats(sys, sg);
  EXPECT_EQ(s.at("sampler"), "ot_feedback");
  std::printf("[ numbers  ] by sampler: ot %zu, random %zu, ot_feedback %zu; sampled %s, "
              "invalid %s, duplicate %s, validation %s s\n",
              by_sampler["ot"], by_sampler["random"], by_sampler["ot_feedback"],
              s.at("sampled").c_str(), s.at("invalid").c_str(), s.at("duplicate").c_str(),
              s.at("validation_seconds").c_str());
  caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
}

TEST_F(structure_generator_test, a_generator_killed_mid_work_resumes_like_an_uninterrupted_one) {
  // One round trip at a time makes the order of selections and verdicts fixed, so two runs
  // with one seed must hand out the same structures.
  const auto cfg_for = [this](std::shared_ptr<cpl::journal> j) {
    auto c = config("ot_feedback", 11);
    c.journal = std::move(j);
    c.pipeline_depth = 1;
    c.batch = 4;
    c.checkpoint_every = 5;
    return c;
  };
  std::vector<msg::structure> uninterrupted;
  {
    caf::actor_system sys{sys_cfg_};
    const caf::actor sg = act::spawn_structure_generator(sys, cfg_for(journal("a.sqlite")));
    for (const auto& [id, count] : {std::pair{1U, 6U}, std::pair{2U, 14U}}) {
      auto b = get(sys, sg, id, count);
      uninterrupted.insert(uninterrupted.end(), b.structures.begin(), b.structures.end());
    }
    caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
  }
  const auto report = [](const cpl::journal& j, const char* when) {
    std::printf("[ numbers  ] %s: %zu delivered, %zu valid, %zu sampled and not validated, %zu "
                "sampler log entries after the last checkpoint\n",
                when, j.count(cpl::structure_state::delivered),
                j.count(cpl::structure_state::valid), j.count(cpl::structure_state::sampled),
                j.sampler_log(j.latest_sampler_checkpoint()->seq).size());
  };
  std::vector<msg::structure> resumed;
  {
    caf::actor_system sys{sys_cfg_};
    const caf::actor sg = act::spawn_structure_generator(sys, cfg_for(journal("b.sqlite")));
    auto b = get(sys, sg, 1, 6);
    resumed = b.structures;
    // Killed at once, while it refills its buffer (a select logged, usually not yet answered).
    caf::anon_send_exit(sg, caf::exit_reason::kill);
  }
  report(*journal("b.sqlite"), "first kill");
  {
    // Resumed, then killed again once a batch is sampled but not yet validated (seen through
    // a second connection to the journal).
    caf::actor_system sys{sys_cfg_};
    const caf::actor sg = act::spawn_structure_generator(sys, cfg_for(journal("b.sqlite")));
    const auto watcher = cpl::journal::open(tmp_ / "b.sqlite", cpl::journal_mode::open);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    bool sampled_seen = false;
    while (!sampled_seen && std::chrono::steady_clock::now() < deadline) {
      sampled_seen = watcher.count(cpl::structure_state::sampled) > 0;
      std::this_thread::sleep_for(2ms);
    }
    caf::anon_send_exit(sg, caf::exit_reason::kill);
    EXPECT_TRUE(sampled_seen);
  }
  {
    auto j = journal("b.sqlite");
    report(*j, "second kill");
    EXPECT_EQ(j->count(cpl::structure_state::delivered), 6U);
    caf::actor_system sys{sys_cfg_};
    const caf::actor sg = act::spawn_structure_generator(sys, cfg_for(j));
    auto b = get(sys, sg, 2, 14);
    resumed.insert(resumed.end(), b.structures.begin(), b.structures.end());
    EXPECT_EQ(j->count(cpl::structure_state::delivered), 20U);
    std::size_t resumes = 0;
    for (const auto& e : j->events())
      resumes += e.kind == "resumed";
    EXPECT_EQ(resumes, 2U);
    caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
  }
  ASSERT_EQ(resumed.size(), uninterrupted.size());
  for (std::size_t i = 0; i < resumed.size(); ++i) {
    EXPECT_EQ(resumed[i].id, uninterrupted[i].id) << i;
    EXPECT_EQ(resumed[i].latent, uninterrupted[i].latent) << i;
    EXPECT_EQ(resumed[i].coords_nm, uninterrupted[i].coords_nm) << i;
  }
}

TEST_F(structure_generator_test, outside_feedback_and_control) {
  caf::actor_system sys{sys_cfg_};
  auto j = journal("journal.sqlite");
  auto cfg = config("ot_feedback", 2);
  cfg.journal = j;
  const caf::actor sg = act::spawn_structure_generator(sys, cfg);
  wait_idle(sys, sg, 8);

  const auto pause = command(msg::control_command::pause, {}, {}, "operator-1");
  EXPECT_EQ(control(sys, sg, pause).text, "structure generator paused");
  const auto ready = std::stoul(stats(sys, sg)["ready"]);
  // Paused: the buffer is handed out but not refilled.
  get(sys, sg, 1, static_cast<std::uint32_t>(ready));
  auto s = stats(sys, sg);
  EXPECT_EQ(s["ready"], "0");
  EXPECT_EQ(s["in_flight"], "0");

  auto limit = command(msg::control_command::set_limit, "buffer", "2");
  EXPECT_EQ(control(sys, sg, limit).text, "buffer is now 2");
  for (const auto& [target, value, part] :
       {std::tuple{"buffer", "0", "whole number"}, std::tuple{"buffer", "x", "not a number"},
        std::tuple{"factor_extra", "0.5", "[1, 1000]"}, std::tuple{"nodes", "3", "no limit"}}) {
    limit.target = target;
    limit.value = value;
    auto r = mummi::test::ask<msg::ack>(sys, sg, limit, 10s, "set_limit");
    ASSERT_TRUE(std::holds_alternative<msg::error_reply>(r)) << target << " " << value;
    EXPECT_NE(std::get<msg::error_reply>(r).message.find(part), std::string::npos)
      << std::get<msg::error_reply>(r).message;
  }
  EXPECT_TRUE(std::holds_alternative<msg::error_reply>(mummi::test::ask<msg::ack>(
    sys, sg, command(msg::control_command::drain_node), 10s, "drain")));

  EXPECT_EQ(control(sys, sg, command(msg::control_command::resume)).text, "structure generator running");
  wait_idle(sys, sg, 4); // factor_extra 2 x buffer 2

  // Frame and createsims feedback reach the sampler through the journal's log; validation
  // feedback is the generator's own and is refused.
  msg::feedback frame;
  frame.kind = msg::feedback_kind::frame;
  frame.structure_id = 1;
  frame.ok = true;
  frame.latent = std::vector<float>(32, 0.25f);
  caf::anon_send(sg, frame);
  msg::feedback cs;
  cs.kind = msg::feedback_kind::createsims;
  cs.structure_id = 2;
  cs.ok = false;
  cs.latent = std::vector<float>(32, 0.5f);
  caf::anon_send(sg, cs);
  msg::feedback val = cs;
  val.kind = msg::feedback_kind::validation;
  caf::anon_send(sg, val);
  s = stats(sys, sg);
  EXPECT_EQ(s["rejected_feedback"], "1");
  std::vector<msg::feedback> logged;
  for (const auto& e : j->sampler_log())
    if (e.op == cpl::sampler_op::feedback
        && std::get<msg::feedback>(*e.body).kind != msg::feedback_kind::validation)
      logged.push_back(std::get<msg::feedback>(*e.body));
  EXPECT_EQ(logged, (std::vector<msg::feedback>{frame, cs}));

  // A swap to an unknown sampler is refused with the sampler's reason; the old one stays.
  auto r = mummi::test::ask<msg::ack>(
    sys, sg, command(msg::control_command::swap_sampler, "dynim"), 10s, "swap");
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(r));
  EXPECT_NE(std::get<msg::error_reply>(r).message.find("'dynim'"), std::string::npos)
    << std::get<msg::error_reply>(r).message;
  EXPECT_EQ(stats(sys, sg)["sampler"], "ot_feedback");

  // Stop: checkpointed, then requests are refused.
  EXPECT_NE(control(sys, sg, command(msg::control_command::stop)).text.find("checkpointed"), std::string::npos);
  EXPECT_EQ(j->latest_sampler_checkpoint()->seq, j->last_sampler_seq());
  auto refused = mummi::test::ask<msg::structure_batch>(sys, sg, msg::structure_request{7, 1},
                                                        10s, "request after stop");
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(refused));
  EXPECT_NE(std::get<msg::error_reply>(refused).message.find("stopped"), std::string::npos);
  auto huge = mummi::test::ask<msg::structure_batch>(
    sys, sg, msg::structure_request{8, 1000000}, 10s, "huge request");
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(huge));
  EXPECT_NE(std::get<msg::error_reply>(huge).message.find("at most 100000"), std::string::npos);
  bool saw_pause = false;
  for (const auto& e : j->events())
    saw_pause = saw_pause || (e.kind == "control" && e.text.find("operator-1") != std::string::npos
                              && e.text.find("pause") != std::string::npos);
  EXPECT_TRUE(saw_pause);
  caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
}

TEST_F(structure_generator_test, a_generator_that_cannot_decode_fails_requests_with_the_reason) {
  caf::actor_system sys{sys_cfg_};
  auto cfg = config("random", 1);
  // Ensembles of 16-D points: the 32-D model refuses every batch.
  ml::state_ensembles small;
  small.a.dims = small.b.dims = 16;
  for (int i = 0; i < 16 * 20; ++i) {
    small.a.values.push_back(static_cast<float>(i % 7));
    small.b.values.push_back(static_cast<float>(i % 5) + 3);
  }
  cfg.sampler.states = small;
  const caf::actor sg = act::spawn_structure_generator(sys, cfg);
  auto r = mummi::test::ask<msg::structure_batch>(sys, sg, msg::structure_request{1, 2}, 60s,
                                                  "request");
  ASSERT_TRUE(std::holds_alternative<msg::error_reply>(r));
  const auto& e = std::get<msg::error_reply>(r);
  EXPECT_EQ(e.code, msg::error_code::internal);
  EXPECT_NE(e.message.find("3 failed batches in a row"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("generator:"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("16"), std::string::npos) << e.message;
  auto s = stats(sys, sg);
  EXPECT_GE(std::stoul(s["batch_errors"]), 3U); // a batch already under way fails too
  EXPECT_EQ(s["valid"], "0");

  auto bad = config("ot", 1);
  bad.buffer = 0;
  EXPECT_THROW(act::spawn_structure_generator(sys, bad), std::invalid_argument);
  caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
}

TEST_F(structure_generator_test, a_damaged_journal_is_refused_at_resume_naming_the_entry) {
  caf::actor_system sys{sys_cfg_};
  auto j = journal("journal.sqlite");
  auto cfg = config("ot", 4);
  cfg.journal = j;
  {
    const caf::actor sg = act::spawn_structure_generator(sys, cfg);
    wait_idle(sys, sg, 8);
    control(sys, sg, command(msg::control_command::stop));
    caf::scoped_actor self{sys};
    self->send_exit(sg, caf::exit_reason::user_shutdown);
    self->wait_for(sg);
  }
  // A log entry that says feedback but holds another message.
  const auto seq = j->log_message(cpl::sampler_op::feedback, msg::ping{});
  try {
    act::spawn_structure_generator(sys, cfg);
    ADD_FAILURE() << "a damaged journal was resumed";
  } catch (const cpl::journal_error& e) {
    EXPECT_NE(std::string(e.what()).find("sampler_log seq " + std::to_string(seq)
                                         + " holds a ping message, not a feedback"),
              std::string::npos)
      << e.what();
  }
}
