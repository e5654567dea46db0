#include "mummi/actors/sampler_actor.hpp"

#include <caf/all.hpp>

#include <bit>
#include <charconv>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

#include "mummi/messages/messages.hpp"

namespace mummi::actors {

namespace msg = mummi::messages;

namespace {

constexpr std::string_view checkpoint_magic = "mummi-sampler-actor 1\n";

/// One feedback outcome as received (the actor's structure id).
struct history_entry {
  ml::sampler_feedback::kind what = ml::sampler_feedback::kind::validation;
  std::uint64_t structure_id = 0;
  bool ok = true;
  std::vector<float> z;
};

struct sampler_state {
  std::shared_ptr<const ml::sampler_registry> registry;
  ml::state_ensembles states;
  std::uint64_t seed = 0;
  std::uint64_t generation = 0; ///< swaps so far; the current sampler's seed is seed + generation
  std::string sampler_name;
  ml::sampler_params params;
  std::unique_ptr<ml::sampler> current;
  std::uint64_t next_id = 1;
  /// actor structure id -> the current sampler's id, for the current sampler's structures only.
  std::map<std::uint64_t, std::uint64_t> sampler_ids;
  std::vector<history_entry> history;
  std::uint64_t rejected = 0;
  static inline const char* name = "mummi.sampler";
};

ml::sampler_feedback to_sampler_feedback(const sampler_state& st, const history_entry& h) {
  ml::sampler_feedback f;
  f.what = h.what;
  const auto it = st.sampler_ids.find(h.structure_id);
  f.sample_id = it == st.sampler_ids.end() ? 0 : it->second;
  f.ok = h.ok;
  f.z = h.z;
  return f;
}

// --- checkpoint text: `label value` lines and `label length` + raw bytes blobs -------------

void put_line(std::string& out, std::string_view label, std::string_view value) {
  out.append(label).append(" ").append(value).append("\n");
}

void put_blob(std::string& out, std::string_view label, std::string_view bytes) {
  put_line(out, label, std::to_string(bytes.size()));
  out.append(bytes).append("\n");
}

std::string floats_hex(const std::vector<float>& v) {
  std::string s = std::to_string(v.size());
  char buf[16];
  for (float x : v) {
    std::snprintf(buf, sizeof buf, " %08x", std::bit_cast<std::uint32_t>(x));
    s += buf;
  }
  return s;
}

class checkpoint_parser {
public:
  explicit checkpoint_parser(std::string_view text) : all_(text), rest_(text) {}

  void expect(std::string_view literal) {
    if (rest_.substr(0, literal.size()) != literal)
      fail("expected '" + std::string(literal.substr(0, literal.find('\n'))) + "'");
    rest_.remove_prefix(literal.size());
  }

  std::string_view line(std::string_view label) {
    const std::size_t end = rest_.find('\n');
    if (end == std::string_view::npos || rest_.substr(0, label.size()) != label
        || rest_.size() <= label.size() || rest_[label.size()] != ' ')
      fail("expected a '" + std::string(label) + "' line");
    std::string_view value = rest_.substr(label.size() + 1, end - label.size() - 1);
    rest_.remove_prefix(end + 1);
    return value;
  }

  std::uint64_t u64(std::string_view label) {
    const std::size_t at = offset();
    return to_u64(line(label), label, at);
  }

  std::string_view blob(std::string_view label) {
    const std::uint64_t n = u64(label);
    if (n >= rest_.size() || rest_[n] != '\n')
      fail("'" + std::string(label) + "' promises " + std::to_string(n)
           + " bytes followed by a line end");
    std::string_view bytes = rest_.substr(0, n);
    rest_.remove_prefix(n + 1);
    return bytes;
  }

  /// Splits `value` at spaces.
  static std::vector<std::string_view> words(std::string_view value) {
    std::vector<std::string_view> out;
    while (!value.empty()) {
      const std::size_t sp = value.find(' ');
      out.push_back(value.substr(0, sp));
      value = sp == std::string_view::npos ? std::string_view{} : value.substr(sp + 1);
    }
    return out;
  }

  std::uint64_t to_u64(std::string_view text, std::string_view what, std::size_t at) const {
    std::uint64_t v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || p != text.data() + text.size())
      fail_at(
        at, "'" + std::string(what) + "': '" + std::string(text) + "' is not an unsigned integer");
    return v;
  }

