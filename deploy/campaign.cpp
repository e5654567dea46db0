#include "campaign.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>
#include <thread>
#include <vector>

#include "config.hpp"
#include "mummi/actors/node_registry.hpp"
#include "mummi/actors/structure_generator.hpp"
#include "mummi/actors/workflow_manager.hpp"
#include "mummi/coupling/child_process.hpp"
#include "mummi/coupling/gateway.hpp"
#include "mummi/coupling/journal.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::deploy {

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
namespace act = mummi::actors;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::atomic<int> interrupted{0};

extern "C" void on_interrupt(int) {
  interrupted.fetch_add(1);
}

/// One status line: structures, jobs by state, ns simulated, cores busy, elapsed time and,
/// with a stopping point in simulations, the time left at the rate so far.
std::string status_line(std::map<std::string, std::string> f, std::map<std::string, std::string> sg,
                        const std::string& state, double target_ns) {
  const auto number = [](const std::string& v) {
    return v.empty() ? 0.0 : std::stod(v);
  };
  const double seconds = number(f["seconds"]);
  const double ns = number(f["ns_simulated"]);
  std::string eta;
  if (target_ns > 0 && ns > 0 && ns < target_ns && state == "running")
    eta = ", about " + std::to_string(static_cast<long>(seconds * (target_ns - ns) / ns))
      + " s left";
  char buf[640];
  std::snprintf(buf, sizeof buf,
                "[%6.0f s] %s | structures %s valid of %s sampled | createsims %s running, %s "
                "done, %s failed | simulations %s queued, %s running, %s done | %.3f ns "
                "simulated | cores busy %s/%s on %s node(s)%s",
                seconds, state.c_str(), sg["valid"].c_str(), sg["sampled"].c_str(),
                f["createsims_running"].c_str(), f["createsims_succeeded"].c_str(),
                f["createsims_failed"].c_str(), f["simulation_queued"].c_str(),
                f["simulation_running"].c_str(), f["simulation_succeeded"].c_str(), ns,
                f["cores_busy"].c_str(), f["cores"].c_str(), f["nodes"].c_str(), eta.c_str());
  return buf;
}

} // namespace

