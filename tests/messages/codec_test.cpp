#include "mummi/messages/codec.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "../support/sample_messages.hpp"

namespace msg = mummi::messages;

namespace {

msg::envelope wrap(msg::body b) {
  msg::envelope e;
  e.kind = msg::envelope_kind::request;
  e.correlation_id = 123456789;
  e.from = {"head", "workflow_manager"};
  e.to = {"node-0001", "structure_generator"};
  e.payload = std::move(b);
  return e;
}

std::span<const std::byte> view(const std::vector<std::byte>& v) {
  return {v.data(), v.size()};
}

} // namespace

TEST(codec, every_message_type_round_trips) {
  auto bodies = mummi::test::sample_bodies();
  ASSERT_EQ(bodies.size(), std::variant_size_v<msg::body>);
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    ASSERT_EQ(bodies[i].index(), i) << "sample_bodies() must follow the variant's order";
    auto e = wrap(bodies[i]);
    auto bytes = msg::encode(e);
    auto back = msg::decode(view(bytes));
    ASSERT_TRUE(back) << msg::type_name(bodies[i]) << ": " << msg::to_string(back.error());
    EXPECT_EQ(*back, e) << msg::type_name(bodies[i]);
  }
}

TEST(codec, bodyless_envelopes_round_trip) {
  msg::envelope e;
  e.kind = msg::envelope_kind::subscribe;
  e.topic = "jobs";
  e.from = {"monitor-1", ""};
  e.to = {"head", "gateway"};
  auto back = msg::decode(view(msg::encode(e)));
  ASSERT_TRUE(back) << msg::to_string(back.error());
  EXPECT_EQ(*back, e);
}

TEST(codec, structure_batch_of_ten_is_about_92_kilobytes) {
  auto bytes = msg::encode(wrap(mummi::test::sample_batch(10)));
  // 10 x 763 x 3 float32 = 91,560 bytes of coordinates plus latent points and headers.
  EXPECT_GT(bytes.size(), 91560u);
  EXPECT_LT(bytes.size(), 95000u);
}

TEST(codec, unaligned_buffers_decode) {
  auto bytes = msg::encode(wrap(mummi::test::sample_batch(1, 10)));
  std::vector<std::byte> shifted(bytes.size() + 1);
  std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
  auto back = msg::decode(std::span<const std::byte>(shifted.data() + 1, bytes.size()));
  ASSERT_TRUE(back) << msg::to_string(back.error());
  EXPECT_EQ(*back, wrap(mummi::test::sample_batch(1, 10)));
}

TEST(codec, oversized_message_is_rejected) {
  auto bytes = msg::encode(wrap(mummi::test::sample_batch(10)));
  auto r = msg::decode(view(bytes), msg::decode_limits{1024, 16});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, msg::wire_error::kind::too_large);
}

TEST(codec, other_protocol_version_is_rejected) {
  auto e = wrap(msg::ack{"x"});
  e.version = msg::protocol_version + 1;
  auto r = msg::decode(view(msg::encode(e)));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, msg::wire_error::kind::bad_version);
  EXPECT_NE(msg::to_string(r.error()).find("protocol version"), std::string::npos);
}

TEST(codec, non_finite_coordinates_are_rejected_with_the_field_named) {
  auto b = mummi::test::sample_batch(1, 4);
  b.structures[0].coords_nm[5] = std::numeric_limits<float>::quiet_NaN();
  auto r = msg::decode(view(msg::encode(wrap(b))));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, msg::wire_error::kind::bad_field);
  EXPECT_NE(r.error().detail.find("coordsNm"), std::string::npos) << r.error().detail;
}

TEST(codec, coordinates_must_come_in_triples) {
  auto b = mummi::test::sample_batch(1, 4);
  b.structures[0].coords_nm.pop_back();
  auto r = msg::decode(view(msg::encode(wrap(b))));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("multiple of 3"), std::string::npos) << r.error().detail;
}

TEST(codec, request_without_body_is_rejected) {
  msg::envelope e = wrap(msg::ack{});
  e.payload.reset();
  auto r = msg::decode(view(msg::encode(e)));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("body"), std::string::npos);
}

TEST(codec, unknown_enumerant_is_rejected) {
  auto e = wrap(msg::job_cancel{1, "x"});
  auto bytes = msg::encode(e);
  // The envelope's `kind` enum is the second UInt16 of the root struct's data section, which
  // starts right after the 8-byte segment table and the 8-byte root pointer.
  bytes[16 + 2] = std::byte{0x7f};
  auto r = msg::decode(view(bytes));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("kind"), std::string::npos) << r.error().detail;
}

TEST(codec, truncated_and_empty_buffers_are_errors) {
  auto bytes = msg::encode(wrap(mummi::test::sample_batch(2, 10)));
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{8}, std::size_t{16},
                        bytes.size() / 2, bytes.size() - 8}) {
    auto r = msg::decode(std::span<const std::byte>(bytes.data(), n));
    EXPECT_FALSE(r) << n << " bytes";
  }
}

// 100,000 mutated and random buffers: every one yields a value or an error, never a crash.
// The asan build of this test (codec_fuzz_asan) runs the same under AddressSanitizer.
TEST(codec, mutated_and_random_buffers_never_crash) {
  std::mt19937_64 rng{20261127};
  std::vector<std::vector<std::byte>> seeds;
  for (const auto& b : mummi::test::sample_bodies())
    seeds.push_back(msg::encode(wrap(b)));
  std::size_t errors = 0;
  std::size_t values = 0;
  std::size_t unstable = 0;
  std::vector<std::byte> buf;
  for (int iter = 0; iter < 100000; ++iter) {
    if (iter % 10 == 0) { // purely random bytes, random length
      buf.resize(rng() % 512);
      for (auto& x : buf)
        x = static_cast<std::byte>(rng());
    } else { // a valid message with a few bytes flipped, or cut, or grown
      buf = seeds[rng() % seeds.size()];
      int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f)
        buf[rng() % buf.size()] = static_cast<std::byte>(rng());
      if (rng() % 4 == 0)
        buf.resize(rng() % (buf.size() + 64));
    }
    auto r = msg::decode(view(buf));
    if (r) {
      ++values;
      // Whatever is accepted must survive encoding again unchanged.
      auto again = msg::decode(view(msg::encode(*r)));
      if (!again || !(*again == *r))
        ++unstable;
    } else {
      ++errors;
    }
  }
  EXPECT_EQ(values + errors, 100000u);
  EXPECT_EQ(unstable, 0u);
  EXPECT_GT(errors, 10000u); // random bytes and most mutations must be refused
}

TEST(codec, infinite_values_are_rejected_in_every_float_list) {
  auto inf = std::numeric_limits<double>::infinity();
  msg::frame_features f{1, 2, 3, 4.0, {{"tilt_deg", {1.0, -inf}}}, {0.5f}};
  auto r = msg::decode(view(msg::encode(wrap(f))));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("features"), std::string::npos) << r.error().detail;
  f.features[0].values[1] = 2.0;
  f.latent[0] = std::numeric_limits<float>::infinity();
  r = msg::decode(view(msg::encode(wrap(f))));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("latent"), std::string::npos) << r.error().detail;
  f.latent[0] = -0.0f; // signed zero and denormals are fine
  f.features[0].values[0] = 4.9e-324;
  EXPECT_TRUE(msg::decode(view(msg::encode(wrap(f)))));
}
