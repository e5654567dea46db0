// The model file format: bit-exact round trips, the documented layout read back by hand, every
// error a reader can meet (truncation at every length, every flipped bit, foreign files, bad
// headers, inconsistent tensor tables, trailing bytes), atomic writes, and frames_digest.

#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../support/temp_dir.hpp"
#include "mummi/ml/model_file.hpp"

namespace ml = mummi::ml;
namespace fs = std::filesystem;
using json = nlohmann::json;
using mummi::test::temp_dir;

namespace {


std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

/// FNV-1a-64, written out here so the tests do not trust the code under test.
std::uint64_t reference_fnv1a64(const std::string& bytes) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

template<class T>
std::string le_bytes(T v) {
  std::string s(sizeof v, '\0');
  for (std::size_t i = 0; i < sizeof v; ++i)
    s[i] = static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff);
  return s;
}

template<class T>
T le_value(const std::string& s, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return static_cast<T>(v);
}

std::string float_bytes(const std::vector<float>& v) {
  std::string s;
  for (const float f : v)
    s += le_bytes(std::bit_cast<std::uint32_t>(f));
  return s;
}

/// A whole file as the format describes it, around any header text and payload, with a
/// correct checksum: for headers the writer would never produce.
std::string forge(const std::string& header, const std::vector<float>& payload,
                  std::uint32_t version = 1) {
  std::string s = "MUMMI-AE" + le_bytes(version)
    + le_bytes(static_cast<std::uint32_t>(header.size())) + header + float_bytes(payload);
  return s + le_bytes(reference_fnv1a64(s));
}

ml::model_contents sample_contents(std::uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 2.0f);
  ml::model_contents c;
  c.meta.arch.beads = 4;
  c.meta.arch.latent = 2;
  c.meta.arch.hidden = {5, 3};
  c.meta.arch.act = ml::activation::tanh;
  c.meta.prep.centre = false;
  c.meta.prep.align = true;
  c.meta.round = 7;
  c.meta.data_digest = "fnv1a64:0123456789abcdef";
  c.meta.parent_digest = "fnv1a64:fedcba9876543210";
  c.meta.training_frames = 123456789012ULL;
  c.meta.validation_rmsd_nm = 0.1 + 1e-17 * static_cast<double>(seed);
  c.meta.created_by = "mummi 0.1.0 (\"test\" \xc3\xa9)";
  const auto tensor = [&](std::vector<std::int64_t> shape) {
    ml::named_tensor t;
    t.shape = std::move(shape);
    std::size_t count = 1;
    for (const auto d : t.shape)
      count *= static_cast<std::size_t>(d);
    for (std::size_t i = 0; i < count; ++i)
      t.values.push_back(n(rng));
    return t;
  };
  c.tensors["encoder.0.weight"] = tensor({5, 12});
  c.tensors["encoder.0.bias"] = tensor({5});
  c.tensors["decoder.out.weight"] = tensor({12, 5});
  c.tensors["scale"] = tensor({});     // a scalar
  c.tensors["empty"] = tensor({0, 3}); // no values
  return c;
}

void expect_model_error(const std::function<void()>& f, const fs::path& path,
                        const std::vector<std::string>& words) {
  mummi::test::expect_path_error<ml::model_error>(f, path, words);
}

/// Expects reading `bytes` (written to a file) to fail with a message containing `words`.
void expect_read_error(const temp_dir& dir, const std::string& bytes,
                       const std::vector<std::string>& words) {
  const auto p = dir / "bad.model";
  write_bytes(p, bytes);
  expect_model_error(
    [&] {
      ml::read_model_file(p);
    },
    p, words);
}

/// A valid header for one tensor "w" of shape {2, 3}; tests edit it to break one thing.
json valid_header() {
  ml::model_contents c = sample_contents();
  c.tensors.clear();
  ml::named_tensor t;
  t.shape = {2, 3};
  t.values = {1, 2, 3, 4, 5, 6};
  c.tensors["w"] = t;
  temp_dir dir;
  ml::write_model_file(dir / "m", c);
  const auto bytes = read_bytes(dir / "m");
  return json::parse(bytes.substr(16, le_value<std::uint32_t>(bytes, 12)));
}

