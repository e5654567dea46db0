#include "mummi/actors/node_agent.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <optional>
#include <thread>
#include <unistd.h>

#include "mummi/coupling/gateway.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;

namespace {

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using stop_now_atom = caf::atom_constant<caf::atom("stopnow")>;

/// A job running on this node: where its reports go and what it holds.
struct running_job {
  msg::address report_to;
  std::shared_ptr<std::atomic<bool>> cancel;
  std::vector<std::uint32_t> cores; ///< indices into core_busy
  std::vector<std::size_t> gpus;    ///< indices into gpu_busy
};

struct agent_state {
  node_agent_config cfg;
  caf::actor gateway;
  std::shared_ptr<spdlog::logger> log;
  std::uint64_t incarnation = 0;
  bool welcomed = false;
  bool hello_pending = false;
  std::uint64_t head_epoch = 0; ///< bumped whenever the head comes back; stale timers ignored
  std::map<std::uint64_t, running_job> jobs;
  std::vector<bool> core_busy;
  std::vector<bool> gpu_busy;
  std::optional<caf::exit_reason> stopping; ///< set: quit with it once no job runs
  static inline const char* name = "mummi.node_agent";
};

using agent_actor = caf::stateful_actor<agent_state>;

void say_hello(agent_actor* self) {
  auto& st = self->state;
  st.hello_pending = true;
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  msg::node_hello hello{
    st.cfg.node_id, host,        st.incarnation, static_cast<std::uint32_t>(::getpid()),
    st.cfg.cores,   st.cfg.gpus, MUMMI_VERSION};
  self
    ->request(st.gateway, std::chrono::seconds{10}, cpl::request_atom::value,
              msg::address{st.cfg.head_node, "registry"}, hello)
    .then(
      [self](msg::node_welcome& w) {
        auto& s = self->state;
        s.welcomed = true;
        s.hello_pending = false;
        s.log->info("node {}: welcomed by {} (campaign '{}')", s.cfg.node_id, w.head_id,
                    w.campaign);
      },
      [self](caf::error& e) {
        self->state.hello_pending = false;
        self->state.log->warn("node {}: hello not answered ({}), retrying", self->state.cfg.node_id,
                              self->system().render(e));
        self->delayed_send(self, std::chrono::seconds{1}, hello_atom::value);
      });
}

std::string gpu_id_of(const node_agent_config& cfg, std::size_t i) {
  return i < cfg.gpu_ids.size() ? cfg.gpu_ids[i] : std::to_string(i);
}

/// Cores for a job of `want` cores: a contiguous block when pinning (first fit), any free cores
/// otherwise; empty when there are not enough.
std::vector<std::uint32_t> find_cores(const agent_state& s, std::uint32_t want) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t c = 0; c < s.core_busy.size() && out.size() < want; ++c) {
    if (s.core_busy[c]) {
      if (s.cfg.pin)
        out.clear(); // a block must not have a busy core in it
      continue;
    }
    out.push_back(c);
  }
  if (out.size() < want)
    out.clear();
  return out;
}

