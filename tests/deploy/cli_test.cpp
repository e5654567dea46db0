// The `mummi` executable, run as a user runs it.

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "../support/actor_system.hpp"
#include "../support/md_files.hpp"
#include "mummi/actors/node_registry.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/coupling/frame_store.hpp"
#include "mummi/coupling/gateway.hpp"

namespace cpl = mummi::coupling;
using mummi::test::read_file;
using namespace std::chrono_literals;

namespace {

struct result {
  int status = -1;
  std::string out;
  std::string err; ///< when run_mummi was given a file for stderr
};

/// Runs mummi with its stdout piped (and its stderr written to `err_file`, when given).
result run_mummi(std::vector<std::string> args, std::chrono::seconds timeout = 60s,
                 const std::filesystem::path& err_file = {}) {
  args.insert(args.begin(), MUMMI_PATH);
  cpl::spawn_options o;
  o.stderr_file = err_file;
  cpl::child_process p(std::move(args), {.stdout_pipe = true}, o);
  result r;
  while (auto line = p.read_line(timeout))
    r.out += *line + "\n";
  if (auto st = p.wait_for(10s))
    r.status = WIFEXITED(*st) ? WEXITSTATUS(*st) : 128 + WTERMSIG(*st);
  if (!err_file.empty())
    r.err = read_file(err_file);
  return r;
}

} // namespace

TEST(cli, version_and_help) {
  auto v = run_mummi({"--version"});
  EXPECT_EQ(v.status, 0);
  EXPECT_NE(v.out.find("mummi "), std::string::npos) << v.out;
  auto h = run_mummi({"--help"});
  EXPECT_EQ(h.status, 0);
  for (const char* sub : {"run", "node", "check", "createsims"})
    EXPECT_NE(h.out.find(sub), std::string::npos) << h.out;
}

TEST(cli, run_runs_a_small_campaign_to_its_stopping_point_and_refuses_to_overwrite_it) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  std::ofstream(dir / "c.yaml")
    << "campaign: {name: t, dir: " << (dir / "run").string() << "}\n"
    << "head: {heartbeat_ms: 100}\nnodes: {local: 2}\n"
    << "structure_generator: {buffer: 1, factor_extra: 1, batch: 2}\n"
    << "jobs:\n  createsims: {cores: 1}\n"
    << "  simulation: {cores: 1, length_ns: 0.02, frame_ps: 2, checkpoint_minutes: 0.1}\n"
    << "stop: {simulations: 2}\n";
  const auto err = dir / "stderr.txt";
  auto r = run_mummi({"run", (dir / "c.yaml").string()}, 300s, err);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("campaign 't' finished"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(": 2 simulations done (0.04"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("results in " + (dir / "run").string()), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("node node-0001 joined"), std::string::npos) << r.err;
  std::ifstream ep{dir / "run" / "head.endpoint"};
  std::string endpoint;
  ep >> endpoint;
  EXPECT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
  EXPECT_TRUE(std::filesystem::exists(dir / "run" / "journal.sqlite"));

  // The same campaign again: refused (resume it instead); impossible resources: refused.
  auto again = run_mummi({"run", (dir / "c.yaml").string()}, 60s, err);
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("already holds a campaign"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
  std::ofstream(dir / "big.yaml") << "campaign: {dir: " << (dir / "big").string() << "}\n"
                                  << "nodes: {local: 1}\njobs: {simulation: {cores: 4096}}\n";
  auto big = run_mummi({"run", (dir / "big.yaml").string()}, 60s, err);
  EXPECT_EQ(big.status, 1);
  EXPECT_NE(big.err.find("impossible resources: jobs need 4096 cores"), std::string::npos)
    << big.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "big" / "journal.sqlite"));
  // A sampler parameter that does not exist: refused before the campaign exists.
  std::ofstream(dir / "odd.yaml") << "campaign: {dir: " << (dir / "odd").string() << "}\n"
                                  << "sampler: {name: ot, params: {colour: red}}\n";
  auto odd = run_mummi({"run", (dir / "odd.yaml").string()}, 60s, err);
  EXPECT_EQ(odd.status, 1);
  EXPECT_NE(odd.err.find("unknown parameter 'colour'"), std::string::npos) << odd.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "odd" / "journal.sqlite"));
}

