#include "mummi/messages/codec.hpp"

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>

#include "mummi.capnp.h"

namespace mummi::messages {

namespace w = mummi::wire;

static_assert(w::PROTOCOL_VERSION == protocol_version,
              "schema/mummi.capnp and messages.hpp disagree on the protocol version");

namespace {

// --- encoding ---------------------------------------------------------------------------------

/// Text with its exact length (a std::string may hold NUL bytes; c_str() would cut them).
capnp::Text::Reader txt(const std::string& s) {
  return {s.data(), s.size()};
}

void put(w::Address::Builder b, const address& a) {
  b.setNode(txt(a.node));
  b.setActor(txt(a.actor));
}

void put_kvs(capnp::List<w::KeyValue>::Builder l, const std::vector<key_value>& kvs) {
  for (unsigned i = 0; i < kvs.size(); ++i) {
    l[i].setKey(txt(kvs[i].key));
    l[i].setValue(txt(kvs[i].value));
  }
}

template<class T, class Builder>
void put_list(Builder l, const std::vector<T>& v) {
  if constexpr (std::endian::native == std::endian::little) {
    // Cap'n Proto stores primitive lists as little-endian arrays: copy them in one go.
    auto raw = capnp::AnyList::Builder(Builder(l)).asReader().getRawBytes();
    if (raw.size() == v.size() * sizeof(T)) {
      std::memcpy(const_cast<kj::byte*>(raw.begin()), v.data(), raw.size());
      return;
    }
  }
  for (unsigned i = 0; i < v.size(); ++i)
    l.set(i, v[i]);
}

void put_features(capnp::List<w::Feature>::Builder l, const std::vector<feature>& fs) {
  for (unsigned i = 0; i < fs.size(); ++i) {
    l[i].setName(txt(fs[i].name));
    put_list(l[i].initValues(fs[i].values.size()), fs[i].values);
  }
}

template<class To, class From>
To enum_cast(From x) {
  return static_cast<To>(static_cast<std::underlying_type_t<From>>(x));
}

struct body_writer {
  w::Envelope::Body::Builder b;