caf::result<msg::job_accepted> accept_job(agent_actor* self, const msg::address& from,
                                          msg::job_spec job) {
  auto& s = self->state;
  const auto refuse = [](const std::string& why) {
    return cpl::make_error(msg::error_code::rejected, why);
  };
  const std::string what = "job " + std::to_string(job.job_id);
  if (!s.cfg.jobs)
    return refuse("node " + s.cfg.node_id + " runs no jobs (it has no job runner)");
  if (s.stopping)
    return refuse("node " + s.cfg.node_id + " is stopping");
  if (s.jobs.count(job.job_id) != 0)
    return refuse(what + " is already running on node " + s.cfg.node_id);
  const std::uint32_t want = job.cores == 0 ? s.cfg.cores : job.cores;
  const auto free_cores = static_cast<std::size_t>(
    std::count(s.core_busy.begin(), s.core_busy.end(), false));
  const auto free_gpus = static_cast<std::size_t>(
    std::count(s.gpu_busy.begin(), s.gpu_busy.end(), false));
  auto cores = find_cores(s, want);
  if (cores.empty() || free_gpus < job.gpus)
    return refuse(what + " needs " + std::to_string(want) + " cores and "
                  + std::to_string(job.gpus) + " GPUs; node " + s.cfg.node_id + " has "
                  + std::to_string(free_cores) + " of " + std::to_string(s.cfg.cores)
                  + " cores and " + std::to_string(free_gpus) + " of "
                  + std::to_string(s.cfg.gpus) + " GPUs free"
                  + (s.cfg.pin && free_cores >= want ? " (but no block of free cores)" : ""));
  running_job r;
  r.report_to = from;
  r.cancel = std::make_shared<std::atomic<bool>>(false);
  job_placement where;
  for (const auto c : cores)
    s.core_busy[c] = true;
  r.cores = std::move(cores);
  if (s.cfg.pin)
    where.pin_offset = static_cast<int>(r.cores.front());
  for (std::size_t g = 0; g < s.gpu_busy.size() && r.gpus.size() < job.gpus; ++g)
    if (!s.gpu_busy[g]) {
      s.gpu_busy[g] = true;
      r.gpus.push_back(g);
      where.gpu_ids += (where.gpu_ids.empty() ? "" : ",") + gpu_id_of(s.cfg, g);
    }
  job.cores = want;
  for (auto* dir : {&job.input_dir, &job.work_dir})
    if (!dir->empty() && std::filesystem::path(*dir).is_relative())
      *dir = (s.cfg.work_root / *dir).string();
  s.log->info("node {}: {} ({}) accepted from {}/{}: cores {}..{}{}{}", s.cfg.node_id, what,
              job.kind == msg::job_kind::createsims ? "createsims" : "simulation", from.node,
              from.actor, r.cores.front(), r.cores.back(), where.gpu_ids.empty() ? "" : ", GPUs ",
              where.gpu_ids);
  const auto id = job.job_id;
  spawn_job_actor(self->system(), s.cfg.jobs, std::move(job), std::move(where),
                  caf::actor_cast<caf::actor>(self), r.cancel);
  s.jobs.emplace(id, std::move(r));
  return msg::job_accepted{id, s.cfg.node_id};
}

/// Cancels every job and quits with `reason` once they have all finished (or `stop_wait` ran
/// out).
void stop_agent(agent_actor* self, caf::exit_reason reason) {
  auto& s = self->state;
  s.stopping = reason;
  for (auto& [id, job] : s.jobs)
    *job.cancel = true;
  if (s.jobs.empty()) {
    self->quit(reason);
    return;
  }
  s.log->info("node {}: waiting for {} job(s) to stop", s.cfg.node_id, s.jobs.size());
  self->delayed_send(self, s.cfg.stop_wait, stop_now_atom::value);
}

