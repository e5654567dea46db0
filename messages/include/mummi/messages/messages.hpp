#pragma once

/// Plain C++ value types for every message of the workflow.
///
/// Actors in one process exchange these directly as CAF messages (no serialisation); the
/// codec (codec.hpp) turns them into the Cap'n Proto wire format (schema/mummi.capnp) only
/// when a message crosses a process. Field names carry their unit (`_nm`, `_ps`, `_kj_mol`).
/// Each type has an `inspect` overload so that CAF can print and register it.

#include <cstdint>
#include <optional>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace mummi::messages {

/// Wire protocol version; bumped when a change cannot be ignored by an older reader.
inline constexpr std::uint16_t protocol_version = 1;

struct key_value {
  std::string key;
  std::string value;
  friend bool operator==(const key_value&, const key_value&) = default;
};

// --- node membership ------------------------------------------------------------------------

struct node_hello {
  std::string node_id;
  std::string hostname;
  std::uint64_t incarnation = 0; ///< changes every time the process starts
  std::uint32_t pid = 0;
  std::uint32_t cores = 0;
  std::uint32_t gpus = 0;
  std::string version;
  friend bool operator==(const node_hello&, const node_hello&) = default;
};

struct node_welcome {
  std::string head_id;
  std::string campaign;
  std::uint32_t heartbeat_period_ms = 0;
  std::uint64_t incarnation = 0;
  friend bool operator==(const node_welcome&, const node_welcome&) = default;
};

struct node_bye {
  std::string node_id;
  std::string reason;
  friend bool operator==(const node_bye&, const node_bye&) = default;
};

struct heartbeat {
  std::string node_id;
  std::uint64_t incarnation = 0;
  std::uint64_t seq = 0;
  std::int64_t sent_unix_ns = 0;
  friend bool operator==(const heartbeat&, const heartbeat&) = default;
};

/// Echo message used by tests, benchmarks and `mummi` liveness checks.
struct ping {
  std::uint64_t seq = 0;
  std::vector<std::uint8_t> payload;
  friend bool operator==(const ping&, const ping&) = default;
};

// --- structure generator --------------------------------------------------------------------

struct structure_request {
  std::uint64_t request_id = 0;
  std::uint32_t count = 0;
  friend bool operator==(const structure_request&, const structure_request&) = default;
};

struct structure {
  std::uint64_t id = 0;
  std::vector<float> latent;
  float lambda = 0; ///< position between state A (0) and B (1)
  std::string sampler;
  std::vector<float> coords_nm; ///< x, y, z per bead
  double epot_kj_mol = 0;
  double fmax_kj_mol_nm = 0;
  bool valid = false;
  friend bool operator==(const structure&, const structure&) = default;
};

struct structure_batch {
  std::uint64_t request_id = 0;
  std::vector<structure> structures;
  friend bool operator==(const structure_batch&, const structure_batch&) = default;
};

// --- jobs -----------------------------------------------------------------------------------

enum class job_kind : std::uint8_t { createsims, simulation };

struct job_spec {
  std::uint64_t job_id = 0;
  job_kind kind = job_kind::createsims;
  std::uint64_t structure_id = 0;
  std::uint32_t attempt = 0;
  std::uint64_t seed = 0;
  std::uint32_t cores = 0;
  std::uint32_t gpus = 0;
  double target_ns = 0;
  std::string input_dir;
  std::string work_dir;
  std::vector<key_value> params;
  friend bool operator==(const job_spec&, const job_spec&) = default;
};

struct job_accepted {
  std::uint64_t job_id = 0;
  std::string node_id;
  friend bool operator==(const job_accepted&, const job_accepted&) = default;
};

struct job_progress {
  std::uint64_t job_id = 0;
  double ns_done = 0;
  double ns_per_day = 0;
  std::uint64_t frames = 0;
  friend bool operator==(const job_progress&, const job_progress&) = default;
};

enum class job_status : std::uint8_t { succeeded, failed, cancelled };