const std::vector<float> six = {1, 2, 3, 4, 5, 6};

// --- Round trips ----------------------------------------------------------------------------

TEST(ModelFile, RoundTripIsBitExactAndRewritesIdenticalBytes) {
  temp_dir dir;
  const auto c = sample_contents();
  ml::write_model_file(dir / "a.model", c);
  const auto back = ml::read_model_file(dir / "a.model");
  EXPECT_EQ(back, c);
  EXPECT_EQ(back.tensors.at("scale").values.size(), 1u);
  EXPECT_TRUE(back.tensors.at("empty").values.empty());
  ml::write_model_file(dir / "b.model", back);
  EXPECT_EQ(read_bytes(dir / "a.model"), read_bytes(dir / "b.model"));
}

TEST(ModelFile, EveryActivationAndEmptyHiddenRoundTrip) {
  temp_dir dir;
  for (const auto act : {ml::activation::relu, ml::activation::elu, ml::activation::tanh}) {
    auto c = sample_contents();
    c.meta.arch.act = act;
    c.meta.arch.hidden.clear();
    c.meta.data_digest.clear();
    c.meta.parent_digest.clear();
    c.tensors.clear();
    ml::write_model_file(dir / "m", c);
    EXPECT_EQ(ml::read_model_file(dir / "m"), c);
  }
}

TEST(ModelFile, DoublesRoundTripBitForBit) {
  temp_dir dir;
  std::mt19937_64 rng(42);
  std::vector<double> values = {0.0,
                                -0.0,
                                0.1,
                                1.0 / 3.0,
                                std::numeric_limits<double>::denorm_min(),
                                std::numeric_limits<double>::min(),
                                std::numeric_limits<double>::max(),
                                -std::numeric_limits<double>::max(),
                                std::numeric_limits<double>::epsilon(),
                                1e22,
                                123456789.123456789};
  while (values.size() < 300) {
    const double d = std::bit_cast<double>(rng());
    if (std::isfinite(d))
      values.push_back(d);
  }
  auto c = sample_contents();
  c.tensors.clear();
  for (const double v : values) {
    c.meta.validation_rmsd_nm = v;
    ml::write_model_file(dir / "m", c);
    const double back = ml::read_model_file(dir / "m").meta.validation_rmsd_nm;
    EXPECT_EQ(std::bit_cast<std::uint64_t>(back), std::bit_cast<std::uint64_t>(v)) << v;
  }
}

TEST(ModelFile, NonFiniteRmsdRoundTrips) {
  temp_dir dir;
  auto c = sample_contents();
  c.meta.validation_rmsd_nm = std::numeric_limits<double>::quiet_NaN();
  ml::write_model_file(dir / "m", c);
  EXPECT_TRUE(std::isnan(ml::read_model_file(dir / "m").meta.validation_rmsd_nm));
  for (const double inf :
       {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
    c.meta.validation_rmsd_nm = inf;
    ml::write_model_file(dir / "m", c);
    EXPECT_EQ(ml::read_model_file(dir / "m").meta.validation_rmsd_nm, inf);
  }
}

TEST(ModelFile, PayloadBytesSurviveIncludingNaNsAndInfinities) {
  temp_dir dir;
  ml::model_contents c;
  ml::named_tensor t;
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i)
    t.values.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng()))); // any bits
  t.values.push_back(std::bit_cast<float>(0x7fc00001u));                         // a NaN payload
  t.values.push_back(std::numeric_limits<float>::infinity());
  t.values.push_back(-0.0f);
  t.shape = {static_cast<std::int64_t>(t.values.size())};
  c.tensors["bits"] = t;
  ml::write_model_file(dir / "m", c);
  const auto back = ml::read_model_file(dir / "m").tensors.at("bits");
  ASSERT_EQ(back.values.size(), t.values.size());
  EXPECT_EQ(std::memcmp(back.values.data(), t.values.data(), t.values.size() * sizeof(float)), 0);
  EXPECT_EQ(back.shape, t.shape);
}