int run_campaign(const run_options& o, std::shared_ptr<spdlog::logger> log) {
  // The configuration: given, or the one a campaign to resume was started with.
  fs::path config_file = o.config;
  fs::path dir;
  if (!o.resume.empty()) {
    std::ifstream in(o.resume / "config.path");
    std::string path;
    if (!std::getline(in, path) || path.empty())
      throw std::runtime_error(o.resume.string() + ": not a campaign directory (no config.path: "
                               "it is written when a campaign starts)");
    config_file = path;
    dir = o.resume;
  }
  auto cfg = load_campaign_config(config_file);
  if (dir.empty())
    dir = cfg.dir;
  const fs::path journal = dir / "journal.sqlite";
  if (o.resume.empty() && fs::exists(journal))
    throw std::runtime_error(dir.string() + " already holds a campaign (journal.sqlite): give "
                             "--resume " + dir.string() + " to continue it, or another "
                             "campaign.dir");
  if (!o.resume.empty() && !fs::exists(journal))
    throw std::runtime_error(dir.string() + ": no journal.sqlite to resume from");
  const unsigned hw = std::max(1U, std::thread::hardware_concurrency());
  const unsigned node_cores = std::max(1U, hw / cfg.local_nodes);
  if (cfg.createsims_cores > node_cores || cfg.simulation_cores > node_cores
      || cfg.createsims_gpus > 0 || cfg.simulation_gpus > 0)
    throw std::runtime_error(
      config_file.string() + ": impossible resources: jobs need " +
      std::to_string(std::max(cfg.createsims_cores, cfg.simulation_cores)) + " cores and "
      + std::to_string(std::max(cfg.createsims_gpus, cfg.simulation_gpus))
      + " GPUs, but each of the " + std::to_string(cfg.local_nodes)
      + " local node agents has " + std::to_string(node_cores) + " cores and 0 GPUs");

  // Everything that can be wrong with the inputs is found before the campaign exists (no
  // journal yet, so a corrected configuration can start it): the protein, the model and
  // frames, the sampler and its parameters.
  const auto demo = o.data_dir / "demo";
  const auto system = cfg.system ? *cfg.system : md::demo_system(demo);
  const auto protein = md::read_gro(cfg.protein_structure.empty() ? demo / "protein.gro"
                                                                  : cfg.protein_structure);
  auto sg_cfg = act::structure_generator_for(
    system, protein, cfg.model.empty() ? demo / "model.ae" : cfg.model,
    cfg.frames.empty() ? std::vector<fs::path>{demo / "frames.h5"} : cfg.frames, dir / "sg");
  sg_cfg.sampler.sampler = cfg.sampler;
  for (const auto& [k, v] : cfg.sampler_params)
    sg_cfg.sampler.params[k] = v;
  sg_cfg.sampler.seed = cfg.seed;
  (void)sg_cfg.sampler.registry->create(cfg.sampler, sg_cfg.sampler.states, sg_cfg.sampler.params,
                                        cfg.seed);
  std::ofstream(dir / "config.path") << fs::absolute(config_file).string() << '\n';

  cpl::system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  cpl::context ctx;
  cpl::gateway_config gc;
  gc.node_id = "head";
  gc.bind = cfg.head_bind;
  gc.heartbeat_period = cfg.heartbeat_period;
  gc.missed_heartbeats = cfg.missed_heartbeats;
  cpl::gateway gw{sys, ctx, gc};
  std::ofstream(dir / "head.endpoint") << gw.endpoint() << '\n';
  log->info("campaign '{}' in {}{}: head listening on {}", cfg.name, dir.string(),
            o.resume.empty() ? "" : " (resumed)", gw.endpoint());
  const auto registry = act::spawn_node_registry(
    sys, gw.handle(), act::node_registry_config{"head", cfg.name, cfg.heartbeat_period}, log);

  sg_cfg.buffer = cfg.buffer;
  sg_cfg.factor_extra = cfg.factor_extra;
  sg_cfg.batch = cfg.batch;
  sg_cfg.validator.validator.workers = cfg.validation_workers;
  sg_cfg.validator.validator.gmx.gmx = cfg.gmx;
  sg_cfg.journal = std::make_shared<cpl::journal>(
    cpl::journal::open(journal, cpl::journal_mode::open_or_create));
  const auto sg = act::spawn_structure_generator(sys, sg_cfg);

  act::workflow_config wc;
  wc.gateway = gw.handle();
  wc.registry = registry;
  wc.structure_generator = sg;
  wc.journal = journal;
  wc.campaign_dir = fs::absolute(dir);
  wc.protein = protein;
  wc.createsims = {cfg.createsims_cores, cfg.createsims_gpus};
  wc.simulation = {cfg.simulation_cores, cfg.simulation_gpus};
  wc.target_ns = cfg.length_ns;
  wc.frame_ps = cfg.frame_ps;
  wc.checkpoint_minutes = cfg.checkpoint_minutes;
  wc.buffer = cfg.buffer;
  wc.stop_after_simulations = cfg.stop_simulations;
  wc.wall_time = cfg.wall_time;
  wc.max_attempts = cfg.max_attempts;
  wc.backoff = cfg.backoff;
  wc.seed = cfg.seed;
  const auto wm = act::spawn_workflow_manager(sys, wc);

  std::vector<cpl::child_process> nodes;
  for (unsigned i = 0; i < cfg.local_nodes; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "node-%04u", i);
    cpl::spawn_options so;
    so.stderr_file = dir / (std::string(id) + ".log");
    // Local agents end with the head (SIGTERM; their mdrun children follow): a resumed head
    // starts new ones and the simulations continue from their checkpoints.
    so.parent_death_signal = SIGTERM;
    nodes.emplace_back(
      std::vector<std::string>{
        o.self_exe, "node", "--head", gw.endpoint(), "--node-id", id, "--config",
        fs::absolute(config_file).string(), "--cores", std::to_string(node_cores), "--gpus", "0",
        "--heartbeat-ms", std::to_string(cfg.heartbeat_period.count()), "--grace-s",
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(cfg.head_grace).count())},
      cpl::process_pipes{}, so);
  }

  // Ctrl-C (or SIGTERM) stops the campaign gracefully: every job checkpointed, resumable.
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  caf::scoped_actor self{sys};
  std::map<std::string, std::string> last;
  std::string state;
  bool stop_sent = false;
  const auto started = std::chrono::steady_clock::now();
  for (;;) {
    if (interrupted.load() > 0 && !stop_sent) {
      stop_sent = true;
      std::printf("stopping: every running job is cancelled and checkpointed; resume with "
                  "'mummi run --resume %s'\n",
                  dir.c_str());
      self->send(wm, msg::control{msg::control_command::stop, "", "", {}, "mummi run (signal)"});
    }
    self->request(wm, 10s, act::stats_atom::value)
      .receive(
        [&](msg::monitor_event& e) {
          last = msg::fields_of(e);
          state = e.text;
        },
        [&](caf::error& e) { log->warn("no workflow status: {}", sys.render(e)); });
    std::map<std::string, std::string> sg_stats;
    self->request(sg, 10s, act::stats_atom::value)
      .receive([&](msg::monitor_event& e) { sg_stats = msg::fields_of(e); }, [](caf::error&) {});
    std::printf("%s\n", status_line(last, sg_stats, state,
                                     cfg.stop_simulations * cfg.length_ns)
                           .c_str());
    std::fflush(stdout);
    if (state == "done")
      break;
    self->receive(caf::after(std::chrono::seconds{2}) >> [] {});
  }

  // Stop every agent gracefully, then make sure every process is gone.
  bool ok = true;
  for (unsigned i = 0; i < cfg.local_nodes; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "node-%04u", i);
    self
      ->request(gw.handle(), 5s, cpl::request_atom::value, msg::address{id, "agent"},
                msg::control{msg::control_command::stop, "", "", {}, "mummi run"})
      .receive([](msg::ack&) {},
               [&](caf::error& e) { log->warn("{} did not acknowledge stop: {}", id, sys.render(e)); });
  }
  for (auto& p : nodes) {
    const auto status = p.wait_for(60s);
    if (!status || *status != 0) {
      log->error("node agent pid {} ended with {}", p.pid(),
                 status ? cpl::describe_wait_status(*status) : "no exit in 60 s");
      ok = false;
    }
  }
  for (const auto& a : {wm, sg, registry})
    self->send_exit(a, caf::exit_reason::user_shutdown);
  const double seconds
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("campaign '%s' %s after %.0f s: %s simulations done (%s ns), %s createsims done, "
              "%s failed%s\n",
              cfg.name.c_str(), interrupted.load() > 0 ? "stopped" : "finished", seconds,
              last["simulation_succeeded"].c_str(), last["ns_simulated"].c_str(),
              last["createsims_succeeded"].c_str(), last["createsims_failed"].c_str(),
              ok ? "" : " (node agents ended with errors)");
  std::printf("results in %s: journal.sqlite (structures, jobs, attempts, events), "
              "sims/<structure>/simulation/frames.h5 (frames), node-*.log\n",
              fs::absolute(dir).c_str());
  if (interrupted.load() > 0)
    return 130;
  return ok ? 0 : 1;
}

} // namespace mummi::deploy
