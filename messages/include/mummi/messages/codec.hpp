#pragma once

/// Conversion between envelopes (messages.hpp) and the Cap'n Proto wire format.
///
/// Encoding never fails for a well-formed envelope. Decoding treats its input as hostile: it
/// accepts unaligned buffers, enforces size and nesting limits, checks the protocol version,
/// every enum and every physical quantity, and turns every decoder failure into a
/// `wire_error` value. It never throws and never crashes. All functions are thread-safe.

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "mummi/messages/expected.hpp"
#include "mummi/messages/messages.hpp"

namespace mummi::messages {

/// Why a buffer was rejected.
struct wire_error {
  enum class kind : std::uint8_t { too_large, malformed, bad_version, bad_field };
  kind what = kind::malformed;
  std::string detail; ///< names the field or the decoder's complaint
};

/// Bounds on what `decode` accepts.
struct decode_limits {
  std::size_t max_bytes = std::size_t{64} << 20; ///< whole message, 64 MiB
  unsigned max_nesting = 16;                     ///< pointer depth
};

using decode_result = expected<envelope, wire_error>;

/// Serialises `e` into `out` (replacing its contents); reuse `out` to avoid allocations.
void encode(const envelope& e, std::vector<std::byte>& out);

/// Serialises `e` into a new buffer.
std::vector<std::byte> encode(const envelope& e);

/// Parses one message; any alignment is fine.
decode_result decode(std::span<const std::byte> bytes, const decode_limits& limits = {});

/// "too_large: ...", "bad_field: structures[3].coordsNm: ...".
std::string to_string(const wire_error& e);

} // namespace mummi::messages