TEST(ModelFile, LayoutIsAsDocumented) {
  temp_dir dir;
  const auto c = sample_contents();
  ml::write_model_file(dir / "m", c);
  const auto bytes = read_bytes(dir / "m");
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), "MUMMI-AE");
  EXPECT_EQ(le_value<std::uint32_t>(bytes, 8), 1u);
  const auto header_len = le_value<std::uint32_t>(bytes, 12);
  const auto h = json::parse(bytes.substr(16, header_len));
  EXPECT_EQ(h["architecture"]["beads"], 4);
  EXPECT_EQ(h["architecture"]["latent"], 2);
  EXPECT_EQ(h["architecture"]["hidden"], json::array({5, 3}));
  EXPECT_EQ(h["architecture"]["activation"], "tanh");
  EXPECT_EQ(h["preprocessing"]["centre"], false);
  EXPECT_EQ(h["preprocessing"]["align"], true);
  EXPECT_EQ(h["round"], 7);
  EXPECT_EQ(h["data_digest"], c.meta.data_digest);
  EXPECT_EQ(h["parent_digest"], c.meta.parent_digest);
  EXPECT_EQ(h["training_frames"], 123456789012ULL);
  EXPECT_EQ(h["validation_rmsd_nm"].get<double>(), c.meta.validation_rmsd_nm);
  EXPECT_EQ(h["created_by"], c.meta.created_by);

  // The tensor table lists the tensors in name order, packed one after another.
  const std::size_t payload_at = 16 + header_len;
  std::size_t expected_offset = 0;
  ASSERT_EQ(h["tensors"].size(), c.tensors.size());
  auto it = c.tensors.begin();
  for (const auto& e : h["tensors"]) {
    EXPECT_EQ(e["name"], it->first);
    EXPECT_EQ(e["shape"].get<std::vector<std::int64_t>>(), it->second.shape);
    EXPECT_EQ(e["count"], it->second.values.size());
    EXPECT_EQ(e["offset"], expected_offset);
    EXPECT_EQ(bytes.substr(payload_at + 4 * expected_offset, 4 * it->second.values.size()),
              float_bytes(it->second.values));
    expected_offset += it->second.values.size();
    ++it;
  }
  const std::size_t trailer_at = payload_at + 4 * expected_offset;
  ASSERT_EQ(bytes.size(), trailer_at + 8);
  EXPECT_EQ(le_value<std::uint64_t>(bytes, trailer_at),
            reference_fnv1a64(bytes.substr(0, trailer_at)));
}

TEST(ModelFile, UnknownHeaderFieldsAreIgnored) {
  // Fields are only ever appended within a format version; older readers skip them.
  temp_dir dir;
  auto h = valid_header();
  h["future_field"] = {{"anything", 1}};
  h["architecture"]["future_knob"] = 3.5;
  write_bytes(dir / "m", forge(h.dump(), six));
  const auto c = ml::read_model_file(dir / "m");
  EXPECT_EQ(c.tensors.at("w").values, six);
  EXPECT_EQ(c.meta.round, 7u);
}

// --- Errors: foreign, missing and damaged files ---------------------------------------------

TEST(ModelFile, MissingFileIsAnError) {
  temp_dir dir;
  expect_model_error(
    [&] {
      ml::read_model_file(dir / "nope.model");
    },
    dir / "nope.model", {"cannot open", "No such file"});
  expect_model_error(
    [&] {
      ml::read_model_file(dir.path());
    },
    dir.path(), {"not a regular file"});
  EXPECT_FALSE(ml::looks_like_torchscript(dir / "nope.model"));
}

TEST(ModelFile, ZipFileLooksLikeTorchScript) {
  temp_dir dir;
  const std::string zip = std::string("PK\x03\x04\x14\x00\x00\x00", 8) + "archive/data.pkl";
  write_bytes(dir / "ts.pt", zip);
  EXPECT_TRUE(ml::looks_like_torchscript(dir / "ts.pt"));
  expect_model_error(
    [&] {
      ml::read_model_file(dir / "ts.pt");
    },
    dir / "ts.pt", {"not a mummi model file", "TorchScript"});
  ml::write_model_file(dir / "m", sample_contents());
  EXPECT_FALSE(ml::looks_like_torchscript(dir / "m"));
}

