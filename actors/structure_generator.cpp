#include "mummi/actors/structure_generator.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/messages/messages.hpp"
#include "mummi/ml/autoencoder.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;
namespace cpl = mummi::coupling;

namespace {

using checkpoint_now_atom = caf::atom_constant<caf::atom("sgckpt")>;

struct waiting_request {
  msg::structure_request request;
  caf::response_promise promise;
};

struct sg_state {
  structure_generator_config cfg;
  caf::actor sampler, generator, validator;
  std::string sampler_name;

  std::deque<msg::structure> ready;          ///< validated, waiting to be handed out
  std::deque<msg::structure> to_validate;    ///< sampled before a restart, not yet validated
  std::deque<waiting_request> waiting;
  std::size_t waiting_structures = 0;        ///< sum of the waiting requests' counts
  std::size_t in_flight = 0;                 ///< structures between sampler and verdict
  std::size_t batches_in_flight = 0;
  std::unordered_set<std::uint64_t> latents; ///< every latent point ready or handed out
  std::uint64_t next_batch = 1;

  bool paused = false;
  bool stopped = false;
  std::size_t batch_errors_in_a_row = 0;
  std::string last_error;

  std::uint64_t log_since_checkpoint = 0;
  std::uint64_t checkpoint_seq = 0; ///< the log seq the latest checkpoint covers
  bool checkpoint_in_flight = false;

  // counters since spawn
  std::uint64_t sampled = 0, valid = 0, invalid = 0, duplicate = 0, failed = 0, delivered = 0;
  std::uint64_t batch_errors = 0, rejected_feedback = 0;
  double validation_seconds = 0;

  static inline const char* name = "mummi.structure_generator";

