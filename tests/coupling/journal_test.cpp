// The campaign journal: structures move through their states and come back exactly; the
// sampler log keeps order and messages; the latest checkpoint wins; a transaction that is not
// committed leaves nothing; a reopened journal has everything; the sqlite3 CLI reads the same
// rows; and files that are not journals are refused naming the path and the problem.

#include "mummi/coupling/journal.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "../support/temp_dir.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
namespace fs = std::filesystem;

namespace {

msg::structure make_structure(std::uint64_t id, float seed) {
  msg::structure s;
  s.id = id;
  s.latent = {seed, seed + 0.5f, -seed};
  s.lambda = 0.25f * static_cast<float>(id % 4);
  s.sampler = id % 2 == 0 ? "ot" : "random";
  return s;
}

/// What the sqlite3 command-line shell prints for `sql` on `db`.
std::string sqlite3_cli(const fs::path& db, const std::string& sql) {
  const std::string cmd = "sqlite3 '" + db.string() + "' \"" + sql + "\"";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr)
    return "popen failed";
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr)
    out += buf;
  ::pclose(p);
  return out;
}

} // namespace

TEST(journal, structures_move_through_their_states_and_survive_reopening) {
  const mummi::test::temp_dir tmp;
  const fs::path path = tmp / "journal.sqlite";
  {
    auto j = cpl::journal::open(path, cpl::journal_mode::create);
    std::vector<msg::structure> batch;
    for (std::uint64_t id = 1; id <= 5; ++id)
      batch.push_back(make_structure(id, static_cast<float>(id)));
    EXPECT_EQ(j.add_structures(batch, cpl::structure_state::sampled), 5U);
    // Known ids are left alone.
    EXPECT_EQ(j.add_structures(std::vector<msg::structure>{make_structure(2, 99.f)},
                               cpl::structure_state::valid),
              0U);
    EXPECT_EQ(j.count(cpl::structure_state::sampled), 5U);

    auto validated = batch[1];
    validated.coords_nm = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f};
    validated.epot_kj_mol = -1234.5;
    validated.fmax_kj_mol_nm = 98.25;
    j.update_structure(validated, cpl::structure_state::valid);
    j.update_structure(batch[2], cpl::structure_state::invalid);
    j.update_structure(batch[3], cpl::structure_state::valid);
    const std::vector<std::uint64_t> delivered = {4};
    j.mark_delivered(delivered, 77);
    EXPECT_THROW(j.update_structure(make_structure(40, 1.f), cpl::structure_state::valid),
                 cpl::journal_error);
    const std::vector<std::uint64_t> unknown = {41};
    EXPECT_THROW(j.mark_delivered(unknown, 1), cpl::journal_error);
  }
  const auto j = cpl::journal::open(path, cpl::journal_mode::open);
  const auto valid = j.structures(cpl::structure_state::valid);
  ASSERT_EQ(valid.size(), 1U);
  EXPECT_EQ(valid[0].value.id, 2U);
  EXPECT_EQ(valid[0].value.coords_nm, (std::vector<float>{1.f, 2.f, 3.f, 4.f, 5.f, 6.f}));
  EXPECT_EQ(valid[0].value.latent, make_structure(2, 2.f).latent);
  EXPECT_EQ(valid[0].value.sampler, "ot");
  EXPECT_EQ(valid[0].value.lambda, 0.5f);
  EXPECT_EQ(valid[0].value.epot_kj_mol, -1234.5);
  EXPECT_EQ(valid[0].value.fmax_kj_mol_nm, 98.25);
  EXPECT_TRUE(valid[0].value.valid);
  const auto delivered = j.structures(cpl::structure_state::delivered);
  ASSERT_EQ(delivered.size(), 1U);
  EXPECT_EQ(delivered[0].value.id, 4U);
  EXPECT_EQ(delivered[0].request_id, 77U);
  EXPECT_EQ(j.count(cpl::structure_state::sampled), 2U);
  EXPECT_EQ(j.count(cpl::structure_state::invalid), 1U);
  ASSERT_TRUE(j.find_structure(3).has_value());
  EXPECT_FALSE(j.find_structure(3)->value.valid);
  EXPECT_FALSE(j.find_structure(6).has_value());

  // An independent reader sees the same rows (state 1 = valid, 5 = delivered).
  EXPECT_EQ(sqlite3_cli(path, "SELECT id, state, request_id FROM structures ORDER BY id"),
            "1|0|0\n2|1|0\n3|2|0\n4|5|77\n5|0|0\n");
  EXPECT_EQ(sqlite3_cli(path, "PRAGMA journal_mode"), "wal\n");
}