  std::vector<float> floats(const std::vector<std::string_view>& w, std::size_t first,
                            std::size_t at) const {
    if (w.size() <= first)
      fail_at(at, "missing the float count");
    const std::uint64_t n = to_u64(w[first], "float count", at);
    if (w.size() - first - 1 != n)
      fail_at(at,
              "float count " + std::to_string(n) + " but " + std::to_string(w.size() - first - 1)
                + " values");
    std::vector<float> out;
    out.reserve(n);
    for (std::size_t i = first + 1; i < w.size(); ++i) {
      std::uint32_t bits = 0;
      const auto [p, ec] = std::from_chars(w[i].data(), w[i].data() + w[i].size(), bits, 16);
      if (ec != std::errc{} || p != w[i].data() + w[i].size() || w[i].size() != 8)
        fail_at(at, "'" + std::string(w[i]) + "' is not a float bit pattern (8 hex digits)");
      out.push_back(std::bit_cast<float>(bits));
    }
    return out;
  }

  void finish() const {
    if (!rest_.empty())
      fail("unexpected text after the last field");
  }

  std::size_t offset() const noexcept {
    return all_.size() - rest_.size();
  }

  [[noreturn]] void fail(const std::string& problem) const {
    fail_at(offset(), problem);
  }

  [[noreturn]] void fail_at(std::size_t at, const std::string& problem) const {
    throw ml::sampler_error("sampler actor checkpoint, byte offset " + std::to_string(at) + ": "
                            + problem);
  }

private:
  std::string_view all_;
  std::string_view rest_;
};

std::string write_checkpoint(const sampler_state& st) {
  std::string out(checkpoint_magic);
  put_line(out, "seed", std::to_string(st.seed));
  put_line(out, "generation", std::to_string(st.generation));
  put_line(out, "next_id", std::to_string(st.next_id));
  put_line(out, "rejected", std::to_string(st.rejected));
  put_blob(out, "sampler", st.sampler_name);
  put_line(out, "params", std::to_string(st.params.size()));
  for (const auto& [key, value] : st.params) {
    put_blob(out, "key", key);
    put_blob(out, "value", value);
  }
  put_blob(out, "state", st.current->checkpoint());
  std::string ids = std::to_string(st.sampler_ids.size());
  for (const auto& [ours, theirs] : st.sampler_ids)
    ids += " " + std::to_string(ours) + " " + std::to_string(theirs);
  put_line(out, "ids", ids);
  put_line(out, "history", std::to_string(st.history.size()));
  for (const auto& h : st.history)
    put_line(out, "fb",
             std::to_string(static_cast<unsigned>(h.what)) + " " + std::to_string(h.structure_id)
               + " " + (h.ok ? "1" : "0") + " " + floats_hex(h.z));
  return out;
}

/// Fills `st` (registry and states already set) from a checkpoint.
void read_checkpoint(sampler_state& st, std::string_view text) {
  checkpoint_parser p(text);
  p.expect(checkpoint_magic);
  st.seed = p.u64("seed");
  st.generation = p.u64("generation");
  st.next_id = p.u64("next_id");
  if (st.next_id == 0)
    p.fail("next_id must be at least 1");
  st.rejected = p.u64("rejected");
  st.sampler_name = std::string(p.blob("sampler"));
  const std::uint64_t n_params = p.u64("params");
  st.params.clear();
  for (std::uint64_t i = 0; i < n_params; ++i) {
    std::string key(p.blob("key"));
    st.params[key] = std::string(p.blob("value"));
  }
  const std::size_t state_at = p.offset();
  const std::string_view sampler_bytes = p.blob("state");
  try {
    st.current
      = st.registry->create(st.sampler_name, st.states, st.params, st.seed + st.generation);
    st.current->restore(sampler_bytes);
  } catch (const ml::sampler_error& e) {
    p.fail_at(state_at, e.what());
  }
  {
    const std::size_t at = p.offset();
    const auto w = checkpoint_parser::words(p.line("ids"));
    const std::uint64_t n = w.empty() ? 0 : p.to_u64(w[0], "ids count", at);
    if (w.empty() || w.size() != 1 + 2 * n)
      p.fail_at(at, "'ids' needs a count and that many id pairs");
    st.sampler_ids.clear();
    for (std::size_t i = 0; i < n; ++i)
      st.sampler_ids[p.to_u64(w[1 + 2 * i], "id", at)] = p.to_u64(w[2 + 2 * i], "id", at);
  }
  const std::uint64_t n_history = p.u64("history");
  st.history.clear();
  for (std::uint64_t i = 0; i < n_history; ++i) {
    const std::size_t at = p.offset();
    const auto w = checkpoint_parser::words(p.line("fb"));
    if (w.size() < 4)
      p.fail_at(at, "'fb' needs kind, structure id, ok and latent values");
    history_entry h;
    const std::uint64_t kind = p.to_u64(w[0], "feedback kind", at);
    if (kind > static_cast<std::uint64_t>(ml::sampler_feedback::kind::frame))
      p.fail_at(at, "feedback kind " + std::to_string(kind) + " is not 0, 1 or 2");
    h.what = static_cast<ml::sampler_feedback::kind>(kind);
    h.structure_id = p.to_u64(w[1], "structure id", at);
    if (w[2] != "0" && w[2] != "1")
      p.fail_at(at, "feedback ok '" + std::string(w[2]) + "' is not 0 or 1");
    h.ok = w[2] == "1";
    h.z = p.floats(w, 3, at);
    st.history.push_back(std::move(h));
  }
  p.finish();
}

ml::sampler_feedback::kind to_kind(msg::feedback_kind k) {
  switch (k) {
    case msg::feedback_kind::validation: return ml::sampler_feedback::kind::validation;
    case msg::feedback_kind::createsims: return ml::sampler_feedback::kind::createsims;
    case msg::feedback_kind::frame: return ml::sampler_feedback::kind::frame;
  }
  return ml::sampler_feedback::kind::validation;
}

using sampler_actor_type = caf::stateful_actor<sampler_state>;

msg::structure_batch answer(sampler_state& st, const msg::structure_request& r) {
  msg::structure_batch batch;
  batch.request_id = r.request_id;
  std::vector<ml::latent_sample> samples = st.current->select(r.count);
  batch.structures.reserve(samples.size());
  for (auto& s : samples) {
    msg::structure out;
    out.id = st.next_id++;
    st.sampler_ids[out.id] = s.id;
    out.latent = std::move(s.z);
    out.lambda = static_cast<float>(s.lambda);
    out.sampler = st.sampler_name;
    batch.structures.push_back(std::move(out));
  }
  return batch;
}

caf::message swap(sampler_state& st, const msg::control& c) {
  if (c.command != msg::control_command::swap_sampler)
    return caf::make_message(msg::error_reply{
      msg::error_code::rejected, "the sampler actor handles only the swap_sampler command"});
  ml::sampler_params params;
  for (const auto& kv : c.params)
    params[kv.key] = kv.value;
  try {
    auto next = st.registry->create(c.target, st.states, params, st.seed + st.generation + 1);
    for (const auto& h : st.history) {
      ml::sampler_feedback f;
      f.what = h.what;
      f.sample_id = 0; // no structure of the history came from the new sampler
      f.ok = h.ok;
      f.z = h.z;
      next->add_feedback(f);
    }
    st.current = std::move(next);
    st.sampler_name = c.target;
    st.params = std::move(params);
    st.generation += 1;
    st.sampler_ids.clear();
    return caf::make_message(msg::ack{"sampler is now '" + st.sampler_name + "'"});
  } catch (const ml::sampler_error& e) {
    return caf::make_message(msg::error_reply{msg::error_code::rejected,
                                              "cannot swap to sampler '" + c.target + "': "
                                                + e.what() + "; '" + st.sampler_name + "' stays"});
  }
}

caf::behavior sampler_behavior(sampler_actor_type* self, std::shared_ptr<sampler_state> init) {
  self->state = std::move(*init);
  return {
    [self](const msg::structure_request& r) {
      return answer(self->state, r);
    },
    [self](const msg::feedback& f) {
      auto& st = self->state;
      history_entry h;
      h.what = to_kind(f.kind);
      h.structure_id = f.structure_id;
      h.ok = f.ok;
      h.z = f.latent;
      try {
        st.current->add_feedback(to_sampler_feedback(st, h));
      } catch (const ml::sampler_error&) {
        ++st.rejected;
        return;
      }
      st.history.push_back(std::move(h));
    },
    [self](const msg::control& c) {
      return swap(self->state, c);
    },
    [self](checkpoint_atom) {
      return write_checkpoint(self->state);
    },
    [self](sampler_name_atom) {
      return self->state.sampler_name;
    },
  };
}

} // namespace

caf::actor spawn_sampler_actor(caf::actor_system& sys, sampler_actor_config cfg) {
  if (!cfg.registry)
    throw std::invalid_argument("spawn_sampler_actor: the sampler registry is null");
  auto st = std::make_shared<sampler_state>();
  st->registry = std::move(cfg.registry);
  st->states = std::move(cfg.states);
  if (cfg.checkpoint) {
    read_checkpoint(*st, *cfg.checkpoint);
  } else {
    st->seed = cfg.seed;
    st->sampler_name = std::move(cfg.sampler);
    st->params = std::move(cfg.params);
    st->current = st->registry->create(st->sampler_name, st->states, st->params, st->seed);
  }
  return sys.spawn(sampler_behavior, std::move(st));
}

} // namespace mummi::actors