  std::size_t target() const {
    return static_cast<std::size_t>(
      std::ceil(cfg.factor_extra * static_cast<double>(cfg.buffer)));
  }
  bool failing() const {
    return batch_errors_in_a_row >= cfg.max_batch_errors;
  }
};

using sg_actor = caf::stateful_actor<sg_state>;

/// A 64-bit hash of a latent point's bytes (two different points collide with probability
/// about 2^-64: such a point would be dropped as a duplicate, never handed out twice).
std::uint64_t latent_key(const std::vector<float>& z) {
  return std::hash<std::string_view>{}(
    {reinterpret_cast<const char*>(z.data()), z.size() * sizeof(float)});
}

/// The error_reply an actor answered with (it arrives as an unexpected response), or one made
/// from any other error.
msg::error_reply as_error_reply(caf::actor_system& sys, const caf::error& e) {
  const caf::message& ctx = e.context();
  if (ctx.match_elements<msg::error_reply>())
    return ctx.get_as<msg::error_reply>(0);
  return {msg::error_code::internal, sys.render(e)};
}

const char* command_name(msg::control_command c) {
  switch (c) {
    case msg::control_command::swap_sampler: return "swap_sampler";
    case msg::control_command::pause: return "pause";
    case msg::control_command::resume: return "resume";
    case msg::control_command::drain_node: return "drain_node";
    case msg::control_command::set_limit: return "set_limit";
    case msg::control_command::stop: return "stop";
  }
  return "unknown";
}

msg::error_reply failing_reply(const sg_state& st) {
  return {msg::error_code::internal,
          "the structure generator stopped making structures after "
            + std::to_string(st.batch_errors_in_a_row)
            + " failed batches in a row (last: " + st.last_error + "); send 'resume' to retry"};
}

void journal_event(sg_state& st, std::string_view kind, const std::string& text) {
  if (st.cfg.journal)
    st.cfg.journal->add_event("structure_generator", kind, text);
}

void refill(sg_actor* self);

/// Answers waiting requests, oldest first, while enough structures are ready.
void serve(sg_actor* self) {
  auto& st = self->state;
  while (!st.waiting.empty() && st.ready.size() >= st.waiting.front().request.count) {
    waiting_request w = std::move(st.waiting.front());
    st.waiting.pop_front();
    st.waiting_structures -= w.request.count;
    msg::structure_batch out;
    out.request_id = w.request.request_id;
    std::vector<std::uint64_t> ids;
    for (std::uint32_t i = 0; i < w.request.count; ++i) {
      ids.push_back(st.ready.front().id);
      out.structures.push_back(std::move(st.ready.front()));
      st.ready.pop_front();
    }
    if (st.cfg.journal)
      st.cfg.journal->mark_delivered(ids, w.request.request_id);
    st.delivered += ids.size();
    w.promise.deliver(std::move(out));
  }
}

/// Answers every waiting request with `reply`.
void refuse_waiting(sg_actor* self, const msg::error_reply& reply) {
  auto& st = self->state;
  for (auto& w : st.waiting)
    w.promise.deliver(reply);
  st.waiting.clear();
  st.waiting_structures = 0;
}

/// Takes a sampler checkpoint covering everything logged so far.
void checkpoint(sg_actor* self, std::function<void()> then = {}) {
  auto& st = self->state;
  if (!st.cfg.journal) {
    if (then)
      then();
    return;
  }
  const std::uint64_t seq = st.cfg.journal->last_sampler_seq();
  st.checkpoint_in_flight = true;
  st.log_since_checkpoint = 0;
  self->request(st.sampler, caf::infinite, checkpoint_atom::value)
    .then(
      [self, seq, then](std::string& bytes) {
        auto& s = self->state;
        s.checkpoint_in_flight = false;
        s.cfg.journal->put_sampler_checkpoint({seq, s.sampler_name, std::move(bytes)});
        s.checkpoint_seq = seq;
        if (then)
          then();
      },
      [self, then](caf::error& e) {
        self->state.checkpoint_in_flight = false;
        journal_event(self->state, "error",
                      "sampler checkpoint failed: " + as_error_reply(self->system(), e).message);
        if (then)
          then();
      });
}

void logged(sg_actor* self) {
  auto& st = self->state;
  // A checkpoint holds the whole feedback history, so its size grows with the log: spacing
  // them by a quarter of the log keeps the bytes written in all proportional to the log (a
  // geometric series) and a replay after a crash to at most a fifth of it.
  const std::uint64_t every
    = std::max<std::uint64_t>(st.cfg.checkpoint_every, st.checkpoint_seq / 4);
  if (++st.log_since_checkpoint >= every && !st.checkpoint_in_flight)
    checkpoint(self);
}

void finish_batch(sg_actor* self, std::size_t count) {
  auto& st = self->state;
  st.in_flight -= count;
  st.batches_in_flight -= 1;
}

void batch_failed(sg_actor* self, std::vector<msg::structure> structures, const std::string& stage,
                  const msg::error_reply& e) {
  auto& st = self->state;
  st.batch_errors += 1;
  st.batch_errors_in_a_row += 1;
  st.last_error = stage + ": " + e.message;
  st.failed += structures.size();
  if (st.cfg.journal) {
    cpl::journal::transaction t(*st.cfg.journal);
    for (const auto& s : structures)
      st.cfg.journal->update_structure(s, cpl::structure_state::failed);
    st.cfg.journal->add_event("structure_generator", "batch_failed",
                              std::to_string(structures.size()) + " structures lost in the "
                                + st.last_error);
    t.commit();
  }
  finish_batch(self, structures.size());
  if (st.failing())
    refuse_waiting(self, failing_reply(st));
  refill(self);
}

void validated(sg_actor* self, msg::structure_batch batch, double seconds) {
  auto& st = self->state;
  st.batch_errors_in_a_row = 0;
  st.validation_seconds += seconds;
  std::vector<msg::feedback> feedback;
  {
    std::optional<cpl::journal::transaction> t;
    if (st.cfg.journal)
      t.emplace(*st.cfg.journal);
    for (auto& s : batch.structures) {
      cpl::structure_state state = cpl::structure_state::invalid;
      if (s.valid)
        state = st.latents.insert(latent_key(s.latent)).second ? cpl::structure_state::valid
                                                               : cpl::structure_state::duplicate;
      msg::feedback f;
      f.kind = msg::feedback_kind::validation;
      f.structure_id = s.id;
      f.ok = s.valid;
      f.latent = s.latent;
      f.lambda = s.lambda;
      if (st.cfg.journal) {
        st.cfg.journal->update_structure(s, state);
        st.cfg.journal->log_message(cpl::sampler_op::feedback, f);
      }
      feedback.push_back(std::move(f));
      switch (state) {
        case cpl::structure_state::valid:
          st.valid += 1;
          st.ready.push_back(std::move(s));
          break;
        case cpl::structure_state::duplicate: st.duplicate += 1; break;
        default: st.invalid += 1; break;
      }
    }
    if (t)
      t->commit();
  }
  for (auto& f : feedback) {
    self->send(st.sampler, std::move(f));
    if (st.cfg.journal)
      logged(self);
  }
  finish_batch(self, batch.structures.size());
  serve(self);
  refill(self);
}

/// Decodes and validates `structures` (already journaled as sampled).
void decode_and_validate(sg_actor* self, std::vector<msg::structure> structures) {
  auto& st = self->state;
  msg::structure_batch batch;
  batch.request_id = st.next_batch++;
  batch.structures = structures;
  self->request(st.generator, caf::infinite, std::move(batch))
    .then(
      [self, structures](msg::structure_batch& decoded) {
        const auto start = std::chrono::steady_clock::now();
        self->request(self->state.validator, caf::infinite, std::move(decoded))
          .then(
            [self, start](msg::structure_batch& verdicts) {
              const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
              validated(self, std::move(verdicts), took.count());
            },
            [self, structures](caf::error& e) {
              batch_failed(self, structures, "validator", as_error_reply(self->system(), e));
            });
      },
      [self, structures](caf::error& e) {
        batch_failed(self, structures, "generator", as_error_reply(self->system(), e));
      });
}

/// Starts round trips while the buffer (plus waiting requests) needs structures.
void refill(sg_actor* self) {
  auto& st = self->state;
  if (st.paused || st.stopped || st.failing())
    return;
  while (st.batches_in_flight < st.cfg.pipeline_depth) {
    const std::size_t have = st.ready.size() + st.in_flight;
    const std::size_t want = st.target() + st.waiting_structures;
    if (have >= want)
      return;
    std::vector<msg::structure> resumed;
    while (!st.to_validate.empty() && resumed.size() < st.cfg.batch) {
      resumed.push_back(std::move(st.to_validate.front()));
      st.to_validate.pop_front();
    }
    if (!resumed.empty()) {
      st.in_flight += resumed.size();
      st.batches_in_flight += 1;
      decode_and_validate(self, std::move(resumed));
      continue;
    }
    // Always a whole batch (the buffer may overshoot by less than one): batches of one size
    // make the sequence of selections independent of when requests arrive.
    const auto n = static_cast<std::uint32_t>(st.cfg.batch);
    if (st.cfg.journal)
      st.cfg.journal->log_select(n);
    st.in_flight += n;
    st.batches_in_flight += 1;
    self->request(st.sampler, caf::infinite, msg::structure_request{st.next_batch++, n})
      .then(
        [self, n](msg::structure_batch& picked) {
          auto& s = self->state;
          s.sampled += picked.structures.size();
          if (s.cfg.journal)
            s.cfg.journal->add_structures(picked.structures, cpl::structure_state::sampled);
          // A sampler may return fewer than asked; the rest is asked for again.
          s.in_flight -= n - std::min<std::size_t>(n, picked.structures.size());
          decode_and_validate(self, std::move(picked.structures));
        },
        [self, n](caf::error& e) {
          self->state.in_flight -= n;
          batch_failed(self, {}, "sampler", as_error_reply(self->system(), e));
        });
    if (st.cfg.journal)
      logged(self);
  }
}

msg::monitor_event stats(const sg_state& st) {
  msg::monitor_event ev;
  ev.unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  ev.topic = "structure_generator";
  ev.kind = "stats";
  const auto put = [&ev](const char* key, auto value) {
    ev.fields.push_back({key, std::to_string(value)});
  };
  ev.fields.push_back({"sampler", st.sampler_name});
  put("ready", st.ready.size());
  put("in_flight", st.in_flight);
  put("waiting_requests", st.waiting.size());
  put("waiting_structures", st.waiting_structures);
  put("sampled", st.sampled);
  put("valid", st.valid);
  put("invalid", st.invalid);
  put("duplicate", st.duplicate);
  put("failed", st.failed);
  put("delivered", st.delivered);
  put("batch_errors", st.batch_errors);
  put("rejected_feedback", st.rejected_feedback);
  put("validation_seconds", st.validation_seconds);
  ev.text = st.stopped ? "stopped" : st.paused ? "paused" : st.failing() ? "failing" : "running";
  return ev;
}

caf::message set_limit(sg_state& st, const msg::control& c) {
  const auto bad = [&c](const std::string& why) {
    return caf::make_message(msg::error_reply{
      msg::error_code::rejected, "set_limit " + c.target + " '" + c.value + "': " + why});
  };
  double v = 0;
  try {
    std::size_t used = 0;
    v = std::stod(c.value, &used);
    if (used != c.value.size() || !std::isfinite(v))
      return bad("not a number");
  } catch (const std::exception&) {
    return bad("not a number");
  }
  if (c.target == "factor_extra") {
    if (v < 1 || v > 1000)
      return bad("must be in [1, 1000]");
    st.cfg.factor_extra = v;
  } else if (c.target == "buffer" || c.target == "batch") {
    if (v < 1 || v > 1e6 || v != std::floor(v))
      return bad("must be a whole number in [1, 1000000]");
    (c.target == "buffer" ? st.cfg.buffer : st.cfg.batch) = static_cast<std::size_t>(v);
  } else {
    return caf::make_message(msg::error_reply{
      msg::error_code::rejected, "set_limit: the structure generator has no limit '" + c.target
                                   + "' (it has buffer, factor_extra and batch)"});
  }
  return caf::make_message(msg::ack{c.target + " is now " + c.value});
}

caf::behavior sg_behavior(sg_actor* self, std::shared_ptr<sg_state> init) {
  self->state = std::move(*init);
  for (const auto* child : {&self->state.sampler, &self->state.generator, &self->state.validator})
    self->link_to(*child);
  refill(self);
  return {
    [self](const msg::structure_request& r) -> caf::result<caf::message> {
      auto& st = self->state;
      if (r.count == 0)
        return caf::make_message(msg::structure_batch{r.request_id, {}});
      if (r.count > st.cfg.max_request)
        return caf::make_message(msg::error_reply{
          msg::error_code::rejected, "structure request " + std::to_string(r.request_id)
                                       + " asks for " + std::to_string(r.count)
                                       + " structures; at most "
                                       + std::to_string(st.cfg.max_request) + " per request"});
      if (st.failing())
        return caf::make_message(failing_reply(st));
      if (st.stopped)
        return caf::make_message(
          msg::error_reply{msg::error_code::rejected, "the structure generator is stopped"});
      auto promise = self->make_response_promise();
      st.waiting.push_back({r, promise});
      st.waiting_structures += r.count;
      serve(self);
      refill(self);
      return caf::delegated<caf::message>{};
    },
    [self](msg::feedback& f) {
      auto& st = self->state;
      if (f.kind == msg::feedback_kind::validation) {
        st.rejected_feedback += 1;
        journal_event(st, "feedback_rejected",
                      "validation feedback for structure " + std::to_string(f.structure_id)
                        + " came from outside; the structure generator makes its own");
        return;
      }
      if (st.cfg.journal)
        st.cfg.journal->log_message(cpl::sampler_op::feedback, f);
      self->send(st.sampler, std::move(f));
      if (st.cfg.journal)
        logged(self);
    },
    [self](msg::control& c) -> caf::result<caf::message> {
      auto& st = self->state;
      journal_event(st, "control",
                    std::string("from '") + c.issuer + "': " + command_name(c.command) + " "
                      + c.target + " " + c.value);
      switch (c.command) {
        case msg::control_command::swap_sampler: {
          if (st.cfg.journal)
            st.cfg.journal->log_message(cpl::sampler_op::control, c);
          auto promise = self->make_response_promise();
          self->request(st.sampler, caf::infinite, c)
            .then(
              [self, promise](msg::ack& a) mutable {
                promise.deliver(a);
                self->request(self->state.sampler, caf::infinite, sampler_name_atom::value)
                  .then([self](std::string& name) {
                    self->state.sampler_name = std::move(name);
                    journal_event(self->state, "sampler", "now " + self->state.sampler_name);
                  });
              },
              [self, promise](caf::error& e) mutable {
                promise.deliver(as_error_reply(self->system(), e));
              });
          if (st.cfg.journal)
            logged(self);
          return caf::delegated<caf::message>{};
        }
        case msg::control_command::pause:
          st.paused = true;
          return caf::make_message(msg::ack{"structure generator paused"});
        case msg::control_command::resume:
          st.paused = false;
          st.batch_errors_in_a_row = 0;
          refill(self);
          return caf::make_message(msg::ack{"structure generator running"});
        case msg::control_command::set_limit: {
          caf::message reply = set_limit(st, c);
          refill(self);
          return reply;
        }
        case msg::control_command::stop: {
          st.stopped = true;
          refuse_waiting(self, {msg::error_code::rejected, "the structure generator was stopped"});
          auto promise = self->make_response_promise();
          checkpoint(self, [promise]() mutable {
            promise.deliver(msg::ack{"structure generator stopped; sampler checkpointed"});
          });
          return caf::delegated<caf::message>{};
        }
        default:
          return caf::make_message(
            msg::error_reply{msg::error_code::rejected,
                             "the structure generator handles swap_sampler, pause, resume, "
                             "set_limit and stop"});
      }
    },
    [self](stats_atom) {
      return stats(self->state);
    },
  };
}

/// Restores the sampler actor from the journal's latest checkpoint and replays the log after
/// it; fills `st` with the structures waiting in the journal.
void resume_from(caf::actor_system& sys, sg_state& st) {
  cpl::journal& j = *st.cfg.journal;
  const auto cp = j.latest_sampler_checkpoint();
  st.checkpoint_seq = cp->seq;
  caf::scoped_actor self{sys};
  for (const auto& e : j.sampler_log(cp->seq)) {
    if (e.op == cpl::sampler_op::select) {
      self->request(st.sampler, caf::infinite, msg::structure_request{0, e.count})
        .receive(
          [&j](msg::structure_batch& b) {
            j.add_structures(b.structures, cpl::structure_state::sampled);
          },
          [&j, &sys, &e](caf::error& err) {
            throw cpl::journal_error(j.path(), "replaying sampler_log seq " + std::to_string(e.seq)
                                                 + ": " + sys.render(err));
          });
    } else if (const auto* f = std::get_if<msg::feedback>(&*e.body);
               f != nullptr && e.op == cpl::sampler_op::feedback) {
      self->send(st.sampler, *f);
    } else if (const auto* c = std::get_if<msg::control>(&*e.body);
               c != nullptr && e.op == cpl::sampler_op::control) {
      self->request(st.sampler, caf::infinite, *c).receive([](msg::ack&) {}, [](caf::error&) {});
    } else {
      throw cpl::journal_error(j.path(), "sampler_log seq " + std::to_string(e.seq) + " holds a "
                                           + msg::type_name(*e.body) + " message, not a "
                                           + (e.op == cpl::sampler_op::feedback ? "feedback"
                                                                                : "control"));
    }
  }
  self->request(st.sampler, caf::infinite, sampler_name_atom::value)
    .receive(
      [&st](std::string& name) {
        st.sampler_name = std::move(name);
      },
      [](caf::error&) {});
  for (auto& s : j.structures(cpl::structure_state::valid)) {
    st.latents.insert(latent_key(s.value.latent));
    st.ready.push_back(std::move(s.value));
  }
  for (auto& s : j.structures(cpl::structure_state::delivered))
    st.latents.insert(latent_key(s.value.latent));
  for (auto& s : j.structures(cpl::structure_state::sampled))
    st.to_validate.push_back(std::move(s.value));
  j.add_event("structure_generator", "resumed",
              "from the sampler checkpoint at seq " + std::to_string(cp->seq) + ": "
                + std::to_string(st.ready.size()) + " structures ready, "
                + std::to_string(st.to_validate.size()) + " to validate again");
}

} // namespace

