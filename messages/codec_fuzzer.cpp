// libFuzzer entry point for the wire decoder: every input must give a value or an error.
//   cmake --preset fuzz && cmake --build --preset fuzz --target codec_fuzzer
//   build/fuzz/messages/codec_fuzzer -max_total_time=60

#include <cstddef>
#include <cstdint>

#include "mummi/messages/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto r = mummi::messages::decode(
    std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  if (r) {
    // Whatever decodes must encode again and decode to the same value.
    auto again = mummi::messages::decode(mummi::messages::encode(*r));
    if (!again || !(*again == *r))
      __builtin_trap();
  }
  return 0;
}