TEST(cli, node_with_a_malformed_head_endpoint_fails_at_once) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_mummi({"node", "--head", "foo", "--node-id", "n1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(cli, check_reports_every_problem_and_fails) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  std::ofstream(dir / "bad.yaml") << "head: {heartbeat_ms: -1, grace_s: x}\nnodes: {count: 2}\n";
  auto bad = run_mummi({"check", (dir / "bad.yaml").string()});
  EXPECT_EQ(bad.status, 2);
  std::ofstream(dir / "good.yaml") << "nodes: {local: 1}\n";
  auto good = run_mummi({"check", (dir / "good.yaml").string()});
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

namespace {

/// A campaign file for a small demo system (6 x 6 nm: quick to build and equilibrate).
std::filesystem::path small_demo_config(const std::filesystem::path& dir,
                                        const std::string& upper) {
  const std::string demo = MUMMI_DATA_DIR "/demo/";
  auto cfg = dir / "campaign.yaml";
  std::ofstream(cfg) << "system:\n"
                     << "  files: [" << demo << "forcefield.itp, " << demo << "solvent.itp, "
                     << demo << "lipids.itp, " << demo << "protein.itp]\n"
                     << "  protein: {molecule: DPR, structure: " << demo << "protein.gro}\n"
                     << "  membrane:\n    box_nm: [6, 6, 12]\n    upper: " << upper
                     << "\n    lower: {DPC: 0.7, DPS: 0.3}\n"
                     << "gromacs: {threads: 2}\n";
  return cfg;
}

} // namespace

TEST(cli, createsims_builds_equilibrates_and_prepares_production) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  auto cfg = small_demo_config(dir, "{DPC: 0.8, DST: 0.2}");
  auto r
    = run_mummi({"createsims", cfg.string(), "--out", (dir / "sim").string(), "--seed", "4"}, 300s);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("solvent in the core: 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("production input: " + (dir / "sim" / "production.tpr").string()),
            std::string::npos)
    << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "sim" / "production.tpr"));
}

TEST(cli, createsims_reports_a_bad_recipe_and_a_bad_config) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  auto cfg = small_demo_config(dir, "{DPC: 0.5, POPX: 0.4}");
  auto err = dir / "stderr.txt";
  auto run = [&err](std::vector<std::string> args) {
    args.insert(args.begin(), MUMMI_PATH);
    cpl::spawn_options o;
    o.stderr_file = err;
    cpl::child_process p(std::move(args), {}, o);
    auto st = p.wait_for(60s);
    return st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  };
  EXPECT_EQ(run({"createsims", cfg.string(), "--out", (dir / "sim").string()}), 1);
  auto text = read_file(err);
  EXPECT_NE(text.find("upper leaflet: fractions sum to 0.9, not 1"), std::string::npos) << text;
  EXPECT_NE(text.find("upper leaflet: unknown lipid 'POPX'"), std::string::npos) << text;

  std::ofstream(cfg, std::ios::app) << "createsims: {max_builds: 0}\n";
  EXPECT_EQ(run({"createsims", cfg.string(), "--out", (dir / "sim").string()}), 2);
  text = read_file(err);
  EXPECT_NE(text.find("createsims.max_builds: must be at least 1"), std::string::npos) << text;
}