TEST(ModelFile, OtherFilesAreNotModelFiles) {
  temp_dir dir;
  expect_read_error(dir, "hello, this is text and not a model", {"not a mummi model file"});
  expect_read_error(dir, "MUMMI-AF" + std::string(100, '\0'), {"not a mummi model file"});
}

TEST(ModelFile, NewerFormatIsRefused) {
  temp_dir dir;
  expect_read_error(dir, forge(valid_header().dump(), six, 2),
                    {"written by a newer mummi: format 2, this build reads 1"});
  expect_read_error(dir, forge(valid_header().dump(), six, 0), {"format version 0"});
}

TEST(ModelFile, TruncationAtEveryLengthIsAnError) {
  temp_dir dir;
  ml::write_model_file(dir / "m", sample_contents());
  const auto bytes = read_bytes(dir / "m");
  const auto p = dir / "cut.model";
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    write_bytes(p, bytes.substr(0, len));
    expect_model_error(
      [&] {
        ml::read_model_file(p);
      },
      p, {"truncated", "the file has " + std::to_string(len)});
  }
  // The message names the length the header asks for.
  write_bytes(p, bytes.substr(0, bytes.size() - 1));
  expect_model_error(
    [&] {
      ml::read_model_file(p);
    },
    p, {"describes " + std::to_string(bytes.size()) + " bytes"});
}

TEST(ModelFile, EveryFlippedBitIsAnError) {
  temp_dir dir;
  ml::model_contents c = sample_contents();
  c.tensors.erase("encoder.0.weight");
  c.tensors.erase("decoder.out.weight");
  ml::write_model_file(dir / "m", c);
  const auto bytes = read_bytes(dir / "m");
  const auto header_end = 16 + le_value<std::uint32_t>(bytes, 12);
  const auto p = dir / "flipped.model";
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    for (int bit = 0; bit < 8; ++bit) {
      auto b = bytes;
      b[at] = static_cast<char>(b[at] ^ (1 << bit));
      write_bytes(p, b);
      try {
        ml::read_model_file(p);
        ADD_FAILURE() << "byte " << at << " bit " << bit << ": read without error";
      } catch (const ml::model_error& e) {
        const std::string what = e.what();
        if (at >= header_end) {
          // Payload and trailer are covered by the checksum alone.
          EXPECT_NE(what.find("corrupt: checksum mismatch"), std::string::npos) << what;
        } else {
          bool named = false;
          for (const char* w : {"corrupt", "checksum", "header", "not a mummi model file", "newer",
                                "truncated", "unreasonable", "trailing"})
            named = named || what.find(w) != std::string::npos;
          EXPECT_TRUE(named) << "byte " << at << " bit " << bit << ": " << what;
        }
      }
    }
  }
}

TEST(ModelFile, BitFlipInTheHeaderSaysCorrupt) {
  // A flip that keeps the header valid JSON and valid fields ("round": 7 -> 6 or 5 ...) is
  // caught by the checksum; one that breaks a field name also mentions the checksum.
  temp_dir dir;
  ml::write_model_file(dir / "m", sample_contents());
  const auto bytes = read_bytes(dir / "m");
  auto b = bytes;
  const auto at = b.find("\"round\":7");
  ASSERT_NE(at, std::string::npos);
  b[at + 8] = '6';
  expect_read_error(dir, b, {"corrupt: checksum mismatch"});
  b = bytes;
  b[at + 1] = 'R';
  expect_read_error(dir, b, {"missing field 'round'", "checksum does not match"});
}

TEST(ModelFile, TrailingBytesAreAnError) {
  temp_dir dir;
  ml::write_model_file(dir / "m", sample_contents());
  const auto bytes = read_bytes(dir / "m");
  expect_read_error(dir, bytes + "x", {"trailing garbage: 1 bytes after the checksum"});
  expect_read_error(dir, bytes + bytes, {"trailing garbage"});
  // Extra bytes that do not follow an intact file.
  auto b = bytes + "xyz";
  b[bytes.size() - 20] ^= 1;
  expect_read_error(dir, b, {"corrupt"});
}