TEST(journal, the_sampler_log_keeps_order_and_messages_and_the_latest_checkpoint_wins) {
  const mummi::test::temp_dir tmp;
  auto j = cpl::journal::open(tmp / "j.sqlite", cpl::journal_mode::open_or_create);
  EXPECT_EQ(j.last_sampler_seq(), 0U);
  EXPECT_FALSE(j.latest_sampler_checkpoint().has_value());
  msg::feedback f;
  f.kind = msg::feedback_kind::frame;
  f.structure_id = 12;
  f.ok = true;
  f.latent = {0.5f, -1.25f};
  msg::control c;
  c.command = msg::control_command::swap_sampler;
  c.target = "importance";
  c.params = {{"k", "5"}};
  c.issuer = "operator";
  const auto s1 = j.log_select(10);
  const auto s2 = j.log_message(cpl::sampler_op::feedback, f);
  j.put_sampler_checkpoint({s2, "ot", std::string("state\0with a zero byte", 22)});
  const auto s3 = j.log_message(cpl::sampler_op::control, c);
  const auto s4 = j.log_select(3);
  EXPECT_LT(s1, s2);
  EXPECT_LT(s2, s3);
  EXPECT_LT(s3, s4);
  EXPECT_EQ(j.last_sampler_seq(), s4);
  EXPECT_THROW(j.log_message(cpl::sampler_op::select, f), std::invalid_argument);

  const auto all = j.sampler_log();
  ASSERT_EQ(all.size(), 4U);
  EXPECT_EQ(all[0].op, cpl::sampler_op::select);
  EXPECT_EQ(all[0].count, 10U);
  EXPECT_FALSE(all[0].body.has_value());
  ASSERT_TRUE(all[1].body.has_value());
  EXPECT_EQ(std::get<msg::feedback>(*all[1].body), f);
  EXPECT_EQ(std::get<msg::control>(*all[2].body), c);
  EXPECT_EQ(all[3].count, 3U);

  const auto cp = j.latest_sampler_checkpoint();
  ASSERT_TRUE(cp.has_value());
  EXPECT_EQ(cp->seq, s2);
  EXPECT_EQ(cp->sampler, "ot");
  EXPECT_EQ(cp->bytes, std::string("state\0with a zero byte", 22));
  const auto after = j.sampler_log(cp->seq);
  ASSERT_EQ(after.size(), 2U);
  EXPECT_EQ(after[0].seq, s3);
  j.put_sampler_checkpoint({s4, "importance", "later"});
  EXPECT_EQ(j.latest_sampler_checkpoint()->sampler, "importance");
  // Only the latest two checkpoints are kept.
  j.put_sampler_checkpoint({s4 + 1, "importance", "latest"});
  EXPECT_EQ(sqlite3_cli(j.path(), "SELECT seq, bytes FROM sampler_checkpoints ORDER BY seq"),
            std::to_string(s4) + "|later\n" + std::to_string(s4 + 1) + "|latest\n");

  // A damaged message is named by its seq.
  j.add_event("test", "note", "before damage");
  ASSERT_EQ(sqlite3_cli(j.path(), "UPDATE sampler_log SET body = x'00010203' WHERE seq = "
                                    + std::to_string(s2)),
            "");
  try {
    (void)j.sampler_log();
    ADD_FAILURE() << "a damaged log entry was read";
  } catch (const cpl::journal_error& e) {
    EXPECT_NE(std::string(e.what()).find("sampler_log seq " + std::to_string(s2)),
              std::string::npos)
      << e.what();
  }
  const auto events = j.events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].source, "test");
  EXPECT_EQ(events[0].kind, "note");
  EXPECT_EQ(events[0].text, "before damage");
  EXPECT_GT(events[0].unix_ns, 0);
}