enum class failure_reason : std::uint8_t {
  none,
  process_crashed,
  blew_up,
  non_finite_energy,
  timeout,
  bad_input,
  node_lost,
  cancelled,
  other,
};

struct job_finished {
  std::uint64_t job_id = 0;
  job_status status = job_status::succeeded;
  failure_reason reason = failure_reason::none;
  std::string message;
  std::string output_dir;
  double ns_done = 0;
  friend bool operator==(const job_finished&, const job_finished&) = default;
};

struct job_cancel {
  std::uint64_t job_id = 0;
  std::string reason;
  friend bool operator==(const job_cancel&, const job_cancel&) = default;
};

// --- analysis and feedback ------------------------------------------------------------------

struct feature {
  std::string name;
  std::vector<double> values;
  friend bool operator==(const feature&, const feature&) = default;
};

struct frame_features {
  std::uint64_t sim_id = 0;
  std::uint64_t structure_id = 0;
  std::uint64_t frame_index = 0;
  double time_ps = 0;
  std::vector<feature> features;
  std::vector<float> latent;
  friend bool operator==(const frame_features&, const frame_features&) = default;
};

enum class feedback_kind : std::uint8_t { validation, createsims, frame };

struct feedback {
  feedback_kind kind = feedback_kind::validation;
  std::uint64_t structure_id = 0;
  std::uint64_t sim_id = 0;
  bool ok = false;
  std::vector<float> latent;
  float lambda = 0;
  std::vector<feature> features;
  friend bool operator==(const feedback&, const feedback&) = default;
};

// --- control and monitoring -----------------------------------------------------------------

enum class control_command : std::uint8_t {
  swap_sampler,
  pause,
  resume,
  drain_node,
  set_limit,
  stop
};

struct control {
  control_command command = control_command::pause;
  std::string target; ///< sampler name, node id or limit key, by command
  std::string value;
  std::vector<key_value> params;
  std::string issuer;
  friend bool operator==(const control&, const control&) = default;
};

struct monitor_subscribe {
  std::vector<std::string> topics;
  std::string client;
  friend bool operator==(const monitor_subscribe&, const monitor_subscribe&) = default;
};

struct monitor_event {
  std::uint64_t seq = 0;
  std::int64_t unix_ns = 0;
  std::string topic;
  std::string kind;
  std::string text;
  std::vector<key_value> fields;
  friend bool operator==(const monitor_event&, const monitor_event&) = default;
};

struct node_status {
  std::string node_id;
  bool alive = false;
  std::uint32_t cores_total = 0;
  std::uint32_t cores_busy = 0;
  std::uint32_t gpus_total = 0;
  std::uint32_t gpus_busy = 0;
  friend bool operator==(const node_status&, const node_status&) = default;
};

struct monitor_snapshot {
  std::int64_t unix_ns = 0;
  std::vector<node_status> nodes;
  std::uint32_t jobs_queued = 0;
  std::uint32_t jobs_running = 0;
  std::uint32_t jobs_done = 0;
  std::uint32_t jobs_failed = 0;
  std::uint32_t structure_buffer = 0;
  std::string sampler;
  double ns_simulated = 0;
  double ns_per_day = 0;
  std::vector<std::string> recent_errors;
  friend bool operator==(const monitor_snapshot&, const monitor_snapshot&) = default;
};

enum class error_code : std::uint8_t {
  unknown_target,
  timeout,
  bad_message,
  rejected,
  internal,
  unauthorized,
  peer_down,
};

/// Human-readable name of an error code ("unknown_target", ...).
const char* to_string(error_code code) noexcept;

struct error_reply {
  error_code code = error_code::internal;
  std::string message;
  friend bool operator==(const error_reply&, const error_reply&) = default;
};

struct ack {
  std::string text;
  friend bool operator==(const ack&, const ack&) = default;
};