TEST(ModelFile, UnreasonableHeaderLengthIsRefused) {
  temp_dir dir;
  auto b = forge(valid_header().dump(), six);
  const auto huge = le_bytes(std::uint32_t{0xfffffff0});
  b.replace(12, 4, huge);
  expect_read_error(dir, b, {"unreasonable header length 4294967280"});
}

// --- Errors: bad headers --------------------------------------------------------------------

TEST(ModelFile, MalformedJsonNamesTheParseError) {
  temp_dir dir;
  expect_read_error(dir, forge("{\"round\": 7,", six), {"malformed header", "parse error"});
  expect_read_error(dir, forge("", {}), {"malformed header"});
  expect_read_error(dir, forge("[1, 2]", {}), {"malformed header: a JSON array, not an object"});
  expect_read_error(dir, forge("{\"a\": \"\xff\xfe\"}", {}), {"malformed header"});
  expect_read_error(dir, forge("{\"a\": 1e999}", {}), {"malformed header"});
}

TEST(ModelFile, DeeplyNestedHeaderDoesNotCrash) {
  temp_dir dir;
  const std::size_t depth = 200000;
  expect_read_error(dir, forge(std::string(depth, '[') + std::string(depth, ']'), {}),
                    {"malformed header"});
  expect_read_error(dir, forge(std::string(depth, '['), {}), {"malformed header"});
}

TEST(ModelFile, MissingFieldsAreNamedAllAtOnce) {
  temp_dir dir;
  auto h = valid_header();
  h.erase("round");
  h.erase("created_by");
  h["architecture"].erase("latent");
  h["preprocessing"].erase("align");
  h["tensors"][0].erase("offset");
  expect_read_error(dir, forge(h.dump(), six),
                    {"missing field 'round'", "missing field 'created_by'",
                     "missing field 'architecture.latent'", "missing field 'preprocessing.align'",
                     "missing field 'tensors[0].offset'"});
  h = valid_header();
  h.erase("tensors");
  h.erase("architecture");
  expect_read_error(dir, forge(h.dump(), {}),
                    {"missing field 'tensors'", "missing field 'architecture'"});
}

TEST(ModelFile, MistypedFieldsAreNamedAllAtOnce) {
  temp_dir dir;
  auto h = valid_header();
  h["round"] = "seven";
  h["training_frames"] = -1;
  h["validation_rmsd_nm"] = "small";
  h["data_digest"] = 12;
  h["architecture"]["hidden"] = json::array({5, -3, 2.5});
  h["architecture"]["activation"] = "sigmoid";
  h["preprocessing"]["centre"] = 1;
  expect_read_error(dir, forge(h.dump(), six),
                    {"field 'round' should be an unsigned integer, not string",
                     "field 'training_frames' should be an unsigned integer, not number",
                     "field 'validation_rmsd_nm' should be a number",
                     "field 'data_digest' should be a string, not number",
                     "field 'architecture.hidden[1]' should be an unsigned integer",
                     "field 'architecture.hidden[2]' should be an unsigned integer",
                     "field 'architecture.activation' should be \"relu\", \"elu\" or \"tanh\", "
                     "not \"sigmoid\"",
                     "field 'preprocessing.centre' should be true or false, not number"});
  h = valid_header();
  h["round"] = 1ULL << 32; // round is 32 bits
  h["architecture"] = json::array();
  h["tensors"] = json::object();
  expect_read_error(dir, forge(h.dump(), six),
                    {"field 'round' is too large (4294967296)",
                     "field 'architecture' should be an object, not array",
                     "field 'tensors' should be an array, not object"});
}