TEST(cli, validate_accepts_the_demo_protein_and_rejects_an_overlap) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  const std::string demo = MUMMI_DATA_DIR "/demo/protein.gro";
  // Two bonded linker beads (atoms 75 and 76) at one place.
  auto lines = read_file(demo);
  std::vector<std::string> rows;
  for (std::size_t at = 0, next; (next = lines.find('\n', at)) != std::string::npos; at = next + 1)
    rows.push_back(lines.substr(at, next - at));
  rows[2 + 75] = rows[2 + 75].substr(0, 20) + rows[2 + 74].substr(20, 24);
  {
    std::ofstream broken(dir / "broken.gro");
    for (const auto& r : rows)
      broken << r << "\n";
  }
  auto r = run_mummi(
    {"validate", demo, (dir / "broken.gro").string(), "--out", (dir / "valid").string()}, 120s);
  EXPECT_EQ(r.status, 3) << r.out;
  EXPECT_NE(r.out.find("protein.gro"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("non_finite"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("validate: 1 of 2 accepted"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "valid" / "protein.gro"));
  EXPECT_FALSE(std::filesystem::exists(dir / "valid" / "broken.gro"));
}

TEST(cli, train_makes_round_0_then_fine_tunes_round_1) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  const std::string frames = MUMMI_DATA_DIR "/demo/frames.h5";
  const auto err = dir / "stderr.txt";
  const auto r0 = (dir / "round-0.ae").string();
  auto a = run_mummi({"train", frames, "--out", r0, "--hidden", "64,32", "--latent", "8",
                      "--epochs", "4", "--threads", "1"},
                     120s, err);
  EXPECT_EQ(a.status, 0) << a.out << a.err;
  EXPECT_NE(a.out.find("1000 frames of 127 beads (state A 500, state B 500, unlabelled 0)"),
            std::string::npos)
    << a.out;
  EXPECT_NE(a.out.find("round 0 written to " + r0), std::string::npos) << a.out;
  // Not a terminal: plain progress lines on stderr.
  EXPECT_NE(a.err.find("train: epoch 1/4 "), std::string::npos) << a.err;

  const auto r1 = (dir / "round-1.ae").string();
  auto b = run_mummi({"train", frames, "--from", r0, "--out", r1, "--epochs", "2", "--threads", "1"},
                     120s, err);
  EXPECT_EQ(b.status, 0) << b.out << b.err;
  EXPECT_NE(b.out.find("round 1 written to " + r1), std::string::npos) << b.out;

  // Never overwrites a round.
  auto c = run_mummi({"train", frames, "--out", r0, "--epochs", "1"}, 60s, err);
  EXPECT_EQ(c.status, 1);
  EXPECT_NE(c.err.find(r0 + ": already exists"), std::string::npos) << c.err;
}

TEST(cli, train_refuses_bad_frames_and_a_model_for_another_protein) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  const auto err = dir / "stderr.txt";
  std::ofstream(dir / "text.h5") << "not a frame store\n";
  auto a = run_mummi({"train", (dir / "text.h5").string(), "--out", (dir / "m.ae").string()}, 60s,
                     err);
  EXPECT_EQ(a.status, 1);
  EXPECT_NE(a.err.find((dir / "text.h5").string() + ": "), std::string::npos) << a.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "m.ae"));

  // Ten-bead frames fine-tuning the 127-bead demo model.
  cpl::frame_store_options so;
  so.atoms = 10;
  cpl::frame_block block;
  block.atoms = 10;
  for (int f = 0; f < 8; ++f) {
    for (int i = 0; i < 30; ++i)
      block.positions_nm.push_back(static_cast<float>(f + i) * 0.1f);
    block.meta.push_back({});
  }
  cpl::frame_store::create(dir / "ten.h5", so).append(block);
  auto b = run_mummi({"train", (dir / "ten.h5").string(), "--from", MUMMI_DATA_DIR "/demo/model.ae",
                      "--out", (dir / "m.ae").string()},
                     60s, err);
  EXPECT_EQ(b.status, 1);
  EXPECT_NE(b.err.find("model.ae: made for 127 beads, but 10 are expected"), std::string::npos)
    << b.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "m.ae"));
}

TEST(cli, demo_data_refuses_to_overwrite_and_bad_lengths_before_simulating) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  const auto err = dir / "stderr.txt";
  std::filesystem::create_directories(dir / "out");
  std::ofstream(dir / "out" / "model.ae") << "a model\n";
  auto a = run_mummi({"demo-data", "--out", (dir / "out").string()}, 30s, err);
  EXPECT_EQ(a.status, 1);
  EXPECT_NE(a.err.find("model.ae exists: refusing to overwrite it"), std::string::npos) << a.err;
  EXPECT_EQ(read_file(dir / "out" / "model.ae"), "a model\n");

  auto b = run_mummi({"demo-data", "--out", (dir / "new").string(), "--ns-per-state", "0.1",
                      "--discard-ps", "200"},
                     30s, err);
  EXPECT_EQ(b.status, 1);
  EXPECT_NE(b.err.find("--discard-ps 200 is not shorter than --ns-per-state 0.1 ns"),
            std::string::npos)
    << b.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "new" / "simulations"));
}

