#include "mummi/actors/workflow_manager.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "mummi/actors/node_registry.hpp"
#include "mummi/coupling/gateway.hpp"
#include "mummi/coupling/journal.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;
namespace fs = std::filesystem;

namespace {

using stop_atom = caf::atom_constant<caf::atom("wm_stop")>;
using retry_atom = caf::atom_constant<caf::atom("wm_retry")>;
using refill_atom = caf::atom_constant<caf::atom("wm_refill")>;

struct node_slots {
  bool alive = false;
  std::uint32_t cores = 0, gpus = 0, free_cores = 0, free_gpus = 0;
};

struct wm_state {
  workflow_config cfg;
  std::unique_ptr<cpl::journal> journal;
  std::map<std::string, node_slots> nodes;
  std::map<std::uint64_t, cpl::journal_job> jobs;
  std::map<std::uint64_t, std::uint32_t> failures; ///< per job, node losses not counted
  std::set<std::uint64_t> waiting;                 ///< queued jobs whose backoff is running
  std::map<std::uint64_t, double> running_ns;      ///< progress of running simulations
  std::deque<msg::structure> structures;           ///< on hand, no job yet
  std::map<std::uint64_t, std::vector<float>> latents; ///< of every structure given a job
  bool requested = false;
  std::uint64_t next_request = 1;
  std::optional<std::string> stopping;             ///< why, once stopping
  bool done = false;
  std::vector<caf::response_promise> done_waiters;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  static inline const char* name = "mummi.workflow_manager";

