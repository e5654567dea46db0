// sg_bench: structure-generator throughput (validated structures/s) on the demo model, side by
// side in one run with a MuMMI-style structure generator: the same sampler picks the same
// number of latent points, then each of `workers` threads takes the next point, decodes it
// alone and validates it with one grompp + mdrun per stage (md::validator::validate_reference,
// MuMMI's protocol), as MuMMI's generator does with (cores - 2) workers.
//
//   sg_bench [--count 200] [--sampler ot] [--workers 0] [--batch 16] [--depth 2] [--gmx gmx]
//
// mummi's rows spawn a structure generator (buffer 1, factor_extra 1), ask it for `count`
// structures in one request and time from the spawn to the reply: sampling, batched decoding,
// validation, feedback to the sampler and (with a journal) every state change made durable.

#include <caf/all.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mummi/actors/structure_generator.hpp"
#include "mummi/coupling/journal.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/validator.hpp"
#include "mummi/messages/messages.hpp"
#include "mummi/messages/registry.hpp"
#include "mummi/ml/autoencoder.hpp"

namespace act = mummi::actors;
namespace cpl = mummi::coupling;
namespace md = mummi::md;
namespace ml = mummi::ml;
namespace msg = mummi::messages;
namespace fs = std::filesystem;

namespace {

struct result {
  double seconds = 0;
  std::size_t structures = 0;
  std::size_t valid = 0;
};

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five;
  in >> one >> five;
  return one + " (1 min), " + five + " (5 min)";
}

/// Spawns a structure generator from `cfg`, asks it for `count` structures and times the reply.
result run_service(const act::structure_generator_config& cfg, std::size_t count) {
  caf::actor_system_config sys_cfg;
  msg::add_message_types(sys_cfg);
  caf::actor_system sys{sys_cfg};
  const auto start = std::chrono::steady_clock::now(); // spawning loads the model, as the peer
  const caf::actor sg = act::spawn_structure_generator(sys, cfg);
  caf::scoped_actor self{sys};
  result r;
  self->send(sg, msg::structure_request{1, static_cast<std::uint32_t>(count)});
  std::string error;
  self->receive(
    [&](msg::structure_batch& b) {
      r.structures = b.structures.size();
      for (const auto& s : b.structures)
        r.valid += s.valid ? 1 : 0;
    },
    [&](msg::error_reply& e) { error = e.message; },
    caf::after(std::chrono::seconds{3600}) >> [&] { error = "no reply within an hour"; });
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  caf::anon_send_exit(sg, caf::exit_reason::user_shutdown);
  if (!error.empty())
    throw std::runtime_error("structure generator: " + error);
  return r;
}

