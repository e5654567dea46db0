// The `mummi` command line.

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <stdlib.h>

#include "campaign.hpp"
#include "config.hpp"
#include "demo_data.hpp"
#include "generate.hpp"
#include "sample.hpp"
#include "train.hpp"
#include "mummi/actors/job_actor.hpp"
#include "mummi/actors/node_agent.hpp"
#include "mummi/actors/node_registry.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/coupling/gateway.hpp"
#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/validator.hpp"
#include "mummi/messages/messages.hpp"

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
namespace act = mummi::actors;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<spdlog::logger> make_logger(const std::string& name) {
  auto log = spdlog::stderr_color_mt(name);
  log->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
  return log;
}

std::string self_exe() {
  return std::filesystem::read_symlink("/proc/self/exe").string();
}

int run_node(const std::string& head, act::node_agent_config cfg, unsigned heartbeat_ms) {
  auto log = make_logger(cfg.node_id);
  cpl::system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  cpl::context ctx;
  cpl::gateway_config gc;
  gc.node_id = cfg.node_id;
  gc.heartbeat_period = std::chrono::milliseconds{heartbeat_ms};
  cpl::gateway gw{sys, ctx, gc};
  caf::scoped_actor self{sys};
  std::string problem;
  self->request(gw.handle(), 10s, cpl::connect_atom::value, cfg.head_node, head)
    .receive([] {},
             [&](caf::error& e) {
               problem = sys.render(e);
             });
  if (!problem.empty()) {
    log->error("--head {}: {}", head, problem);
    return 2;
  }
  auto agent = act::spawn_node_agent(sys, gw.handle(), cfg, log);
  self->monitor(agent);
  int rc = 0;
  self->receive([&](const caf::down_msg& dm) {
    rc = dm.reason == caf::exit_reason::user_shutdown ? 0 : 3;
  });
  return rc;
}

/// Where the demo system lives: $MUMMI_DATA_DIR, the source tree's data/ (a build tree), or
/// share/mummi/data next to the executable's directory (an installation).
std::filesystem::path data_dir() {
  if (const char* env = std::getenv("MUMMI_DATA_DIR"); env != nullptr && *env != 0)
    return env;
  if (std::filesystem::exists(MUMMI_SOURCE_DATA_DIR "/demo/protein.gro"))
    return MUMMI_SOURCE_DATA_DIR;
  return std::filesystem::path(self_exe()).parent_path().parent_path() / "share/mummi/data";
}

struct createsims_options {
  std::string config_file;
  std::string out;
  std::string protein;
  std::uint64_t seed = 1;
  std::string gmx;
  unsigned threads = 0;
};

/// `mummi createsims [CONFIG] --out DIR`: one production-ready system around a protein.
int run_createsims(const createsims_options& o) {
  mummi::deploy::campaign_config cfg;
  if (!o.config_file.empty())
    cfg = mummi::deploy::load_campaign_config(o.config_file);
  const auto data = data_dir();
  const auto spec = cfg.system ? *cfg.system : mummi::md::demo_system(data / "demo");
  std::filesystem::path protein = o.protein;
  if (protein.empty())
    protein = cfg.system ? cfg.protein_structure : data / "demo" / "protein.gro";
  auto protocol = mummi::md::default_protocol();
  protocol.max_builds = static_cast<int>(std::min(cfg.max_builds, 1000u));
  protocol.stage_timeout = cfg.stage_timeout;
  mummi::md::gmx_config gmx;
  gmx.gmx = o.gmx.empty() ? cfg.gmx : o.gmx;
  mummi::md::mdrun_options mdrun;
  mdrun.threads = static_cast<int>(o.threads ? o.threads : cfg.gmx_threads);
  auto log = make_logger("createsims");
  log->info("building around {} in {}", protein.string(), o.out);
  auto r = mummi::md::run_createsims(spec, protocol, mummi::md::read_gro(protein), o.out, o.seed,
                                     gmx, mdrun);
  for (const auto& st : r.stages)
    log->info("stage {}: {:.2f} s", st.name, st.seconds);
  auto leaflet = [](const std::vector<mummi::md::molecule_block>& v) {
    std::string s;
    for (const auto& b : v)
      s += (s.empty() ? "" : " ") + b.name + ":" + std::to_string(b.count);
    return s;
  };
  std::printf("createsims: %zu atoms, %zu build(s), seed %llu, EM Epot %.1f kJ/mol Fmax %.1f\n"
              "  upper leaflet %s (target %s)\n  lower leaflet %s (target %s)\n"
              "  solvent in the core: %zu\n  production input: %s\n",
              r.checks.atoms, r.builds, static_cast<unsigned long long>(r.seed),
              r.minimisation.epot_kj_mol, r.minimisation.fmax_kj_mol_nm,
              leaflet(r.checks.upper_found).c_str(), leaflet(r.checks.upper_target).c_str(),
              leaflet(r.checks.lower_found).c_str(), leaflet(r.checks.lower_target).c_str(),
              r.checks.solvent_in_core, r.production_tpr.c_str());
  return 0;
}