  std::size_t count(msg::job_kind kind, cpl::job_state state) const {
    return static_cast<std::size_t>(std::count_if(jobs.begin(), jobs.end(), [&](const auto& j) {
      return j.second.kind == kind && j.second.state == state;
    }));
  }
  const job_resources& needs(msg::job_kind kind) const {
    return kind == msg::job_kind::createsims ? cfg.createsims : cfg.simulation;
  }
};

using wm_actor = caf::stateful_actor<wm_state>;

void schedule(wm_actor* self);

/// The shortest text that reads back as `v`.
std::string shortest_text(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return {buf, r.ptr};
}

void event(wm_state& st, std::string_view kind, const std::string& text) {
  st.journal->add_event("workflow", kind, text);
}

msg::monitor_event stats(const wm_state& st) {
  msg::monitor_event ev;
  ev.unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  ev.topic = "workflow";
  ev.kind = "stats";
  ev.text = st.done ? "done" : st.stopping ? "stopping: " + *st.stopping : "running";
  const auto put = [&ev](const std::string& key, auto value) {
    ev.fields.push_back({key, std::to_string(value)});
  };
  for (const auto kind : {msg::job_kind::createsims, msg::job_kind::simulation})
    for (const auto state : {cpl::job_state::queued, cpl::job_state::running,
                             cpl::job_state::succeeded, cpl::job_state::failed,
                             cpl::job_state::cancelled})
      put(std::string(kind == msg::job_kind::createsims ? "createsims_" : "simulation_")
            + cpl::to_string(state),
          st.count(kind, state));
  double ns = 0;
  for (const auto& [id, j] : st.jobs)
    if (j.kind == msg::job_kind::simulation)
      ns += st.running_ns.count(id) != 0 ? st.running_ns.at(id) : j.ns_done;
  put("ns_simulated", ns);
  std::size_t alive = 0, cores = 0, busy = 0;
  for (const auto& [id, n] : st.nodes)
    if (n.alive) {
      alive += 1;
      cores += n.cores;
      busy += n.cores - n.free_cores;
    }
  put("nodes", alive);
  put("cores", cores);
  put("cores_busy", busy);
  put("structures_on_hand", st.structures.size());
  put("seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - st.started)
                   .count());
  return ev;
}

void check_done(wm_actor* self) {
  auto& st = self->state;
  if (!st.stopping || st.done)
    return;
  for (const auto& [id, j] : st.jobs)
    if (j.state == cpl::job_state::running)
      return;
  st.done = true;
  event(st, "done", "campaign stopped: " + *st.stopping);
  for (auto& p : st.done_waiters)
    p.deliver(stats(st));
  st.done_waiters.clear();
}

void stop(wm_actor* self, const std::string& why) {
  auto& st = self->state;
  if (st.stopping)
    return;
  st.stopping = why;
  event(st, "stopping", why);
  for (const auto& [id, j] : st.jobs)
    if (j.state == cpl::job_state::running)
      self->send(st.cfg.gateway, cpl::send_atom::value, msg::address{j.node, "agent"},
                 msg::job_cancel{id, "the campaign is stopping: " + why});
  check_done(self);
}

/// Asks the structure generator for structures when fewer than `buffer` are on hand.
void refill(wm_actor* self) {
  auto& st = self->state;
  if (st.requested || st.stopping || st.structures.size() >= st.cfg.buffer)
    return;
  st.requested = true;
  const auto n = static_cast<std::uint32_t>(st.cfg.buffer - st.structures.size());
  self
    ->request(st.cfg.structure_generator, caf::infinite,
              msg::structure_request{st.next_request++, n})
    .then(
      [self](msg::structure_batch& b) {
        auto& s = self->state;
        s.requested = false;
        for (auto& x : b.structures)
          s.structures.push_back(std::move(x));
        schedule(self);
      },
      [self](caf::error& e) {
        auto& s = self->state;
        event(s, "error", "structure request failed: " + self->system().render(e));
        self->delayed_send(self, s.cfg.backoff, refill_atom::value);
      });
}

/// A new createsims job for the next structure on hand (its structure written for the node).
cpl::journal_job new_createsims(wm_state& st) {
  msg::structure s = std::move(st.structures.front());
  st.structures.pop_front();
  const fs::path dir = st.cfg.campaign_dir / "sims" / std::to_string(s.id);
  fs::create_directories(dir);
  md::structure g = st.cfg.protein;
  for (std::size_t a = 0; a < g.atoms.size() && 3 * a + 2 < s.coords_nm.size(); ++a) {
    g.atoms[a].position_nm = {s.coords_nm[3 * a], s.coords_nm[3 * a + 1], s.coords_nm[3 * a + 2]};
    g.atoms[a].velocity_nm_ps.reset();
  }
  g.title = "structure " + std::to_string(s.id) + " (" + s.sampler + ")";
  md::write_gro(g, dir / "structure.gro");
  cpl::journal_job j;
  j.job_id = st.journal->last_job_id() + 1;
  for (const auto& [id, known] : st.jobs)
    j.job_id = std::max(j.job_id, id + 1);
  j.kind = msg::job_kind::createsims;
  j.structure_id = s.id;
  j.seed = st.cfg.seed * 1000003 + s.id;
  j.input_dir = dir.string();
  j.work_dir = (dir / "createsims").string();
  st.latents[s.id] = std::move(s.latent);
  return j;
}

/// The node that can take a job of `kind` now: `preferred` when it can, else the one with the
/// most free cores; empty when none.
std::string node_for(const wm_state& st, msg::job_kind kind, const std::string& preferred) {
  const auto& need = st.needs(kind);
  const auto fits = [&need](const node_slots& n) {
    return n.alive && n.free_cores >= need.cores && n.free_gpus >= need.gpus;
  };
  if (const auto it = st.nodes.find(preferred); it != st.nodes.end() && fits(it->second))
    return preferred;
  std::string best;
  std::uint32_t most = 0;
  for (const auto& [id, n] : st.nodes)
    if (fits(n) && n.free_cores > most) {
      best = id;
      most = n.free_cores;
    }
  return best;
}

void release(wm_state& st, const cpl::journal_job& j) {
  const auto it = st.nodes.find(j.node);
  if (it == st.nodes.end())
    return;
  const auto& need = st.needs(j.kind);
  it->second.free_cores = std::min(it->second.cores, it->second.free_cores + need.cores);
  it->second.free_gpus = std::min(it->second.gpus, it->second.free_gpus + need.gpus);
}

void place(wm_actor* self, std::uint64_t id, const std::string& node) {
  auto& st = self->state;
  auto& j = st.jobs.at(id);
  const auto& need = st.needs(j.kind);
  auto& slots = st.nodes.at(node);
  slots.free_cores -= need.cores;
  slots.free_gpus -= need.gpus;
  j.state = cpl::job_state::running;
  j.node = node;
  j.attempt += 1;
  {
    cpl::journal::transaction t(*st.journal);
    st.journal->put_job(j);
    st.journal->start_attempt(id, j.attempt, node);
    t.commit();
  }
  msg::job_spec spec;
  spec.job_id = id;
  spec.kind = j.kind;
  spec.structure_id = j.structure_id;
  spec.attempt = j.attempt;
  spec.seed = j.seed;
  spec.cores = need.cores;
  spec.gpus = need.gpus;
  spec.target_ns = j.target_ns;
  spec.input_dir = j.input_dir;
  spec.work_dir = j.work_dir;
  if (j.kind == msg::job_kind::simulation)
    spec.params = {{"frame_ps", shortest_text(st.cfg.frame_ps)},
                   {"checkpoint_minutes", shortest_text(st.cfg.checkpoint_minutes)}};
  self
    ->request(st.cfg.gateway, std::chrono::seconds{30}, cpl::request_atom::value,
              msg::address{node, "agent"}, std::move(spec))
    .then([](msg::job_accepted&) {},
          [self, id, node](caf::error& e) {
            auto& s = self->state;
            auto& job = s.jobs.at(id);
            const std::string why = self->system().render(e);
            if (why.find("already running") != std::string::npos)
              return; // the node kept it running across a head restart: it reports as usual
            if (job.state != cpl::job_state::running || job.node != node)
              return;
            // Not started: back to the queue, the attempt not counted against the job.
            release(s, job);
            s.journal->end_attempt(id, job.attempt, msg::job_status::failed,
                                   msg::failure_reason::other, "not placed: " + why);
            job.attempt -= 1;
            job.state = cpl::job_state::queued;
            s.journal->put_job(job);
            event(s, "placement_refused", "job " + std::to_string(id) + " on " + node + ": " + why);
            s.waiting.insert(id);
            self->delayed_send(self, s.cfg.backoff, retry_atom::value, id);
          });
}

void schedule(wm_actor* self) {
  auto& st = self->state;
  refill(self);
  if (st.stopping)
    return;
  // Queued jobs first (simulations before createsims), oldest first.
  for (const auto kind : {msg::job_kind::simulation, msg::job_kind::createsims})
    for (auto& [id, j] : st.jobs) {
      if (j.kind != kind || j.state != cpl::job_state::queued || st.waiting.count(id) != 0)
        continue;
      std::string preferred;
      if (kind == msg::job_kind::simulation)
        for (const auto& [cid, c] : st.jobs)
          if (c.kind == msg::job_kind::createsims && c.structure_id == j.structure_id)
            preferred = c.node;
      const auto node = node_for(st, kind, preferred);
      if (!node.empty())
        place(self, id, node);
    }
  // Then new createsims while a node has room and the stopping point is not covered yet.
  for (;;) {
    if (st.structures.empty())
      break;
    if (st.cfg.stop_after_simulations > 0) {
      std::size_t promised = 0;
      for (const auto& [id, j] : st.jobs)
        if (j.state != cpl::job_state::failed)
          promised += j.kind == msg::job_kind::simulation
            ? 1
            : (j.state == cpl::job_state::succeeded ? 0 : 1);
      if (promised >= st.cfg.stop_after_simulations)
        break;
    }
    const auto node = node_for(st, msg::job_kind::createsims, {});
    if (node.empty())
      break;
    auto j = new_createsims(st);
    const auto id = j.job_id;
    st.jobs.emplace(id, std::move(j));
    place(self, id, node);
  }
  refill(self);
}

void finished(wm_actor* self, const msg::address& from, msg::job_finished& f) {
  auto& st = self->state;
  const auto it = st.jobs.find(f.job_id);
  if (it == st.jobs.end() || it->second.state != cpl::job_state::running)
    return; // not ours, or already handled (e.g. its node was declared lost)
  auto& j = it->second;
  release(st, j);
  st.running_ns.erase(j.job_id);
  st.journal->end_attempt(j.job_id, j.attempt, f.status, f.reason, f.message);
  j.reason = f.reason;
  j.message = f.message;
  const std::string what = std::string(j.kind == msg::job_kind::createsims ? "createsims"
                                                                           : "simulation")
    + " job " + std::to_string(j.job_id) + " (structure " + std::to_string(j.structure_id)
    + ") on " + from.node;
  if (f.status == msg::job_status::succeeded) {
    j.state = cpl::job_state::succeeded;
    j.ns_done = f.ns_done;
    st.journal->put_job(j);
    if (j.kind == msg::job_kind::createsims) {
      msg::feedback fb{msg::feedback_kind::createsims, j.structure_id, 0, true,
                       st.latents[j.structure_id], 0, {}};
      self->send(st.cfg.structure_generator, std::move(fb));
      cpl::journal_job sim;
      sim.job_id = j.job_id;
      for (const auto& [id, known] : st.jobs)
        sim.job_id = std::max(sim.job_id, id + 1);
      sim.kind = msg::job_kind::simulation;
      sim.structure_id = j.structure_id;
      sim.seed = j.seed;
      sim.input_dir = j.work_dir;
      sim.work_dir = (fs::path(j.input_dir) / "simulation").string();
      sim.target_ns = st.cfg.target_ns;
      st.journal->put_job(sim);
      st.jobs.emplace(sim.job_id, std::move(sim));
    } else {
      event(st, "simulation_done", what + ": " + std::to_string(f.ns_done) + " ns");
      if (st.cfg.stop_after_simulations > 0
          && st.count(msg::job_kind::simulation, cpl::job_state::succeeded)
               >= st.cfg.stop_after_simulations)
        stop(self, std::to_string(st.cfg.stop_after_simulations) + " simulations done");
    }
  } else if (f.status == msg::job_status::cancelled || st.stopping) {
    // Stopped with the campaign (or by someone): resumable, queued again at the next start.
    j.state = st.stopping ? cpl::job_state::cancelled : cpl::job_state::queued;
    st.journal->put_job(j);
  } else {
    const auto failures = ++st.failures[j.job_id];
    if (failures < st.cfg.max_attempts) {
      j.state = cpl::job_state::queued;
      if (j.kind == msg::job_kind::createsims)
        j.seed += 7919; // a new build
      st.journal->put_job(j);
      const auto delay = st.cfg.backoff * (1 << std::min<std::uint32_t>(failures - 1, 16));
      event(st, "retry", what + " failed (" + f.message.substr(0, 300) + "); placing it again in "
                           + std::to_string(delay.count()) + " ms");
      st.waiting.insert(j.job_id);
      self->delayed_send(self, delay, retry_atom::value, j.job_id);
    } else {
      j.state = cpl::job_state::failed;
      st.journal->put_job(j);
      event(st, "given_up", what + " failed " + std::to_string(failures) + " times; last: "
                              + f.message.substr(0, 300));
      if (j.kind == msg::job_kind::createsims)
        self->send(st.cfg.structure_generator,
                   msg::feedback{msg::feedback_kind::createsims, j.structure_id, 0, false,
                                 st.latents[j.structure_id], 0, {}});
    }
  }
  check_done(self);
  schedule(self);
}

void node_changed(wm_actor* self, const msg::node_status& n) {
  auto& st = self->state;
  auto& slots = st.nodes[n.node_id];
  if (n.alive && !slots.alive) {
    slots = {true, n.cores_total, n.gpus_total, n.cores_total, n.gpus_total};
    event(st, "node_joined", n.node_id + ": " + std::to_string(n.cores_total) + " cores, "
                               + std::to_string(n.gpus_total) + " GPUs");
    // A node that comes back runs nothing the head placed before (those jobs moved on).
    schedule(self);
    return;
  }
  if (!n.alive && slots.alive) {
    slots.alive = false;
    event(st, "node_lost", n.node_id);
    for (auto& [id, j] : st.jobs)
      if (j.state == cpl::job_state::running && j.node == n.node_id) {
        st.journal->end_attempt(id, j.attempt, msg::job_status::failed,
                                msg::failure_reason::node_lost, n.node_id + " lost");
        st.running_ns.erase(id);
        j.state = cpl::job_state::queued;
        st.journal->put_job(j);
      }
    check_done(self);
    schedule(self);
  }
}

caf::behavior wm_behavior(wm_actor* self, std::shared_ptr<wm_state> init) {
  self->state = std::move(*init);
  auto& st = self->state;
  self->send(st.cfg.gateway, cpl::register_atom::value, std::string{"wm"},
             caf::actor_cast<caf::actor>(self));
  self->send(st.cfg.registry, watch_nodes_atom::value);
  if (st.cfg.wall_time.count() > 0)
    self->delayed_send(self, st.cfg.wall_time, stop_atom::value);
  schedule(self);
  return {
    [self](const msg::address& from, msg::job_finished& f) {
      finished(self, from, f);
    },
    [self](const msg::address&, const msg::job_progress& p) {
      auto& s = self->state;
      if (const auto it = s.jobs.find(p.job_id);
          it != s.jobs.end() && it->second.state == cpl::job_state::running)
        s.running_ns[p.job_id] = p.ns_done;
    },
    [self](const msg::node_status& n) {
      node_changed(self, n);
    },
    [self](retry_atom, std::uint64_t id) {
      self->state.waiting.erase(id);
      schedule(self);
    },
    [self](refill_atom) {
      self->state.requested = false;
      schedule(self);
    },
    [self](stop_atom) {
      stop(self, "wall time reached");
    },
    [self](const msg::control& c) -> caf::result<msg::ack> {
      if (c.command != msg::control_command::stop)
        return cpl::make_error(msg::error_code::rejected,
                               "the workflow manager handles only stop here");
      event(self->state, "control", "stop from '" + c.issuer + "'");
      stop(self, "stopped by " + (c.issuer.empty() ? std::string("an operator") : c.issuer));
      return msg::ack{"stopping"};
    },
    [self](stats_atom) {
      return stats(self->state);
    },
    [self](await_done_atom) -> caf::result<msg::monitor_event> {
      auto& s = self->state;
      if (s.done)
        return stats(s);
      auto p = self->make_response_promise();
      s.done_waiters.push_back(p);
      return p;
    },
  };
}

} // namespace

