#include "generate.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#include "mummi/actors/structure_generator.hpp"
#include "mummi/coupling/journal.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/messages/messages.hpp"
#include "mummi/messages/registry.hpp"
#include "sample.hpp"

namespace mummi::deploy {

namespace {

/// A directory removed (with what it holds) when the object goes.
class scratch_dir {
public:
  scratch_dir() {
    std::string name
      = (std::filesystem::temp_directory_path() / "mummi-generate-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr)
      throw std::runtime_error("cannot make a temporary directory under "
                               + std::filesystem::temp_directory_path().string());
    path_ = name;
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const noexcept {
    return path_;
  }

private:
  std::filesystem::path path_;
};

} // namespace

CLI::App* add_generate_command(CLI::App& app, generate_options& o) {
  auto* cmd = app.add_subcommand(
    "generate", "Run the structure generator: sample, decode and validate structures");
  cmd->add_option("--model", o.model, "Model file (default: the demo model)")
    ->check(CLI::ExistingFile);
  cmd->add_option("--frames", o.frames, "Frame stores with state labels (default: the demo's)")
    ->check(CLI::ExistingFile);
  cmd->add_option("--protein", o.protein, "The protein as its topology lists it (.gro)")
    ->check(CLI::ExistingFile);
  cmd->add_option("--sampler", o.sampler,
                  "random, ot, ot_feedback or importance (default: ot, or the journal's own; "
                  "given with a journal that exists, the resumed sampler is swapped for it)");
  cmd->add_option("--param", o.params, "Sampler parameter key=value (repeatable)");
  cmd->add_option("--seed", o.seed, "Sampler seed")->capture_default_str();
  cmd->add_option("--count", o.count, "Validated structures to make")
    ->check(CLI::Range(1, 100000))
    ->capture_default_str();
  cmd->add_option("--journal", o.journal,
                  "Campaign journal (SQLite): created, or resumed when it exists");
  cmd->add_option("--out", o.out, "Write the structures here as structure-ID.gro");
  cmd->add_option("--workers", o.workers, "Validation workers (0: one per core)");
  cmd->add_option("--batch", o.batch, "Structures per sampler batch")
    ->check(CLI::Range(1, 4096))
    ->capture_default_str();
  cmd->add_option("--gmx", o.gmx, "GROMACS binary")->capture_default_str();
  return cmd;
}

int run_generate(generate_options o, const std::filesystem::path& data_dir) {
  const auto demo = data_dir / "demo";
  if (o.model.empty())
    o.model = demo / "model.ae";
  if (o.frames.empty())
    o.frames = {demo / "frames.h5"};
  if (o.protein.empty())
    o.protein = demo / "protein.gro";
  const auto protein = md::read_gro(o.protein);
  const scratch_dir work;
  auto cfg = actors::structure_generator_for(md::demo_system(demo), protein, o.model, o.frames,
                                             work.path());
  cfg.sampler.sampler = o.sampler.empty() ? "ot" : o.sampler;
  cfg.sampler.params = parse_sampler_params(o.params);
  cfg.sampler.seed = o.seed;
  cfg.validator.validator.workers = o.workers;
  cfg.validator.validator.gmx.gmx = o.gmx;
  cfg.batch = o.batch;
  cfg.buffer = 1;
  cfg.factor_extra = 1;
  bool resumed = false;
  if (!o.journal.empty()) {
    resumed = std::filesystem::exists(o.journal);
    cfg.journal = std::make_shared<coupling::journal>(
      coupling::journal::open(o.journal, coupling::journal_mode::open_or_create));
  }
  if (!o.out.empty())
    std::filesystem::create_directories(o.out);

  caf::actor_system_config sys_cfg;
  messages::add_message_types(sys_cfg);
  caf::actor_system sys{sys_cfg};
  const auto start = std::chrono::steady_clock::now();
  const caf::actor sg = actors::spawn_structure_generator(sys, cfg);
  caf::scoped_actor self{sys};
  messages::structure_batch batch;
  std::string error;
  if (resumed && (!o.sampler.empty() || !o.params.empty())) {
    // A sampler (or parameters) asked for on a journal that has its own: swap to it.
    messages::control swap;
    swap.command = messages::control_command::swap_sampler;
    swap.target = cfg.sampler.sampler;
    for (const auto& [key, value] : cfg.sampler.params)
      swap.params.push_back({key, value});
    swap.issuer = "mummi generate";
    self->request(sg, std::chrono::seconds{60}, swap)
      .receive([](messages::ack& a) { std::printf("generate: %s\n", a.text.c_str()); },
               [&error](caf::error& e) {
                 const caf::message& ctx = e.context();
                 error = ctx.match_elements<messages::error_reply>()
                   ? ctx.get_as<messages::error_reply>(0).message
                   : "no answer to the sampler swap";
               });
  }
  if (error.empty()) {
    self->send(sg, messages::structure_request{1, static_cast<std::uint32_t>(o.count)});
    self->receive([&batch](messages::structure_batch& b) { batch = std::move(b); },
                  [&error](messages::error_reply& e) { error = e.message; });
  }
  const double seconds
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::map<std::string, std::string> stats;
  self->request(sg, std::chrono::seconds{30}, actors::stats_atom::value)
    .receive([&stats](messages::monitor_event& e) { stats = messages::fields_of(e); },
             [](caf::error&) {});
  if (cfg.journal) {
    // The sampler checkpointed: a later run resumes without replaying this one's log.
    messages::control stop;
    stop.command = messages::control_command::stop;
    stop.issuer = "mummi generate";
    self->request(sg, std::chrono::seconds{60}, stop)
      .receive([](messages::ack&) {}, [](caf::error&) {});
  }
  self->send_exit(sg, caf::exit_reason::user_shutdown);
  self->wait_for(sg); // the journal is the generator's until it has ended
  if (!error.empty())
    throw std::runtime_error("structure generator: " + error);

  std::printf("%8s  %-12s %7s %14s %14s\n", "id", "sampler", "lambda", "Epot kJ/mol",
              "Fmax kJ/mol/nm");
  for (const auto& s : batch.structures) {
    std::printf("%8llu  %-12s %7.3f %14.6g %14.6g\n", static_cast<unsigned long long>(s.id),
                s.sampler.c_str(), static_cast<double>(s.lambda), s.epot_kj_mol,
                s.fmax_kj_mol_nm);
    if (!o.out.empty()) {
      auto g = protein;
      for (std::size_t a = 0; a < g.atoms.size(); ++a) {
        g.atoms[a].position_nm = {s.coords_nm[3 * a], s.coords_nm[3 * a + 1],
                                  s.coords_nm[3 * a + 2]};
        g.atoms[a].velocity_nm_ps.reset();
      }
      g.title = "mummi generate: structure " + std::to_string(s.id) + " (" + s.sampler
        + ", lambda " + std::to_string(s.lambda) + ")";
      md::write_gro(g, o.out / ("structure-" + std::to_string(s.id) + ".gro"));
    }
  }
  std::printf("generate: %zu validated structures in %.2f s (%.2f/s); sampler %s; sampled %s, "
              "invalid %s, duplicate %s%s\n",
              batch.structures.size(), seconds,
              static_cast<double>(batch.structures.size()) / seconds, stats["sampler"].c_str(),
              stats["sampled"].c_str(), stats["invalid"].c_str(), stats["duplicate"].c_str(),
              resumed ? "; resumed from the journal" : "");
  if (!o.out.empty())
    std::printf("  structures written to %s\n", o.out.c_str());
  if (cfg.journal)
    std::printf("  journal: %s (%zu delivered in all, %zu validated and waiting)\n",
                o.journal.c_str(), cfg.journal->count(coupling::structure_state::delivered),
                cfg.journal->count(coupling::structure_state::valid));
  return 0;
}

} // namespace mummi::deploy