structure_generator_config structure_generator_for(const md::system_spec& system,
                                                   const md::structure& protein,
                                                   const std::filesystem::path& model_path,
                                                   const std::vector<std::filesystem::path>& frames,
                                                   const std::filesystem::path& work_dir) {
  structure_generator_config c;
  c.sampler.registry
    = std::make_shared<const ml::sampler_registry>(ml::sampler_registry::with_builtins());
  c.sampler.states
    = ml::encode_states(ml::autoencoder::load(model_path), coupling::read_frames(frames));
  c.generator.model_path = model_path;
  c.generator.expected_beads = protein.atoms.size();
  std::filesystem::create_directories(work_dir);
  md::write_protein_topology(system, work_dir / "protein.top",
                             "structure generator " + system.protein_molecule);
  c.validator.validator.topology = work_dir / "protein.top";
  c.validator.validator.couple_moltype = system.protein_molecule;
  c.validator.validator.work_root = work_dir / "validation";
  c.validator.structure_template = protein;
  return c;
}

caf::actor spawn_structure_generator(caf::actor_system& sys, structure_generator_config cfg) {
  if (cfg.buffer == 0 || cfg.batch == 0 || cfg.pipeline_depth == 0 || cfg.max_request == 0
      || cfg.max_batch_errors == 0 || cfg.checkpoint_every == 0)
    throw std::invalid_argument("structure generator: buffer, batch, pipeline_depth, "
                                "max_request, max_batch_errors and checkpoint_every must be "
                                "at least 1");
  if (!(cfg.factor_extra >= 1))
    throw std::invalid_argument("structure generator: factor_extra must be at least 1");
  auto st = std::make_shared<sg_state>();
  std::optional<cpl::sampler_checkpoint> cp;
  if (cfg.journal) {
    cp = cfg.journal->latest_sampler_checkpoint();
    if (cp)
      cfg.sampler.checkpoint = cp->bytes;
  }
  st->generator = spawn_generator_actor(sys, cfg.generator);
  st->validator = spawn_validator_actor(sys, cfg.validator);
  st->sampler = spawn_sampler_actor(sys, cfg.sampler);
  st->sampler_name = cfg.sampler.sampler;
  st->cfg = std::move(cfg);
  if (cp) {
    resume_from(sys, *st);
  } else if (st->cfg.journal) {
    // The first checkpoint, so that a resume always starts from one.
    caf::scoped_actor self{sys};
    self->request(st->sampler, caf::infinite, checkpoint_atom::value)
      .receive(
        [&st](std::string& bytes) {
          st->cfg.journal->put_sampler_checkpoint(
            {st->cfg.journal->last_sampler_seq(), st->sampler_name, std::move(bytes)});
        },
        [&sys](caf::error& e) {
          throw std::runtime_error("structure generator: no first sampler checkpoint: "
                                   + sys.render(e));
        });
  }
  return sys.spawn<caf::detached>(sg_behavior, std::move(st));
}

} // namespace mummi::actors