namespace {

// The "between A and B: N of M" count `mummi sample` printed.
std::size_t between_count(const std::string& out) {
  const auto at = out.find("nm): ", out.find("between A and B ("));
  return at == std::string::npos ? 0 : std::stoul(out.substr(at + 5));
}

} // namespace

TEST(cli, sample_decodes_selections_and_places_ot_between_the_states) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  const auto err = dir / "stderr.txt";
  auto ot = run_mummi({"sample", "--sampler", "ot", "--count", "200", "--out",
                       (dir / "ot").string()},
                      120s, err);
  ASSERT_EQ(ot.status, 0) << ot.out << ot.err;
  EXPECT_NE(ot.out.find("sample: ot, 200 points from 500 A and 500 B encodings (32-D)"),
            std::string::npos)
    << ot.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "ot" / "sample-1.gro"));
  EXPECT_TRUE(std::filesystem::exists(dir / "ot" / "sample-200.gro"));
  auto feedback = run_mummi({"sample", "--sampler", "ot_feedback", "--count", "200"}, 120s, err);
  ASSERT_EQ(feedback.status, 0) << feedback.out << feedback.err;
  auto random = run_mummi({"sample", "--sampler", "random", "--count", "200"}, 120s, err);
  ASSERT_EQ(random.status, 0) << random.out << random.err;
  // With their defaults, points along matched A-B pairs away from their ends (ot), and those
  // kept far from the states' own encodings (ot_feedback), decode between the states far more
  // often than points drawn uniformly from the ensembles' bounding box (measured with seed 1:
  // ot 164, ot_feedback 191, random 118 of 200).
  EXPECT_GT(between_count(ot.out), between_count(random.out) + 25) << ot.out << random.out;
  EXPECT_GT(between_count(feedback.out), between_count(random.out) + 25)
    << feedback.out << random.out;

  auto bad = run_mummi({"sample", "--sampler", "ot", "--param", "lambda_min=2"}, 60s, err);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("lambda_min"), std::string::npos) << bad.err;
  auto unknown = run_mummi({"sample", "--sampler", "dynim"}, 60s, err);
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("'dynim'"), std::string::npos) << unknown.err;
}

TEST(cli, generate_makes_validated_structures_and_resumes_from_its_journal) {
  const mummi::test::temp_dir tmp;
  const auto& dir = tmp.path();
  const auto err = dir / "stderr.txt";
  const auto journal = (dir / "journal.sqlite").string();
  auto first = run_mummi({"generate", "--count", "4", "--journal", journal, "--out",
                          (dir / "out").string()},
                         120s, err);
  ASSERT_EQ(first.status, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("generate: 4 validated structures"), std::string::npos) << first.out;
  EXPECT_EQ(first.out.find("resumed"), std::string::npos) << first.out;
  for (int id = 1; id <= 4; ++id)
    EXPECT_TRUE(std::filesystem::exists(dir / "out" / ("structure-" + std::to_string(id) + ".gro")))
      << id;
  // The same journal again, with another sampler: resumed, swapped, ids continue.
  auto second = run_mummi({"generate", "--count", "20", "--journal", journal, "--sampler",
                           "random"},
                          120s, err);
  ASSERT_EQ(second.status, 0) << second.out << second.err;
  EXPECT_NE(second.out.find("sampler is now 'random'"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("resumed from the journal"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("(24 delivered in all"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find(" random "), std::string::npos) << second.out;
  EXPECT_EQ(second.out.find("\n       1  ot"), std::string::npos) << second.out;

  std::ofstream(dir / "text.sqlite") << "not a journal but a text file of some length\n";
  auto bad = run_mummi({"generate", "--journal", (dir / "text.sqlite").string()}, 60s, err);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("text.sqlite: not an SQLite database"), std::string::npos) << bad.err;
  auto unknown = run_mummi({"generate", "--sampler", "dynim"}, 60s, err);
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("unknown sampler 'dynim'"), std::string::npos) << unknown.err;
}