caf::behavior node_agent(agent_actor* self, caf::actor gateway, node_agent_config cfg,
                         std::shared_ptr<spdlog::logger> log) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.gateway = std::move(gateway);
  st.log = std::move(log);
  st.incarnation
    = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  st.core_busy.assign(st.cfg.cores, false);
  st.gpu_busy.assign(st.cfg.gpus, false);
  self->send(st.gateway, cpl::register_atom::value, std::string{"agent"},
             caf::actor_cast<caf::actor>(self));
  self->send(st.gateway, cpl::watch_atom::value, st.cfg.head_node);
  // Without its gateway the agent can reach nobody: stop with it.
  self->monitor(st.gateway);
  self->set_down_handler([self](const caf::down_msg& dm) {
    if (dm.source != self->state.gateway.address())
      return;
    self->state.log->error("node {}: the gateway stopped ({}); stopping", self->state.cfg.node_id,
                           self->system().render(dm.reason));
    stop_agent(self, caf::exit_reason::unreachable);
  });
  say_hello(self);
  return {
    [self](hello_atom) {
      say_hello(self);
    },
    [](const msg::address&, msg::ping& p) {
      return std::move(p);
    },
    [self](const msg::address& from, const msg::control& c) -> caf::result<msg::ack> {
      auto& s = self->state;
      if (c.command == msg::control_command::stop) {
        s.log->info("node {}: stop requested by {}/{} ({})", s.cfg.node_id, from.node, from.actor,
                    c.issuer);
        self->send(self, stop_atom::value);
        return msg::ack{"stopping"};
      }
      return cpl::make_error(msg::error_code::rejected,
                             "node agent does not handle this control command yet");
    },
    [self](stop_atom) {
      stop_agent(self, caf::exit_reason::user_shutdown);
    },
    [self](stop_now_atom) {
      auto& s = self->state;
      s.log->error("node {}: {} job(s) did not stop in time; stopping anyway", s.cfg.node_id,
                   s.jobs.size());
      self->quit(s.stopping.value_or(caf::exit_reason::user_shutdown));
    },
    [self](const msg::address& from, msg::job_spec& job) {
      return accept_job(self, from, std::move(job));
    },
    [self](const msg::address&, const msg::job_cancel& c) -> caf::result<msg::ack> {
      auto& s = self->state;
      const auto it = s.jobs.find(c.job_id);
      if (it == s.jobs.end())
        return cpl::make_error(msg::error_code::unknown_target,
                               "job " + std::to_string(c.job_id) + " is not running on node "
                                 + s.cfg.node_id);
      *it->second.cancel = true;
      s.log->info("node {}: job {} cancelled ({})", s.cfg.node_id, c.job_id, c.reason);
      return msg::ack{"cancelling job " + std::to_string(c.job_id)};
    },
    [self](msg::job_progress& p) {
      auto& s = self->state;
      if (const auto it = s.jobs.find(p.job_id); it != s.jobs.end())
        self->send(s.gateway, cpl::send_atom::value, it->second.report_to, std::move(p));
    },
    [self](msg::job_finished& f) {
      auto& s = self->state;
      const auto it = s.jobs.find(f.job_id);
      if (it == s.jobs.end())
        return;
      for (const auto c : it->second.cores)
        s.core_busy[c] = false;
      for (const auto g : it->second.gpus)
        s.gpu_busy[g] = false;
      s.log->info("node {}: job {} finished: status {}, {}", s.cfg.node_id, f.job_id,
                  static_cast<int>(f.status), f.message.substr(0, 200));
      self->send(s.gateway, cpl::send_atom::value, it->second.report_to, std::move(f));
      s.jobs.erase(it);
      if (s.stopping && s.jobs.empty())
        self->quit(*s.stopping);
    },
    [self](const cpl::peer_down& d) {
      auto& s = self->state;
      s.log->warn("node {}: lost the head ({}); stopping in {} s unless it comes back",
                  s.cfg.node_id, d.reason,
                  std::chrono::duration_cast<std::chrono::seconds>(s.cfg.head_grace).count());
      self->delayed_send(self, s.cfg.head_grace, grace_atom::value, s.head_epoch);
    },
    [self](const cpl::peer_up& u) {
      auto& s = self->state;
      ++s.head_epoch;
      if (u.restarted || (!s.welcomed && !s.hello_pending)) {
        s.log->info("node {}: head {} is back, introducing this node again", s.cfg.node_id, u.node);
        s.welcomed = false;
        say_hello(self);
      }
    },
    [self](grace_atom, std::uint64_t epoch) {
      auto& s = self->state;
      if (epoch != s.head_epoch)
        return;
      s.log->error("node {}: head unreachable for the whole grace period; stopping", s.cfg.node_id);
      stop_agent(self, caf::exit_reason::unreachable);
    },
  };
}

std::uint32_t count_list(const char* value) {
  if (value == nullptr || *value == '\0')
    return 0;
  std::uint32_t n = 1;
  for (const char* p = value; *p; ++p)
    n += *p == ',' ? 1 : 0;
  return n;
}

} // namespace

caf::actor spawn_node_agent(caf::actor_system& sys, caf::actor gateway, node_agent_config cfg,
                            std::shared_ptr<spdlog::logger> log) {
  return sys.spawn(node_agent, std::move(gateway), std::move(cfg), std::move(log));
}

std::uint32_t detect_cores() {
  return std::max(1u, std::thread::hardware_concurrency());
}

std::uint32_t detect_gpus() {
  if (auto n = count_list(std::getenv("CUDA_VISIBLE_DEVICES")); n > 0)
    return n;
  return count_list(std::getenv("ROCR_VISIBLE_DEVICES"));
}

} // namespace mummi::actors