/// MuMMI's way: `count` points picked by the sampler; `workers` threads each decode one point
/// and validate it with the naive protocol until every point is done. Every structure counts
/// (valid or not), as it does for the service, which hands out only valid ones.
result run_mummi_style(const act::structure_generator_config& cfg, std::size_t count,
                       unsigned workers) {
  result r;
  const auto start = std::chrono::steady_clock::now();
  const auto model = ml::autoencoder::load(cfg.generator.model_path);
  auto sampler = cfg.sampler.registry->create(cfg.sampler.sampler, cfg.sampler.states,
                                              cfg.sampler.params, cfg.sampler.seed);
  const auto points = sampler->select(count);
  md::validator validator(cfg.validator.validator);
  std::mutex decode_mutex;
  std::atomic<std::size_t> next{0}, valid{0};
  std::vector<std::jthread> pool;
  for (unsigned w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (std::size_t i = next++; i < points.size(); i = next++) {
        std::vector<float> coords;
        {
          const std::lock_guard lock(decode_mutex);
          coords = model.decode(std::span<const float>(points[i].z));
        }
        md::structure s = cfg.validator.structure_template;
        for (std::size_t a = 0; a < s.atoms.size(); ++a)
          s.atoms[a].position_nm = {coords[3 * a], coords[3 * a + 1], coords[3 * a + 2]};
        const auto verdict = validator.validate_reference(std::span(&s, 1)).front();
        valid += verdict.accepted ? 1 : 0;
      }
    });
  pool.clear();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.structures = points.size();
  r.valid = valid;
  return r;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"structure-generator throughput on the demo model vs a MuMMI-style generator"};
  std::size_t count = 200, batch = 16, depth = 2;
  unsigned workers = 0;
  std::string sampler = "ot", gmx = "gmx";
  app.add_option("--count", count, "structures per run")->check(CLI::Range(1, 100000));
  app.add_option("--sampler", sampler, "sampler of every run");
  app.add_option("--workers", workers, "validation workers (0: one per hardware thread)");
  app.add_option("--batch", batch, "structures per round trip of the service")
    ->check(CLI::Range(1, 4096));
  app.add_option("--depth", depth, "round trips of the service under way at once")
    ->check(CLI::Range(1, 64));
  app.add_option("--gmx", gmx, "GROMACS program");
  CLI11_PARSE(app, argc, argv);

  char dir_template[] = "/tmp/mummi-sg-bench-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    std::perror("sg_bench: mkdtemp");
    return 2;
  }
  const fs::path work = dir_template;
  int status = 0;
  try {
    const fs::path data = MUMMI_SOURCE_DATA_DIR;
    const unsigned used = workers > 0 ? workers : std::max(1U, std::thread::hardware_concurrency());
    auto base = act::structure_generator_for(md::demo_system(data / "demo"),
                                             md::read_gro(data / "demo" / "protein.gro"),
                                             data / "demo" / "model.ae",
                                             {data / "demo" / "frames.h5"}, work / "inputs");
    base.sampler.sampler = sampler;
    base.sampler.seed = 1;
    base.validator.validator.workers = used;
    base.validator.validator.gmx.gmx = gmx;
    base.buffer = 1;
    base.factor_extra = 1;
    base.batch = batch;
    base.pipeline_depth = depth;
    int run = 0;
    const auto next_run = [&] {
      auto c = base;
      c.validator.validator.work_root = work / ("run-" + std::to_string(++run));
      return c;
    };

    std::printf("sg_bench: %zu structures of the demo protein (%zu beads), sampler '%s', %u "
                "validation workers, %u hardware threads, gmx '%s'\n",
                count, base.validator.structure_template.atoms.size(), sampler.c_str(), used,
                std::thread::hardware_concurrency(), gmx.c_str());
    std::printf("load average before: %s\n\n", load_average().c_str());

    auto journaled = next_run();
    journaled.journal = std::make_shared<cpl::journal>(
      cpl::journal::open(work / "journal.sqlite", cpl::journal_mode::create));
    const result with_journal = run_service(journaled, count);
    const result without_journal = run_service(next_run(), count);
    auto single = next_run();
    single.batch = 1;
    single.pipeline_depth = 1;
    const result one_at_a_time = run_service(single, count);
    const result peer = run_mummi_style(next_run(), count, used);

    std::printf("%-52s %9s %13s %13s %9s %11s\n", "generator", "seconds", "structures/s",
                "s/structure", "valid", "vs MuMMI");
    const auto row = [&peer](const std::string& label, const result& r) {
      const double rate = static_cast<double>(r.structures) / r.seconds;
      const double peer_rate = static_cast<double>(peer.structures) / peer.seconds;
      std::printf("%-52s %9.2f %13.2f %13.4f %5zu/%zu %10.2fx\n", label.c_str(), r.seconds, rate,
                  r.seconds / static_cast<double>(r.structures), r.valid, r.structures,
                  rate / peer_rate);
    };
    const std::string shape
      = "batch " + std::to_string(batch) + ", depth " + std::to_string(depth);
    row("mummi service (" + shape + ", journal)", with_journal);
    row("mummi service (" + shape + ", no journal)", without_journal);
    row("mummi service (batch 1, depth 1, no journal)", one_at_a_time);
    row("MuMMI-style (decode one, grompp+mdrun per stage, " + std::to_string(used) + " workers)",
        peer);
    std::printf("\nload average after: %s\n", load_average().c_str());
    std::printf("The paper's generator: 0.75-0.85 structures/s overall, 3.49 s validation per "
                "structure (a 763-bead protein, Frontier node).\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sg_bench: %s\n", e.what());
    status = 2;
  }
  std::error_code ignored;
  fs::remove_all(work, ignored);
  return status;
}