TEST(ModelFile, ManyProblemsGiveAShortMessage) {
  temp_dir dir;
  auto h = valid_header();
  h["tensors"] = json::array();
  for (int i = 0; i < 100000; ++i)
    h["tensors"].push_back({{"name", 1}});
  const auto p = dir / "m";
  write_bytes(p, forge(h.dump(), {}));
  try {
    ml::read_model_file(p);
    ADD_FAILURE() << "read without error";
  } catch (const ml::model_error& e) {
    const std::string what = e.what();
    EXPECT_LT(what.size(), 4000u);
    EXPECT_NE(what.find("field 'tensors[0].name' should be a string"), std::string::npos) << what;
    EXPECT_NE(what.find("more problems"), std::string::npos) << what;
  }
}

// --- Errors: inconsistent tensor tables -----------------------------------------------------

json two_tensor_header() {
  auto h = valid_header();
  h["tensors"] = json::array({{{"name", "a"}, {"shape", {2, 3}}, {"offset", 0}, {"count", 6}},
                              {{"name", "b"}, {"shape", {4}}, {"offset", 6}, {"count", 4}}});
  return h;
}

TEST(ModelFile, TwoTensorForgeryIsValid) {
  // The baseline the table tests break one thing of.
  temp_dir dir;
  write_bytes(dir / "m", forge(two_tensor_header().dump(), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  const auto c = ml::read_model_file(dir / "m");
  EXPECT_EQ(c.tensors.at("b").values, (std::vector<float>{7, 8, 9, 10}));
}

TEST(ModelFile, CountMustBeTheProductOfTheShape) {
  temp_dir dir;
  auto h = two_tensor_header();
  h["tensors"][1]["count"] = 5;
  expect_read_error(dir, forge(h.dump(), std::vector<float>(11)),
                    {"tensor 'b' (tensors[1]): count 5 is not the product of its shape (4)"});
}

TEST(ModelFile, NegativeOrHugeDimensionsAreRefused) {
  temp_dir dir;
  auto h = two_tensor_header();
  h["tensors"][1]["shape"] = {-2, -2};
  expect_read_error(dir, forge(h.dump(), std::vector<float>(10)),
                    {"tensor 'b' (tensors[1]): dimension 0 is negative (-2)"});
  h["tensors"][1]["shape"] = {1ULL << 40, 1ULL << 40};
  expect_read_error(dir, forge(h.dump(), std::vector<float>(10)), {"overflows 64 bits"});
  h["tensors"][1]["shape"] = {std::numeric_limits<std::uint64_t>::max()};
  expect_read_error(dir, forge(h.dump(), std::vector<float>(10)), {"dimension 0 is too large"});
  h["tensors"][1]["shape"] = {4.0};
  expect_read_error(dir, forge(h.dump(), std::vector<float>(10)),
                    {"field 'tensors[1].shape[0]' should be an integer"});
}

TEST(ModelFile, OverlapsGapsAndDuplicatesAreRefused) {
  temp_dir dir;
  const std::vector<float> ten(10);
  auto h = two_tensor_header();
  h["tensors"][1]["offset"] = 4;
  expect_read_error(dir, forge(h.dump(), ten),
                    {"tensor 'b' (tensors[1]): offset 4 overlaps the tensor before it"});
  h["tensors"][1]["offset"] = 7;
  expect_read_error(dir, forge(h.dump(), std::vector<float>(11)), {"offset 7 leaves a gap"});
  h = two_tensor_header();
  h["tensors"][1]["name"] = "a";
  expect_read_error(dir, forge(h.dump(), ten), {"duplicate name 'a' at tensors[1]"});
  h = two_tensor_header();
  h["tensors"][0] = 3;
  expect_read_error(dir, forge(h.dump(), ten),
                    {"field 'tensors[0]' should be an object, not number"});
}

TEST(ModelFile, HugeCountsAreTruncationNotAllocation) {
  temp_dir dir;
  auto h = two_tensor_header();
  h["tensors"][1]["shape"] = {1ULL << 30, 1ULL << 30};
  h["tensors"][1]["count"] = 1ULL << 60;
  expect_read_error(dir, forge(h.dump(), std::vector<float>(10)), {"truncated"});
  h["tensors"][0]["shape"] = {1ULL << 31, 1ULL << 31};
  h["tensors"][0]["count"] = 1ULL << 62;
  h["tensors"][1]["offset"] = 1ULL << 62;
  h["tensors"][1]["shape"] = {1ULL << 31, 1ULL << 31};
  h["tensors"][1]["count"] = 1ULL << 62;
  expect_read_error(dir, forge(h.dump(), std::vector<float>(10)), {"unreasonable tensor sizes"});
  h["tensors"][0]["shape"] = {1ULL << 32, 1ULL << 31};
  h["tensors"][0]["count"] = 1ULL << 63;
  h["tensors"][1]["offset"] = 1ULL << 63;
  h["tensors"][1]["shape"] = {1ULL << 32, 1ULL << 31};
  h["tensors"][1]["count"] = 1ULL << 63;
  expect_read_error(dir, forge(h.dump(), std::vector<float>(10)), {"counts overflow 64 bits"});
}

// --- Writing --------------------------------------------------------------------------------

TEST(ModelFile, WriteReplacesAWholeFileAndLeavesNoTemporary) {
  temp_dir dir;
  const auto p = dir / "round-3.model";
  write_bytes(p, std::string(1 << 20, 'x')); // longer than the model
  auto c = sample_contents();
  ml::write_model_file(p, c);
  EXPECT_EQ(ml::read_model_file(p), c);
  c.meta.round = 8;
  ml::write_model_file(p, c);
  EXPECT_EQ(ml::read_model_file(p), c);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path()))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"round-3.model"});
}