  void operator()(const node_hello& m) {
    auto x = b.initNodeHello();
    x.setNodeId(txt(m.node_id));
    x.setHostname(txt(m.hostname));
    x.setIncarnation(m.incarnation);
    x.setPid(m.pid);
    x.setCores(m.cores);
    x.setGpus(m.gpus);
    x.setVersion(txt(m.version));
  }
  void operator()(const node_welcome& m) {
    auto x = b.initNodeWelcome();
    x.setHeadId(txt(m.head_id));
    x.setCampaign(txt(m.campaign));
    x.setHeartbeatPeriodMs(m.heartbeat_period_ms);
    x.setIncarnation(m.incarnation);
  }
  void operator()(const node_bye& m) {
    auto x = b.initNodeBye();
    x.setNodeId(txt(m.node_id));
    x.setReason(txt(m.reason));
  }
  void operator()(const heartbeat& m) {
    auto x = b.initHeartbeat();
    x.setNodeId(txt(m.node_id));
    x.setIncarnation(m.incarnation);
    x.setSeq(m.seq);
    x.setSentUnixNs(m.sent_unix_ns);
  }
  void operator()(const ping& m) {
    auto x = b.initPing();
    x.setSeq(m.seq);
    x.setPayload(kj::arrayPtr(m.payload.data(), m.payload.size()));
  }
  void operator()(const structure_request& m) {
    auto x = b.initStructureRequest();
    x.setRequestId(m.request_id);
    x.setCount(m.count);
  }
  void operator()(const structure_batch& m) {
    auto x = b.initStructureBatch();
    x.setRequestId(m.request_id);
    auto l = x.initStructures(m.structures.size());
    for (unsigned i = 0; i < m.structures.size(); ++i) {
      const auto& s = m.structures[i];
      auto y = l[i];
      y.setId(s.id);
      put_list(y.initLatent(s.latent.size()), s.latent);
      y.setLambda(s.lambda);
      y.setSampler(txt(s.sampler));
      put_list(y.initCoordsNm(s.coords_nm.size()), s.coords_nm);
      y.setEpotKjMol(s.epot_kj_mol);
      y.setFmaxKjMolNm(s.fmax_kj_mol_nm);
      y.setValid(s.valid);
    }
  }
  void operator()(const job_spec& m) {
    auto x = b.initJobSpec();
    x.setJobId(m.job_id);
    x.setKind(enum_cast<w::JobKind>(m.kind));
    x.setStructureId(m.structure_id);
    x.setAttempt(m.attempt);
    x.setSeed(m.seed);
    x.setCores(m.cores);
    x.setGpus(m.gpus);
    x.setTargetNs(m.target_ns);
    x.setInputDir(txt(m.input_dir));
    x.setWorkDir(txt(m.work_dir));
    put_kvs(x.initParams(m.params.size()), m.params);
  }
  void operator()(const job_accepted& m) {
    auto x = b.initJobAccepted();
    x.setJobId(m.job_id);
    x.setNodeId(txt(m.node_id));
  }
  void operator()(const job_progress& m) {
    auto x = b.initJobProgress();
    x.setJobId(m.job_id);
    x.setNsDone(m.ns_done);
    x.setNsPerDay(m.ns_per_day);
    x.setFrames(m.frames);
  }
  void operator()(const job_finished& m) {
    auto x = b.initJobFinished();
    x.setJobId(m.job_id);
    x.setStatus(enum_cast<w::JobStatus>(m.status));
    x.setReason(enum_cast<w::FailureReason>(m.reason));
    x.setMessage(txt(m.message));
    x.setOutputDir(txt(m.output_dir));
    x.setNsDone(m.ns_done);
  }
  void operator()(const job_cancel& m) {
    auto x = b.initJobCancel();
    x.setJobId(m.job_id);
    x.setReason(txt(m.reason));
  }
  void operator()(const frame_features& m) {
    auto x = b.initFrameFeatures();
    x.setSimId(m.sim_id);
    x.setStructureId(m.structure_id);
    x.setFrameIndex(m.frame_index);
    x.setTimePs(m.time_ps);
    put_features(x.initFeatures(m.features.size()), m.features);
    put_list(x.initLatent(m.latent.size()), m.latent);
  }
  void operator()(const feedback& m) {
    auto x = b.initFeedback();
    x.setKind(enum_cast<w::FeedbackKind>(m.kind));
    x.setStructureId(m.structure_id);
    x.setSimId(m.sim_id);
    x.setOk(m.ok);
    put_list(x.initLatent(m.latent.size()), m.latent);
    x.setLambda(m.lambda);
    put_features(x.initFeatures(m.features.size()), m.features);
  }
  void operator()(const control& m) {
    auto x = b.initControl();
    x.setCommand(enum_cast<w::ControlCommand>(m.command));
    x.setTarget(txt(m.target));
    x.setValue(txt(m.value));
    put_kvs(x.initParams(m.params.size()), m.params);
    x.setIssuer(txt(m.issuer));
  }
  void operator()(const monitor_subscribe& m) {
    auto x = b.initMonitorSubscribe();
    auto l = x.initTopics(m.topics.size());
    for (unsigned i = 0; i < m.topics.size(); ++i)
      l.set(i, txt(m.topics[i]));
    x.setClient(txt(m.client));
  }
  void operator()(const monitor_event& m) {
    auto x = b.initMonitorEvent();
    x.setSeq(m.seq);
    x.setUnixNs(m.unix_ns);
    x.setTopic(txt(m.topic));
    x.setKind(txt(m.kind));
    x.setText(txt(m.text));
    put_kvs(x.initFields(m.fields.size()), m.fields);
  }
  void operator()(const monitor_snapshot& m) {
    auto x = b.initMonitorSnapshot();
    x.setUnixNs(m.unix_ns);
    auto l = x.initNodes(m.nodes.size());
    for (unsigned i = 0; i < m.nodes.size(); ++i) {
      const auto& n = m.nodes[i];
      l[i].setNodeId(txt(n.node_id));
      l[i].setAlive(n.alive);
      l[i].setCoresTotal(n.cores_total);
      l[i].setCoresBusy(n.cores_busy);
      l[i].setGpusTotal(n.gpus_total);
      l[i].setGpusBusy(n.gpus_busy);
    }
    x.setJobsQueued(m.jobs_queued);
    x.setJobsRunning(m.jobs_running);
    x.setJobsDone(m.jobs_done);
    x.setJobsFailed(m.jobs_failed);
    x.setStructureBuffer(m.structure_buffer);
    x.setSampler(txt(m.sampler));
    x.setNsSimulated(m.ns_simulated);
    x.setNsPerDay(m.ns_per_day);
    auto errs = x.initRecentErrors(m.recent_errors.size());
    for (unsigned i = 0; i < m.recent_errors.size(); ++i)
      errs.set(i, txt(m.recent_errors[i]));
  }
  void operator()(const error_reply& m) {
    auto x = b.initErrorReply();
    x.setCode(enum_cast<w::ErrorCode>(m.code));
    x.setMessage(txt(m.message));
  }
  void operator()(const ack& m) {
    b.initAck().setText(txt(m.text));
  }
};

/// Appends everything written to it to a byte vector.
class vector_output final : public kj::OutputStream {
public:
  explicit vector_output(std::vector<std::byte>& out) : out_(out) {}
  void write(const void* buffer, size_t size) override {
    const auto* p = static_cast<const std::byte*>(buffer);
    out_.insert(out_.end(), p, p + size);
  }

private:
  std::vector<std::byte>& out_;
};

// --- decoding ---------------------------------------------------------------------------------

/// Thrown inside the decoder only; `decode` turns it into a wire_error.
struct field_problem {
  wire_error::kind what;
  std::string detail;
};

[[noreturn]] void bad_field(std::string path, const char* what) {
  throw field_problem{wire_error::kind::bad_field, std::move(path) + ": " + what};
}

std::string str(capnp::Text::Reader t) {
  return {t.begin(), t.size()};
}

template<class Out, class E>
Out checked_enum(E value, E last, const char* path) {
  auto raw = static_cast<std::uint16_t>(value);
  if (raw > static_cast<std::uint16_t>(last))
    bad_field(path, "unknown enumerant");
  return static_cast<Out>(raw);
}

template<class T>
std::vector<T> get_list(typename capnp::List<T>::Reader l) {
  std::vector<T> v(l.size());
  if constexpr (std::endian::native == std::endian::little) {
    auto raw = capnp::AnyList::Reader(l).getRawBytes();
    if (raw.size() == v.size() * sizeof(T)) {
      std::memcpy(v.data(), raw.begin(), raw.size());
      return v;
    }
  }
  for (unsigned i = 0; i < l.size(); ++i)
    v[i] = l[i];
  return v;
}

/// True when no value is NaN or infinite: the exponent bits of a non-finite value are all set,
/// so adding one to the exponent field carries into the sign bit. Written without branches so
/// that it vectorises (codec.cpp is built with the vectoriser on; see CMakeLists.txt).
template<class T>
bool all_finite(const std::vector<T>& v) {
  using bits_t = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr int mantissa = sizeof(T) == 4 ? 23 : 52;
  constexpr auto exponent
    = static_cast<bits_t>(sizeof(T) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
  constexpr auto sign = static_cast<bits_t>(bits_t{1} << (sizeof(T) * 8 - 1));
  bits_t bad = 0;
  const T* p = v.data();
  for (std::size_t i = 0; i < v.size(); ++i) {
    bits_t b;
    std::memcpy(&b, p + i, sizeof b);
    bad |= ((b & exponent) + (bits_t{1} << mantissa)) & sign;
  }
  return bad == 0;
}

template<class T>
std::vector<T> finite_list(typename capnp::List<T>::Reader l, const std::string& path) {
  auto v = get_list<T>(l);
  if (!all_finite(v))
    bad_field(path, "value is not finite");
  return v;
}

template<class T>
T finite(T x, const char* path) {
  if (!std::isfinite(x))
    bad_field(path, "value is not finite");
  return x;
}

std::vector<key_value> get_kvs(capnp::List<w::KeyValue>::Reader l) {
  std::vector<key_value> v;
  v.reserve(l.size());
  for (auto kv : l)
    v.push_back({str(kv.getKey()), str(kv.getValue())});
  return v;
}

std::vector<feature> get_features(capnp::List<w::Feature>::Reader l, const char* path) {
  std::vector<feature> v;
  v.reserve(l.size());
  for (auto f : l) {
    feature out;
    out.name = str(f.getName());
    out.values = finite_list<double>(f.getValues(), path);
    v.push_back(std::move(out));
  }
  return v;
}

address get_address(w::Address::Reader r) {
  return {str(r.getNode()), str(r.getActor())};
}

body read_body(w::Envelope::Body::Reader b) {
  using B = w::Envelope::Body;
  switch (b.which()) {
    case B::NONE: break; // handled by the caller
    case B::NODE_HELLO: {
      auto x = b.getNodeHello();
      return node_hello{str(x.getNodeId()), str(x.getHostname()), x.getIncarnation(), x.getPid(),
                        x.getCores(),       x.getGpus(),          str(x.getVersion())};
    }
    case B::NODE_WELCOME: {
      auto x = b.getNodeWelcome();
      return node_welcome{str(x.getHeadId()), str(x.getCampaign()), x.getHeartbeatPeriodMs(),
                          x.getIncarnation()};
    }
    case B::NODE_BYE: {
      auto x = b.getNodeBye();
      return node_bye{str(x.getNodeId()), str(x.getReason())};
    }
    case B::HEARTBEAT: {
      auto x = b.getHeartbeat();
      return heartbeat{str(x.getNodeId()), x.getIncarnation(), x.getSeq(), x.getSentUnixNs()};
    }
    case B::PING: {
      auto x = b.getPing();
      auto d = x.getPayload();
      return ping{x.getSeq(), std::vector<std::uint8_t>(d.begin(), d.end())};
    }
    case B::STRUCTURE_REQUEST: {
      auto x = b.getStructureRequest();
      return structure_request{x.getRequestId(), x.getCount()};
    }
    case B::STRUCTURE_BATCH: {
      auto x = b.getStructureBatch();
      structure_batch out;
      out.request_id = x.getRequestId();
      out.structures.reserve(x.getStructures().size());
      for (auto s : x.getStructures()) {
        structure y;
        y.id = s.getId();
        y.latent = finite_list<float>(s.getLatent(), "structureBatch.structures.latent");
        y.lambda = finite(s.getLambda(), "structureBatch.structures.lambda");
        if (y.lambda < 0.0f || y.lambda > 1.0f)
          bad_field("structureBatch.structures.lambda", "outside [0, 1]");
        y.sampler = str(s.getSampler());
        y.coords_nm = finite_list<float>(s.getCoordsNm(), "structureBatch.structures.coordsNm");
        if (y.coords_nm.size() % 3 != 0)
          bad_field("structureBatch.structures.coordsNm", "length is not a multiple of 3");
        y.epot_kj_mol = s.getEpotKjMol();
        y.fmax_kj_mol_nm = s.getFmaxKjMolNm();
        y.valid = s.getValid();
        out.structures.push_back(std::move(y));
      }
      return out;
    }
    case B::JOB_SPEC: {
      auto x = b.getJobSpec();
      job_spec out;
      out.job_id = x.getJobId();
      out.kind = checked_enum<job_kind>(x.getKind(), w::JobKind::SIMULATION, "jobSpec.kind");
      out.structure_id = x.getStructureId();
      out.attempt = x.getAttempt();
      out.seed = x.getSeed();
      out.cores = x.getCores();
      out.gpus = x.getGpus();
      out.target_ns = finite(x.getTargetNs(), "jobSpec.targetNs");
      if (out.target_ns < 0)
        bad_field("jobSpec.targetNs", "negative");
      out.input_dir = str(x.getInputDir());
      out.work_dir = str(x.getWorkDir());
      out.params = get_kvs(x.getParams());
      return out;
    }
    case B::JOB_ACCEPTED: {
      auto x = b.getJobAccepted();
      return job_accepted{x.getJobId(), str(x.getNodeId())};
    }
    case B::JOB_PROGRESS: {
      auto x = b.getJobProgress();
      return job_progress{x.getJobId(), finite(x.getNsDone(), "jobProgress.nsDone"),
                          finite(x.getNsPerDay(), "jobProgress.nsPerDay"), x.getFrames()};
    }
    case B::JOB_FINISHED: {
      auto x = b.getJobFinished();
      job_finished out;
      out.job_id = x.getJobId();
      out.status
        = checked_enum<job_status>(x.getStatus(), w::JobStatus::CANCELLED, "jobFinished.status");
      out.reason = checked_enum<failure_reason>(x.getReason(), w::FailureReason::OTHER,
                                                "jobFinished.reason");
      out.message = str(x.getMessage());
      out.output_dir = str(x.getOutputDir());
      out.ns_done = finite(x.getNsDone(), "jobFinished.nsDone");
      return out;
    }
    case B::JOB_CANCEL: {
      auto x = b.getJobCancel();
      return job_cancel{x.getJobId(), str(x.getReason())};
    }
    case B::FRAME_FEATURES: {
      auto x = b.getFrameFeatures();
      frame_features out;
      out.sim_id = x.getSimId();
      out.structure_id = x.getStructureId();
      out.frame_index = x.getFrameIndex();
      out.time_ps = finite(x.getTimePs(), "frameFeatures.timePs");
      out.features = get_features(x.getFeatures(), "features.values");
      out.latent = finite_list<float>(x.getLatent(), "frameFeatures.latent");
      return out;
    }
    case B::FEEDBACK: {
      auto x = b.getFeedback();
      feedback out;
      out.kind = checked_enum<feedback_kind>(x.getKind(), w::FeedbackKind::FRAME, "feedback.kind");
      out.structure_id = x.getStructureId();
      out.sim_id = x.getSimId();
      out.ok = x.getOk();
      out.latent = finite_list<float>(x.getLatent(), "feedback.latent");
      out.lambda = finite(x.getLambda(), "feedback.lambda");
      out.features = get_features(x.getFeatures(), "features.values");
      return out;
    }
    case B::CONTROL: {
      auto x = b.getControl();
      control out;
      out.command
        = checked_enum<control_command>(x.getCommand(), w::ControlCommand::STOP, "control.command");
      out.target = str(x.getTarget());
      out.value = str(x.getValue());
      out.params = get_kvs(x.getParams());
      out.issuer = str(x.getIssuer());
      return out;
    }
    case B::MONITOR_SUBSCRIBE: {
      auto x = b.getMonitorSubscribe();
      monitor_subscribe out;
      for (auto t : x.getTopics())
        out.topics.push_back(str(t));
      out.client = str(x.getClient());
      return out;
    }
    case B::MONITOR_EVENT: {
      auto x = b.getMonitorEvent();
      return monitor_event{x.getSeq(),       x.getUnixNs(),    str(x.getTopic()),
                           str(x.getKind()), str(x.getText()), get_kvs(x.getFields())};
    }
    case B::MONITOR_SNAPSHOT: {
      auto x = b.getMonitorSnapshot();
      monitor_snapshot out;
      out.unix_ns = x.getUnixNs();
      for (auto n : x.getNodes())
        out.nodes.push_back({str(n.getNodeId()), n.getAlive(), n.getCoresTotal(), n.getCoresBusy(),
                             n.getGpusTotal(), n.getGpusBusy()});
      out.jobs_queued = x.getJobsQueued();
      out.jobs_running = x.getJobsRunning();
      out.jobs_done = x.getJobsDone();
      out.jobs_failed = x.getJobsFailed();
      out.structure_buffer = x.getStructureBuffer();
      out.sampler = str(x.getSampler());
      out.ns_simulated = finite(x.getNsSimulated(), "monitorSnapshot.nsSimulated");
      out.ns_per_day = finite(x.getNsPerDay(), "monitorSnapshot.nsPerDay");
      for (auto e : x.getRecentErrors())
        out.recent_errors.push_back(str(e));
      return out;
    }
    case B::ERROR_REPLY: {
      auto x = b.getErrorReply();
      return error_reply{
        checked_enum<error_code>(x.getCode(), w::ErrorCode::PEER_DOWN, "errorReply.code"),
        str(x.getMessage())};
    }
    case B::ACK: return ack{str(b.getAck().getText())};
  }
  throw field_problem{wire_error::kind::bad_field,
                      "body: unknown message type " + std::to_string(static_cast<int>(b.which()))};
}

envelope read_envelope(w::Envelope::Reader r) {
  envelope e;
  e.version = r.getVersion();
  if (e.version != protocol_version)
    throw field_problem{wire_error::kind::bad_version,
                        "protocol version " + std::to_string(e.version) + ", this build speaks "
                          + std::to_string(protocol_version)};
  e.kind = checked_enum<envelope_kind>(r.getKind(), w::EnvelopeKind::UNSUBSCRIBE, "kind");
  e.correlation_id = r.getCorrelationId();
  e.from = get_address(r.getFrom());
  e.to = get_address(r.getTo());
  e.topic = str(r.getTopic());
  bool bodyless = e.kind == envelope_kind::subscribe || e.kind == envelope_kind::unsubscribe;
  if (r.getBody().which() == w::Envelope::Body::NONE) {
    if (!bodyless)
      bad_field("body", "missing");
  } else {
    if (bodyless)
      bad_field("body", "subscribe/unsubscribe carry no body");
    e.payload = read_body(r.getBody());
  }
  return e;
}

} // namespace

namespace {

/// Words the message will take, roughly, so that it is built in one segment: large batches
/// otherwise grow through several allocations.
unsigned size_hint_words(const envelope& e) {
  std::size_t bytes = 512 + e.topic.size() + e.from.node.size() + e.to.node.size();
  if (e.payload) {
    if (const auto* b = std::get_if<structure_batch>(&*e.payload))
      for (const auto& s : b->structures)
        bytes += 128 + s.sampler.size() + 4 * (s.coords_nm.size() + s.latent.size());
    else if (const auto* p = std::get_if<ping>(&*e.payload))
      bytes += p->payload.size();
  }
  return static_cast<unsigned>(std::max<std::size_t>(bytes / sizeof(capnp::word) + 8, 128));
}

} // namespace

void encode(const envelope& e, std::vector<std::byte>& out) {
  capnp::MallocMessageBuilder mb(size_hint_words(e));
  auto r = mb.initRoot<w::Envelope>();
  r.setVersion(e.version);
  r.setKind(enum_cast<w::EnvelopeKind>(e.kind));
  r.setCorrelationId(e.correlation_id);
  put(r.initFrom(), e.from);
  put(r.initTo(), e.to);
  r.setTopic(txt(e.topic));
  if (e.payload)
    std::visit(body_writer{r.getBody()}, *e.payload);
  else
    r.getBody().setNone();
  out.clear();
  out.reserve(capnp::computeSerializedSizeInWords(mb) * sizeof(capnp::word));
  vector_output os{out};
  capnp::writeMessage(os, mb);
}

std::vector<std::byte> encode(const envelope& e) {
  std::vector<std::byte> out;
  encode(e, out);
  return out;
}

decode_result decode(std::span<const std::byte> bytes, const decode_limits& limits) {
  using kind = wire_error::kind;
  if (bytes.size() > limits.max_bytes)
    return unexpected{wire_error{kind::too_large,
                                 std::to_string(bytes.size()) + " bytes, limit "
                                   + std::to_string(limits.max_bytes)}};
  if (bytes.size() < sizeof(capnp::word) || bytes.size() % sizeof(capnp::word) != 0)
    return unexpected{wire_error{
      kind::malformed, std::to_string(bytes.size()) + " bytes is not a whole number of words"}};
  // Cap'n Proto reads words in place: copy buffers that are not 8-byte aligned.
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
    words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data()),
                         bytes.size() / sizeof(capnp::word));
  } else {
    copy = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(copy.begin(), bytes.data(), bytes.size());
    words = copy;
  }
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = limits.max_bytes / sizeof(capnp::word);
  opts.nestingLimit = static_cast<int>(limits.max_nesting);
  try {
    capnp::FlatArrayMessageReader reader(words, opts);
    if (reader.getEnd() != words.end())
      return unexpected{wire_error{kind::malformed, "trailing bytes after the message"}};
    return read_envelope(reader.getRoot<w::Envelope>());
  } catch (const field_problem& p) {
    return unexpected{wire_error{p.what, p.detail}};
  } catch (const kj::Exception& ex) {
    return unexpected{wire_error{kind::malformed, ex.getDescription().cStr()}};
  } catch (const std::exception& ex) {
    return unexpected{wire_error{kind::malformed, ex.what()}};
  }
}

std::string to_string(const wire_error& e) {
  const char* k = "malformed";
  switch (e.what) {
    case wire_error::kind::too_large: k = "too_large"; break;
    case wire_error::kind::malformed: k = "malformed"; break;
    case wire_error::kind::bad_version: k = "bad_version"; break;
    case wire_error::kind::bad_field: k = "bad_field"; break;
  }
  return std::string{k} + ": " + e.detail;
}

} // namespace mummi::messages