caf::actor spawn_workflow_manager(caf::actor_system& sys, workflow_config cfg) {
  if (!cfg.gateway || !cfg.registry || !cfg.structure_generator)
    throw std::invalid_argument("workflow manager: gateway, registry and structure generator "
                                "must be given");
  if (cfg.createsims.cores == 0 || cfg.simulation.cores == 0)
    throw std::invalid_argument("workflow manager: every job needs at least one core");
  auto st = std::make_shared<wm_state>();
  st->journal = std::make_unique<cpl::journal>(
    cpl::journal::open(cfg.journal, cpl::journal_mode::open_or_create));
  st->cfg = std::move(cfg);
  // Resume: what the journal says was under way is queued again.
  std::set<std::uint64_t> with_job;
  for (auto& j : st->journal->jobs()) {
    with_job.insert(j.structure_id);
    if (j.state == cpl::job_state::running || j.state == cpl::job_state::cancelled) {
      j.state = cpl::job_state::queued;
      st->journal->put_job(j);
    }
    if (const auto s = st->journal->find_structure(j.structure_id))
      st->latents[j.structure_id] = s->value.latent;
    st->jobs.emplace(j.job_id, std::move(j));
  }
  for (auto& s : st->journal->structures(cpl::structure_state::delivered))
    if (with_job.count(s.value.id) == 0)
      st->structures.push_back(std::move(s.value));
  return sys.spawn(wm_behavior, std::move(st));
}

} // namespace mummi::actors
