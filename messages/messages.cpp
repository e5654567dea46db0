#include "mummi/messages/messages.hpp"

#include <type_traits>

namespace mummi::messages {

const char* to_string(error_code code) noexcept {
  switch (code) {
    case error_code::unknown_target: return "unknown_target";
    case error_code::timeout: return "timeout";
    case error_code::bad_message: return "bad_message";
    case error_code::rejected: return "rejected";
    case error_code::internal: return "internal";
    case error_code::unauthorized: return "unauthorized";
    case error_code::peer_down: return "peer_down";
  }
  return "unknown";
}

namespace {

template<class T>
constexpr const char* name_of() {
  if constexpr (std::is_same_v<T, node_hello>)
    return "node_hello";
  else if constexpr (std::is_same_v<T, node_welcome>)
    return "node_welcome";
  else if constexpr (std::is_same_v<T, node_bye>)
    return "node_bye";
  else if constexpr (std::is_same_v<T, heartbeat>)
    return "heartbeat";
  else if constexpr (std::is_same_v<T, structure_request>)
    return "structure_request";
  else if constexpr (std::is_same_v<T, structure_batch>)
    return "structure_batch";
  else if constexpr (std::is_same_v<T, job_spec>)
    return "job_spec";
  else if constexpr (std::is_same_v<T, job_accepted>)
    return "job_accepted";
  else if constexpr (std::is_same_v<T, job_progress>)
    return "job_progress";
  else if constexpr (std::is_same_v<T, job_finished>)
    return "job_finished";
  else if constexpr (std::is_same_v<T, job_cancel>)
    return "job_cancel";
  else if constexpr (std::is_same_v<T, frame_features>)
    return "frame_features";
  else if constexpr (std::is_same_v<T, feedback>)
    return "feedback";
  else if constexpr (std::is_same_v<T, control>)
    return "control";
  else if constexpr (std::is_same_v<T, monitor_subscribe>)
    return "monitor_subscribe";
  else if constexpr (std::is_same_v<T, monitor_event>)
    return "monitor_event";
  else if constexpr (std::is_same_v<T, monitor_snapshot>)
    return "monitor_snapshot";
  else if constexpr (std::is_same_v<T, error_reply>)
    return "error_reply";
  else if constexpr (std::is_same_v<T, ack>)
    return "ack";
  else if constexpr (std::is_same_v<T, ping>)
    return "ping";
  else
    static_assert(sizeof(T) == 0, "every body type needs a name");
}

} // namespace

std::map<std::string, std::string> fields_of(const monitor_event& e) {
  std::map<std::string, std::string> out;
  for (const auto& kv : e.fields)
    out[kv.key] = kv.value;
  return out;
}

const char* type_name(const body& b) noexcept {
  return std::visit(
    [](const auto& m) {
      return name_of<std::decay_t<decltype(m)>>();
    },
    b);
}

} // namespace mummi::messages