TEST(ModelFile, WriteErrorsNameThePathAndLeaveNothingBehind) {
  temp_dir dir;
  const auto nowhere = dir / "no-such-dir" / "m.model";
  expect_model_error(
    [&] {
      ml::write_model_file(nowhere, sample_contents());
    },
    nowhere, {"cannot create", ".tmp-", "No such file"});

  auto c = sample_contents();
  c.tensors["encoder.0.bias"].values.pop_back();
  c.tensors["scale"].shape = {-1};
  const auto p = dir / "m.model";
  expect_model_error(
    [&] {
      ml::write_model_file(p, c);
    },
    p,
    {"tensor 'encoder.0.bias': shape holds 5 values but it has 4",
     "tensor 'scale': dimension 0 is negative (-1)"});
  c = sample_contents();
  c.meta.created_by = "bad utf-8 \xff";
  expect_model_error(
    [&] {
      ml::write_model_file(p, c);
    },
    p, {"cannot encode the header"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// --- frames_digest --------------------------------------------------------------------------

TEST(FramesDigest, KnownValue) {
  const std::vector<float> values = {1.0f, -2.5f, 0.125f};
  const std::vector<std::int32_t> labels = {0, 7};
  std::string bytes = float_bytes(values);
  for (const auto l : labels)
    bytes += le_bytes(static_cast<std::uint32_t>(l));
  char expected[40];
  std::snprintf(expected, sizeof expected, "fnv1a64:%016llx",
                static_cast<unsigned long long>(reference_fnv1a64(bytes)));
  EXPECT_EQ(ml::frames_digest(values, labels), expected);
  EXPECT_EQ(ml::frames_digest(values, labels), "fnv1a64:3129b1addd1396d5");
  EXPECT_EQ(ml::frames_digest({}), "fnv1a64:cbf29ce484222325"); // the FNV offset basis
}

TEST(FramesDigest, ChangesWithAnyValueOrLabel) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-5, 5);
  std::vector<float> values(300);
  for (auto& v : values)
    v = u(rng);
  std::vector<std::int32_t> labels(100, 1);
  const auto base = ml::frames_digest(values, labels);
  EXPECT_EQ(ml::frames_digest(values, labels), base);
  EXPECT_NE(ml::frames_digest(values), base);
  for (const std::size_t i : {0u, 150u, 299u}) {
    auto v = values;
    v[i] = std::nextafter(v[i], 10.0f);
    EXPECT_NE(ml::frames_digest(v, labels), base) << i;
  }
  for (const std::size_t i : {0u, 99u}) {
    auto l = labels;
    l[i] = 2;
    EXPECT_NE(ml::frames_digest(values, l), base) << i;
  }
}

} // namespace