struct validate_options {
  std::string config_file;
  std::vector<std::string> structures;
  std::string out;
  double max_fmax = 1e6;
  double max_epot = 1e7;
  unsigned workers = 0;
  unsigned timeout_s = 120;
  std::string gmx;
};

/// `mummi validate [--config CONFIG] STRUCTURE...`: the vacuum-minimisation verdict of each
/// structure. Exit 0 when every one is accepted, 3 when any is rejected.
int run_validate(const validate_options& o) {
  mummi::deploy::campaign_config cfg;
  if (!o.config_file.empty())
    cfg = mummi::deploy::load_campaign_config(o.config_file);
  const auto spec = cfg.system ? *cfg.system : mummi::md::demo_system(data_dir() / "demo");
  std::vector<mummi::md::structure> structures;
  for (const auto& f : o.structures)
    structures.push_back(mummi::md::read_gro(f));
  if (!o.out.empty()) {
    std::set<std::filesystem::path> names;
    for (const auto& f : o.structures) {
      auto target = std::filesystem::weakly_canonical(std::filesystem::path(o.out)
                                                      / std::filesystem::path(f).filename());
      if (!names.insert(target.filename()).second)
        throw std::invalid_argument("two structures are named " + target.filename().string()
                                    + ": their validated files would overwrite each other in "
                                    + o.out);
      if (target == std::filesystem::weakly_canonical(f))
        throw std::invalid_argument("--out " + o.out + " would overwrite the input " + f);
    }
  }
  std::string work_template
    = (std::filesystem::temp_directory_path() / "mummi-validate-XXXXXX").string();
  if (::mkdtemp(work_template.data()) == nullptr)
    throw std::runtime_error("cannot make a temporary directory under "
                             + std::filesystem::temp_directory_path().string());
  const std::filesystem::path work = work_template;
  struct remove_on_exit {
    std::filesystem::path dir;
    ~remove_on_exit() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{work};
  mummi::md::write_protein_topology(spec, work / "protein.top",
                                    "mummi validate " + spec.protein_molecule);

  mummi::md::validator_config vc;
  vc.topology = work / "protein.top";
  vc.couple_moltype = spec.protein_molecule;
  vc.max_fmax_kj_mol_nm = o.max_fmax;
  vc.max_abs_epot_kj_mol = o.max_epot;
  vc.workers = o.workers;
  vc.structure_timeout = std::chrono::seconds{o.timeout_s};
  vc.work_root = work / "runs";
  vc.gmx.gmx = o.gmx.empty() ? cfg.gmx : o.gmx;
  std::vector<mummi::md::validation_verdict> verdicts;
  {
    mummi::md::validator v{vc};
    verdicts = v.validate(structures);
  }
  if (!o.out.empty())
    std::filesystem::create_directories(o.out);
  std::size_t accepted = 0;
  std::printf("%-40s %-15s %14s %14s %6s %8s\n", "structure", "verdict", "Epot kJ/mol",
              "Fmax kJ/mol/nm", "steps", "seconds");
  for (std::size_t i = 0; i < verdicts.size(); ++i) {
    const auto& v = verdicts[i];
    std::printf("%-40s %-15s %14.6g %14.6g %6d %8.2f\n", o.structures[i].c_str(),
                std::string(mummi::md::to_string(v.code)).c_str(), v.epot_kj_mol, v.fmax_kj_mol_nm,
                v.steps, v.seconds);
    if (!v.accepted) {
      std::printf("  %s\n", v.reason.c_str());
      continue;
    }
    ++accepted;
    if (!o.out.empty()) {
      auto s = structures[i];
      for (std::size_t a = 0; a < s.atoms.size(); ++a) {
        s.atoms[a].position_nm = v.positions_nm[a];
        s.atoms[a].velocity_nm_ps.reset();
      }
      s.title = "validated " + s.title;
      mummi::md::write_gro(
        s, std::filesystem::path(o.out) / std::filesystem::path(o.structures[i]).filename());
    }
  }
  std::printf("validate: %zu of %zu accepted\n", accepted, verdicts.size());
  return accepted == verdicts.size() ? 0 : 3;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"mummi: ML-driven multiscale molecular-dynamics campaigns"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string{"mummi " MUMMI_VERSION " (wire protocol "}
                         + std::to_string(msg::protocol_version) + ")");

  std::string config_file;
  mummi::deploy::run_options ro;
  auto* run = app.add_subcommand("run", "Run a campaign on this machine (head + node agents)");
  auto* run_config = run->add_option("config", ro.config, "Campaign configuration (YAML)")
                       ->check(CLI::ExistingFile);
  run->add_option("--resume", ro.resume, "Continue the campaign in this directory")
    ->check(CLI::ExistingDirectory)
    ->excludes(run_config);

  auto* check = app.add_subcommand("check", "Check a campaign configuration");
  check->add_option("config", config_file, "Campaign configuration (YAML)")->required();

  createsims_options cs;
  auto* createsims = app.add_subcommand(
    "createsims", "Build, minimise and equilibrate one membrane system around a protein");
  createsims->add_option("config", cs.config_file, "Campaign configuration (default: the demo)")
    ->check(CLI::ExistingFile);
  createsims->add_option("--out", cs.out, "Work directory (created)")->required();
  createsims
    ->add_option("--protein", cs.protein, "Protein structure (.gro; default: the system's own)")
    ->check(CLI::ExistingFile);
  createsims->add_option("--seed", cs.seed, "Seed of the first build");
  createsims->add_option("--gmx", cs.gmx, "GROMACS binary (default: the config's, or gmx)");
  createsims->add_option("--threads", cs.threads, "Threads per mdrun (0: every core)");

  validate_options vo;
  auto* validate
    = app.add_subcommand("validate",
                         "Vacuum-minimise generated protein structures and say which are valid "
                         "(exit 3 when any is rejected)");
  validate->add_option("structures", vo.structures, "Protein structures (.gro)")
    ->required()
    ->check(CLI::ExistingFile);
  validate->add_option("--config", vo.config_file, "Campaign configuration (default: the demo)")
    ->check(CLI::ExistingFile);
  validate->add_option("--out", vo.out, "Write the minimised accepted structures here");
  validate->add_option("--max-fmax", vo.max_fmax, "Accept below this |Fmax| (kJ/mol/nm)");
  validate->add_option("--max-epot", vo.max_epot, "Accept below this |Epot| (kJ/mol)");
  validate->add_option("--workers", vo.workers, "Structures in parallel (0: one per core)");
  validate->add_option("--timeout-s", vo.timeout_s, "Wall-clock limit per structure");
  validate->add_option("--gmx", vo.gmx, "GROMACS binary (default: the config's, or gmx)");

  mummi::deploy::demo_data_options dd;
  auto* demo_data = mummi::deploy::add_demo_data_command(app, dd);

  mummi::deploy::train_options to;
  auto* train = mummi::deploy::add_train_command(app, to);

  mummi::deploy::sample_options so;
  auto* sample = mummi::deploy::add_sample_command(app, so);

  mummi::deploy::generate_options go;
  auto* generate = mummi::deploy::add_generate_command(app, go);

  std::string head;
  unsigned heartbeat_ms = 500;
  unsigned grace_s = 60;
  act::node_agent_config node_cfg;
  node_cfg.cores = act::detect_cores();
  node_cfg.gpus = act::detect_gpus();
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  node_cfg.node_id = host;
  auto* node = app.add_subcommand("node", "Run the node agent of this machine");
  node->add_option("--head", head, "Head endpoint (tcp://HOST:PORT)")->required();
  node->add_option("--node-id", node_cfg.node_id, "Node id (default: the host name)");
  node->add_option("--heartbeat-ms", heartbeat_ms, "Heartbeat period")
    ->check(CLI::Range(10u, 60000u));
  node->add_option("--grace-s", grace_s, "Seconds to wait for a lost head before stopping")
    ->check(CLI::Range(1u, 86400u));
  node->add_option("--cores", node_cfg.cores, "Cores to offer (default: detected)");
  node->add_option("--gpus", node_cfg.gpus, "GPUs to offer (default: detected)");
  std::string node_config;
  node->add_option("--config", node_config,
                   "Campaign configuration: the system and GROMACS its jobs use (default: the "
                   "demo)");
  node->add_option("--work-root", node_cfg.work_root, "Relative job directories start here");
  node->add_flag("--pin", node_cfg.pin, "Pin each job's mdrun to its cores");

  CLI11_PARSE(app, argc, argv);
  cpl::tune_allocator();
  try {
    if (run->parsed()) {
      if (ro.config.empty() && ro.resume.empty())
        throw std::invalid_argument("run: give a campaign configuration, or --resume DIR");
      ro.data_dir = data_dir();
      ro.self_exe = self_exe();
      return mummi::deploy::run_campaign(ro, make_logger("head"));
    }
    if (check->parsed()) {
      auto cfg = mummi::deploy::load_campaign_config(config_file);
      std::printf("%s: valid (campaign '%s', %u local node agents)\n", config_file.c_str(),
                  cfg.name.c_str(), cfg.local_nodes);
      return 0;
    }
    if (createsims->parsed())
      return run_createsims(cs);
    if (validate->parsed())
      return run_validate(vo);
    if (demo_data->parsed())
      return mummi::deploy::run_demo_data(dd, data_dir());
    if (train->parsed())
      return mummi::deploy::run_train(to);
    if (sample->parsed())
      return mummi::deploy::run_sample(so, data_dir());
    if (generate->parsed())
      return mummi::deploy::run_generate(go, data_dir());
    if (node->parsed()) {
      node_cfg.head_grace = std::chrono::seconds{grace_s};
      mummi::deploy::campaign_config campaign;
      if (!node_config.empty())
        campaign = mummi::deploy::load_campaign_config(node_config);
      auto jobs = std::make_shared<act::job_runner_config>();
      jobs->system = campaign.system ? *campaign.system : mummi::md::demo_system(data_dir() / "demo");
      jobs->gmx.gmx = campaign.gmx;
      jobs->protocol.stage_timeout = campaign.stage_timeout;
      jobs->protocol.max_builds = static_cast<int>(std::min(campaign.max_builds, 1000u));
      node_cfg.jobs = std::move(jobs);
      return run_node(head, node_cfg, heartbeat_ms);
    }
  } catch (const mummi::deploy::config_error& e) {
    std::fprintf(stderr, "mummi: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mummi: %s\n", e.what());
    return 1;
  }
  return 0;
}
