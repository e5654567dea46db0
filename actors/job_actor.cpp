#include "mummi/actors/job_actor.hpp"

#include <caf/all.hpp>

#include <cmath>
#include <stdexcept>
#include <utility>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/simulation.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;
namespace fs = std::filesystem;

namespace {

struct job_state {
  static inline const char* name = "mummi.job";
};

using job_actor_type = caf::stateful_actor<job_state>;

md::mdrun_options mdrun_for(const msg::job_spec& job, const job_placement& where) {
  md::mdrun_options o;
  o.threads = static_cast<int>(job.cores);
  if (where.pin_offset >= 0) {
    o.pin = md::pinning::on;
    o.pin_offset = where.pin_offset;
  }
  if (!where.gpu_ids.empty()) {
    // mdrun sees the job's GPUs only (numbered from 0 there) and picks them itself.
    o.environment.emplace_back("CUDA_VISIBLE_DEVICES", where.gpu_ids);
    o.environment.emplace_back("ROCR_VISIBLE_DEVICES", where.gpu_ids);
  }
  if (job.cores > 0)
    o.environment.emplace_back("OMP_NUM_THREADS", std::to_string(job.cores));
  return o;
}

/// A parameter of `job` as a positive number, or `fallback` when absent.
double positive_param(const msg::job_spec& job, const std::string& key, double fallback) {
  for (const auto& kv : job.params) {
    if (kv.key != key)
      continue;
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(kv.value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != kv.value.size() || !(v > 0) || !std::isfinite(v))
      throw md::md_error("job parameter " + key + " = '" + kv.value
                         + "' is not a positive number");
    return v;
  }
  return fallback;
}

msg::job_finished run_job(job_actor_type* self, const job_runner_config& cfg,
                          const msg::job_spec& job, const job_placement& where,
                          const caf::actor& listener, const std::atomic<bool>& cancel) {
  msg::job_finished done;
  done.job_id = job.job_id;
  done.output_dir = job.work_dir;
  const auto mdrun = mdrun_for(job, where);
  if (job.kind == msg::job_kind::createsims) {
    if (!job.params.empty())
      throw md::md_error("createsims jobs take no parameters; got '" + job.params.front().key
                         + "'");
    const auto protein = md::read_gro(fs::path(job.input_dir) / "structure.gro");
    md::run_createsims(cfg.system, cfg.protocol, protein, job.work_dir, job.seed, cfg.gmx, mdrun,
                       &cancel);
    return done;
  }
  md::simulation_spec spec;
  spec.name = "production";
  spec.protein_molecule = cfg.system.protein_molecule;
  spec.length_ps = job.target_ns * 1000;
  for (const auto& kv : job.params)
    if (kv.key != "frame_ps" && kv.key != "checkpoint_minutes")
      throw md::md_error("simulation jobs take frame_ps and checkpoint_minutes; got '" + kv.key
                         + "'");
  spec.frame_ps = positive_param(job, "frame_ps", cfg.frame_ps);
  spec.checkpoint_minutes = positive_param(job, "checkpoint_minutes", cfg.checkpoint_minutes);
  spec.source = static_cast<std::int64_t>(job.job_id);
  spec.seed = job.seed;
  const auto system = md::createsims_output(job.input_dir, cfg.protocol);
  auto last_sent = std::chrono::steady_clock::time_point{};
  msg::job_progress progress{job.job_id, 0, 0, 0};
  const auto r = md::run_simulation(
    system, cfg.protocol, spec, job.work_dir, fs::path(job.work_dir) / "frames.h5", cfg.gmx, mdrun,
    [&](const md::simulation_progress& p) {
      progress = {job.job_id, p.ns_done, p.ns_per_day, p.frames_stored};
      const auto now = std::chrono::steady_clock::now();
      if (now - last_sent >= cfg.progress_period) {
        last_sent = now;
        self->send(listener, progress);
      }
    },
    &cancel);
  self->send(listener, msg::job_progress{job.job_id, r.progress.ns_done, r.progress.ns_per_day,
                                         r.progress.frames_stored});
  done.ns_done = r.progress.ns_done;
  return done;
}

caf::behavior job_behavior(job_actor_type* self, std::shared_ptr<const job_runner_config> cfg,
                           msg::job_spec job, job_placement where, caf::actor listener,
                           std::shared_ptr<std::atomic<bool>> cancel) {
  msg::job_finished done;
  const auto fail = [&](msg::failure_reason reason, const std::string& what) {
    done.job_id = job.job_id;
    done.status = reason == msg::failure_reason::cancelled ? msg::job_status::cancelled
                                                           : msg::job_status::failed;
    done.reason = reason;
    done.message = what;
  };
  try {
    done = run_job(self, *cfg, job, where, listener, *cancel);
  } catch (const md::gmx_error& e) {
    fail(failure_reason_of(e.what_kind()), e.what());
  } catch (const md::io_error& e) {
    fail(msg::failure_reason::bad_input, e.what());
  } catch (const coupling::store_error& e) {
    fail(msg::failure_reason::other, e.what());
  } catch (const md::md_error& e) {
    // A spec the job cannot use, or (createsims) every build failing: the input's fault.
    fail(msg::failure_reason::bad_input, e.what());
  } catch (const std::exception& e) {
    fail(msg::failure_reason::other, e.what());
  }
  self->send(listener, std::move(done));
  self->quit();
  return {};
}

} // namespace

msg::failure_reason failure_reason_of(md::gmx_error_kind kind) noexcept {
  switch (kind) {
    case md::gmx_error_kind::lincs_failure:
    case md::gmx_error_kind::settle_failure: return msg::failure_reason::blew_up;
    case md::gmx_error_kind::non_finite_energy: return msg::failure_reason::non_finite_energy;
    case md::gmx_error_kind::timeout: return msg::failure_reason::timeout;
    case md::gmx_error_kind::cancelled: return msg::failure_reason::cancelled;
    case md::gmx_error_kind::crashed: return msg::failure_reason::process_crashed;
    case md::gmx_error_kind::not_found:
    case md::gmx_error_kind::fatal_error: return msg::failure_reason::other;
  }
  return msg::failure_reason::other;
}

caf::actor spawn_job_actor(caf::actor_system& sys, std::shared_ptr<const job_runner_config> cfg,
                           msg::job_spec job, job_placement placement, caf::actor listener,
                           std::shared_ptr<std::atomic<bool>> cancel) {
  if (!cfg || !cancel)
    throw std::invalid_argument("spawn_job_actor: the runner configuration or cancel flag is null");
  return sys.spawn<caf::detached>(job_behavior, std::move(cfg), std::move(job),
                                  std::move(placement), std::move(listener), std::move(cancel));
}

} // namespace mummi::actors