TEST(journal, a_transaction_not_committed_leaves_nothing) {
  const mummi::test::temp_dir tmp;
  auto j = cpl::journal::open(tmp / "j.sqlite", cpl::journal_mode::create);
  try {
    cpl::journal::transaction t(j);
    j.log_select(4);
    j.add_structures(std::vector<msg::structure>{make_structure(1, 1.f)},
                     cpl::structure_state::sampled);
    {
      cpl::journal::transaction inner(j); // joins the outer one
      j.add_event("test", "x", "y");
      inner.commit();
    }
    throw std::runtime_error("fails before commit");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(j.last_sampler_seq(), 0U);
  EXPECT_EQ(j.count(cpl::structure_state::sampled), 0U);
  EXPECT_TRUE(j.events().empty());
  {
    cpl::journal::transaction t(j);
    j.log_select(4);
    j.add_structures(std::vector<msg::structure>{make_structure(1, 1.f)},
                     cpl::structure_state::sampled);
    t.commit();
  }
  EXPECT_EQ(j.last_sampler_seq(), 1U);
  EXPECT_EQ(j.count(cpl::structure_state::sampled), 1U);
}

TEST(journal, files_that_are_not_journals_are_refused_naming_the_problem) {
  const mummi::test::temp_dir tmp;
  const auto error_of = [](const fs::path& p, cpl::journal_mode mode) {
    try {
      (void)cpl::journal::open(p, mode);
    } catch (const cpl::journal_error& e) {
      EXPECT_EQ(e.path(), p);
      return std::string(e.what());
    }
    return std::string("opened");
  };
  const auto expect_error = [&](const fs::path& p, cpl::journal_mode mode,
                                const std::string& part) {
    const std::string e = error_of(p, mode);
    EXPECT_NE(e.find(p.string()), std::string::npos) << e;
    EXPECT_NE(e.find(part), std::string::npos) << e;
  };
  expect_error(tmp / "missing.sqlite", cpl::journal_mode::open, "no such journal");
  EXPECT_FALSE(fs::exists(tmp / "missing.sqlite"));
  expect_error(tmp / "no-dir" / "j.sqlite", cpl::journal_mode::create, "cannot create");
  (void)cpl::journal::open(tmp / "j.sqlite", cpl::journal_mode::create);
  expect_error(tmp / "j.sqlite", cpl::journal_mode::create, "already exists");
  std::ofstream(tmp / "text.sqlite") << "this is not a database, it is a text file of some length";
  expect_error(tmp / "text.sqlite", cpl::journal_mode::open, "not an SQLite database");
  ASSERT_EQ(sqlite3_cli(tmp / "other.sqlite", "CREATE TABLE t(x)"), "");
  expect_error(tmp / "other.sqlite", cpl::journal_mode::open_or_create, "not a mummi journal");
  ASSERT_EQ(sqlite3_cli(tmp / "j.sqlite", "UPDATE meta SET value = '99' WHERE key = "
                                          "'schema_version'"),
            "");
  expect_error(tmp / "j.sqlite", cpl::journal_mode::open, "schema version 99");
  expect_error(tmp.path(), cpl::journal_mode::open, "not a regular file");
}

TEST(journal, jobs_and_their_attempts_are_kept_and_a_version_1_journal_is_upgraded) {
  const mummi::test::temp_dir tmp;
  const auto path = tmp / "j.sqlite";
  {
    auto j = cpl::journal::open(path, cpl::journal_mode::create);
    EXPECT_EQ(j.last_job_id(), 0U);
    cpl::journal_job job;
    job.job_id = 7;
    job.kind = msg::job_kind::simulation;
    job.structure_id = 3;
    job.state = cpl::job_state::running;
    job.node = "n1";
    job.attempt = 2;
    job.seed = 99;
    job.input_dir = "sims/3/createsims";
    job.work_dir = "sims/3/simulation";
    job.target_ns = 0.5;
    j.put_job(job);
    j.start_attempt(7, 1, "n2");
    j.end_attempt(7, 1, msg::job_status::failed, msg::failure_reason::node_lost, "n2 lost");
    j.start_attempt(7, 2, "n1");
    job.state = cpl::job_state::succeeded;
    job.ns_done = 0.5;
    j.put_job(job);
    EXPECT_EQ(j.last_job_id(), 7U);
    EXPECT_EQ(j.attempt_count(7), 2U);
    const auto back = j.jobs();
    ASSERT_EQ(back.size(), 1U);
    EXPECT_EQ(back[0].state, cpl::job_state::succeeded);
    EXPECT_EQ(back[0].kind, msg::job_kind::simulation);
    EXPECT_EQ(back[0].node, "n1");
    EXPECT_EQ(back[0].attempt, 2U);
    EXPECT_EQ(back[0].seed, 99U);
    EXPECT_EQ(back[0].work_dir, "sims/3/simulation");
    EXPECT_EQ(back[0].ns_done, 0.5);
  }
  EXPECT_EQ(sqlite3_cli(path, "SELECT attempt, node, status, reason FROM attempts ORDER BY attempt"),
            "1|n2|1|6\n2|n1||\n");
  // Made into a version-1 journal (no job tables), it is upgraded when opened.
  ASSERT_EQ(sqlite3_cli(path, "DROP TABLE attempts; DROP TABLE jobs; UPDATE meta SET value = '1' "
                              "WHERE key = 'schema_version'"),
            "");
  const auto j = cpl::journal::open(path, cpl::journal_mode::open);
  EXPECT_TRUE(j.jobs().empty());
  EXPECT_EQ(sqlite3_cli(path, "SELECT value FROM meta WHERE key = 'schema_version'"), "2\n");
}