/// Any message body. The order here is the wire union's order minus `none`; append only.
using body = std::variant<node_hello, node_welcome, node_bye, heartbeat, structure_request,
                          structure_batch, job_spec, job_accepted, job_progress, job_finished,
                          job_cancel, frame_features, feedback, control, monitor_subscribe,
                          monitor_event, monitor_snapshot, error_reply, ack, ping>;

/// Name of the body's type as it appears in logs and errors ("structure_batch", ...).
const char* type_name(const body& b) noexcept;

/// A monitor event's fields as a key -> value map (a later duplicate key wins).
std::map<std::string, std::string> fields_of(const monitor_event& e);

// --- envelope -------------------------------------------------------------------------------

/// Where a message goes: a node of the campaign and an actor name registered there.
struct address {
  std::string node;
  std::string actor;
  friend bool operator==(const address&, const address&) = default;
};

enum class envelope_kind : std::uint8_t {
  oneway,
  request,
  response,
  publish,
  subscribe,
  unsubscribe
};

/// One message on the wire: routing header plus body (empty for subscribe/unsubscribe).
struct envelope {
  std::uint16_t version = protocol_version;
  envelope_kind kind = envelope_kind::oneway;
  std::uint64_t correlation_id = 0;
  address from;
  address to;
  std::string topic;
  std::optional<body> payload; ///< empty for subscribe / unsubscribe
  friend bool operator==(const envelope&, const envelope&) = default;
};

// --- CAF inspection -------------------------------------------------------------------------

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, key_value& x) {
  return f(x.key, x.value);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_hello& x) {
  return f(x.node_id, x.hostname, x.incarnation, x.pid, x.cores, x.gpus, x.version);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_welcome& x) {
  return f(x.head_id, x.campaign, x.heartbeat_period_ms, x.incarnation);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_bye& x) {
  return f(x.node_id, x.reason);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, heartbeat& x) {
  return f(x.node_id, x.incarnation, x.seq, x.sent_unix_ns);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, ping& x) {
  return f(x.seq, x.payload);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, structure_request& x) {
  return f(x.request_id, x.count);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, structure& x) {
  return f(x.id, x.latent, x.lambda, x.sampler, x.coords_nm, x.epot_kj_mol, x.fmax_kj_mol_nm,
           x.valid);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, structure_batch& x) {
  return f(x.request_id, x.structures);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_spec& x) {
  return f(x.job_id, x.kind, x.structure_id, x.attempt, x.seed, x.cores, x.gpus, x.target_ns,
           x.input_dir, x.work_dir, x.params);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_accepted& x) {
  return f(x.job_id, x.node_id);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_progress& x) {
  return f(x.job_id, x.ns_done, x.ns_per_day, x.frames);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_finished& x) {
  return f(x.job_id, x.status, x.reason, x.message, x.output_dir, x.ns_done);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_cancel& x) {
  return f(x.job_id, x.reason);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, feature& x) {
  return f(x.name, x.values);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, frame_features& x) {
  return f(x.sim_id, x.structure_id, x.frame_index, x.time_ps, x.features, x.latent);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, feedback& x) {
  return f(x.kind, x.structure_id, x.sim_id, x.ok, x.latent, x.lambda, x.features);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, control& x) {
  return f(x.command, x.target, x.value, x.params, x.issuer);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, monitor_subscribe& x) {
  return f(x.topics, x.client);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, monitor_event& x) {
  return f(x.seq, x.unix_ns, x.topic, x.kind, x.text, x.fields);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(x.node_id, x.alive, x.cores_total, x.cores_busy, x.gpus_total, x.gpus_busy);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, monitor_snapshot& x) {
  return f(x.unix_ns, x.nodes, x.jobs_queued, x.jobs_running, x.jobs_done, x.jobs_failed,
           x.structure_buffer, x.sampler, x.ns_simulated, x.ns_per_day, x.recent_errors);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, error_reply& x) {
  return f(x.code, x.message);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, ack& x) {
  return f(x.text);
}
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, address& x) {
  return f(x.node, x.actor);
}

} // namespace mummi::messages
