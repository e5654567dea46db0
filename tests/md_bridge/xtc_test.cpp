// XTC decoding and the streaming reader, on files only: a short GROMACS trajectory committed
// under data/xtc (see regenerate.sh there) and files built from it byte by byte.

#include "mummi/md_bridge/xtc.hpp"

#include "mummi/md_bridge/errors.hpp"

#include "../support/md_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace md = mummi::md;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;

namespace {

const fs::path data_dir = fs::path(MD_TEST_DATA) / "xtc";
const fs::path short_xtc = data_dir / "lj_fluid_short.xtc";
constexpr std::size_t short_frames = 8;
constexpr std::uint32_t short_atoms = 1728;

bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// Appends with write(2) on an O_APPEND descriptor, as mdrun's stdio does.
void append_bytes(const fs::path& p, const std::uint8_t* data, std::size_t n) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::size_t done = 0;
  while (done < n) {
    const auto w = ::write(fd, data + done, n - done);
    ASSERT_GT(w, 0);
    done += static_cast<std::size_t>(w);
  }
  ::close(fd);
}

void put_be32(bytes& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 24);
  b[at + 1] = static_cast<std::uint8_t>(v >> 16);
  b[at + 2] = static_cast<std::uint8_t>(v >> 8);
  b[at + 3] = static_cast<std::uint8_t>(v);
}

void push_be32(bytes& b, std::uint32_t v) {
  b.resize(b.size() + 4);
  put_be32(b, b.size() - 4, v);
}

void push_float(bytes& b, float f) {
  push_be32(b, std::bit_cast<std::uint32_t>(f));
}

/// A temporary directory removed at the end of the test.
class xtc_files : public ::testing::Test {
protected:
  mummi::test::temp_dir tmp_{"mummi-xtc-test"};
  fs::path dir_ = tmp_.path();
};

/// Frames (header fields and positions) equal bit for bit.
void expect_same_frame(const md::xtc_frame& a, const md::xtc_frame& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(a.time_ps), std::bit_cast<std::uint32_t>(b.time_ps));
  EXPECT_EQ(a.natoms, b.natoms);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(a.precision), std::bit_cast<std::uint32_t>(b.precision));
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t c = 0; c < 3; ++c)
      EXPECT_EQ(std::bit_cast<std::uint32_t>(a.box_nm[r][c]),
                std::bit_cast<std::uint32_t>(b.box_nm[r][c]));
  ASSERT_EQ(a.positions_nm.size(), b.positions_nm.size());
  EXPECT_EQ(0,
            std::memcmp(a.positions_nm.data(), b.positions_nm.data(),
                        a.positions_nm.size() * sizeof(md::vec3)))
    << "positions differ in the frame of step " << a.step;
}

void expect_same_frames(const std::vector<md::xtc_frame>& a, const std::vector<md::xtc_frame>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k)
    expect_same_frame(a[k], b[k]);
}

std::vector<md::xtc_frame> drain(md::xtc_stream_reader& r) {
  std::vector<md::xtc_frame> out;
  while (auto f = r.try_next())
    out.push_back(std::move(*f));
  return out;
}

/// Exactly `n` frames (fails the test when fewer come).
std::vector<md::xtc_frame> take(md::xtc_stream_reader& r, std::size_t n) {
  std::vector<md::xtc_frame> out;
  for (std::size_t k = 0; k < n; ++k) {
    auto f = r.try_next();
    EXPECT_TRUE(f.has_value()) << "frame " << k << " of " << n;
    if (!f)
      break;
    out.push_back(std::move(*f));
  }
  return out;
}

/// Runs `f`, expects an io_error whose message names `file` and "frame at byte `offset`" and
/// contains `words`.
template<class F>
void expect_io_error(F&& f, const fs::path& file, std::uint64_t offset, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no io_error (expected one at byte " << offset << ": " << words << ")";
  } catch (const md::io_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    EXPECT_NE(what.find("frame at byte " + std::to_string(offset) + ":"), std::string::npos)
      << what;
    EXPECT_NE(what.find(words), std::string::npos) << what;
  }
}

/// The bytes of frame k of the committed trajectory.
bytes frame_bytes(const bytes& file, const std::vector<md::xtc_frame_info>& index, std::size_t k) {
  const auto begin = file.begin() + static_cast<std::ptrdiff_t>(index[k].offset);
  return bytes(begin, begin + static_cast<std::ptrdiff_t>(index[k].size_bytes));
}

bytes with_step(bytes frame, std::int32_t step) {
  put_be32(frame, 8, static_cast<std::uint32_t>(step));
  return frame;
}

void append(bytes& to, const bytes& more) {
  to.insert(to.end(), more.begin(), more.end());
}

} // namespace

// --- Decoding against GROMACS ---------------------------------------------------------------

TEST(xtc, decodes_gromacs_trajectory_and_last_frame_matches_mdrun_final_gro) {
  const auto frames = md::read_xtc(short_xtc);
  ASSERT_EQ(frames.size(), short_frames);
  for (std::size_t k = 0; k < frames.size(); ++k) {
    const auto& f = frames[k];
    EXPECT_EQ(f.step, static_cast<std::int64_t>(10 * k));
    EXPECT_NEAR(f.time_ps, 0.02 * 10 * static_cast<double>(k), 1e-5);
    EXPECT_EQ(f.natoms, short_atoms);
    EXPECT_EQ(f.precision, 1000.0f);
    EXPECT_EQ(f.positions_nm.size(), short_atoms);
    EXPECT_EQ(f.box_nm, md::rectangular_box(6.5f, 6.5f, 6.5f));
  }
  // mdrun's final coordinates (written with 3 decimals from the same state as the last
  // frame) agree with the decoded positions to the XTC precision: XTC rounds x * 1000 in
  // single precision, the .gro writer rounds the exact value, so an exact tie may differ by
  // one unit; every other coordinate must be identical.
  std::ifstream gro(data_dir / "lj_fluid_short_final.gro");
  std::string line;
  std::getline(gro, line);
  std::getline(gro, line);
  ASSERT_EQ(std::stoul(line), short_atoms);
  const auto& last = frames.back();
  std::size_t off_by_one = 0;
  for (std::size_t a = 0; a < short_atoms; ++a) {
    ASSERT_TRUE(std::getline(gro, line));
    for (std::size_t d = 0; d < 3; ++d) {
      const long gro_units = std::lround(std::stod(line.substr(20 + 8 * d, 8)) * 1000.0);
      const long xtc_units = std::lround(static_cast<double>(last.positions_nm[a][d]) * 1000.0);
      ASSERT_LE(std::abs(gro_units - xtc_units), 1) << "atom " << a << " axis " << d;
      off_by_one += gro_units != xtc_units ? 1 : 0;
    }
  }
  EXPECT_LE(off_by_one, 3 * short_atoms / 1000) << "too many coordinates differ by one unit";
}

TEST(xtc, index_and_count_cover_the_file) {
  const auto index = md::index_xtc(short_xtc);
  ASSERT_EQ(index.size(), short_frames);
  EXPECT_EQ(md::count_frames(short_xtc), short_frames);
  std::uint64_t at = 0;
  for (std::size_t k = 0; k < index.size(); ++k) {
    EXPECT_EQ(index[k].offset, at);
    EXPECT_EQ(index[k].step, static_cast<std::int64_t>(10 * k));
    EXPECT_EQ(index[k].natoms, short_atoms);
    EXPECT_EQ(index[k].size_bytes % 4, 0u);
    at += index[k].size_bytes;
  }
  EXPECT_EQ(at, fs::file_size(short_xtc));
  const auto frames = md::read_xtc(short_xtc);
  for (std::size_t k = 0; k < frames.size(); ++k)
    EXPECT_EQ(frames[k].offset, index[k].offset);
}

TEST(xtc, parallel_serial_streaming_and_in_memory_decoding_agree) {
  const auto serial = md::read_xtc(short_xtc, {.leading_atoms = 0, .threads = 1});
  for (unsigned threads : {0u, 2u, 3u, 16u})
    expect_same_frames(md::read_xtc(short_xtc, {.leading_atoms = 0, .threads = threads}), serial);
  md::xtc_stream_reader reader(short_xtc);
  expect_same_frames(drain(reader), serial);
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  for (std::size_t k = 0; k < index.size(); ++k) {
    auto f = md::decode_xtc_frame(frame_bytes(file, index, k));
    f.offset = index[k].offset;
    expect_same_frame(f, serial[k]);
  }
  // Reusing one frame's memory gives the same frames.
  md::xtc_stream_reader again(short_xtc);
  md::xtc_frame reused;
  for (std::size_t k = 0; k < serial.size(); ++k) {
    ASSERT_TRUE(again.try_next(reused));
    expect_same_frame(reused, serial[k]);
  }
  EXPECT_FALSE(again.try_next(reused));
  expect_same_frame(reused, serial.back());
}

TEST(xtc, leading_atoms_are_the_prefix_of_a_full_decode) {
  const auto full = md::read_xtc(short_xtc);
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  for (std::size_t n : {1u, 2u, 9u, 10u, 11u, 100u, 763u, 1000u, 1727u, 1728u, 5000u}) {
    SCOPED_TRACE("leading " + std::to_string(n));
    const auto expected_size = std::min<std::size_t>(n, short_atoms);
    const auto lead = md::read_xtc(short_xtc, {.leading_atoms = n, .threads = 2});
    md::xtc_stream_options options;
    options.leading_atoms = n;
    md::xtc_stream_reader reader(short_xtc, options);
    const auto streamed = drain(reader);
    ASSERT_EQ(lead.size(), full.size());
    ASSERT_EQ(streamed.size(), full.size());
    for (std::size_t k = 0; k < full.size(); ++k) {
      auto prefix = full[k];
      prefix.positions_nm.resize(expected_size);
      expect_same_frame(lead[k], prefix);
      expect_same_frame(streamed[k], prefix);
      auto in_memory = md::decode_xtc_frame(frame_bytes(file, index, k), n);
      in_memory.offset = prefix.offset;
      expect_same_frame(in_memory, prefix);
      EXPECT_EQ(lead[k].natoms, short_atoms);
    }
  }
}

TEST_F(xtc_files, uncompressed_frames_of_up_to_nine_atoms) {
  // Frames of <= 9 atoms hold plain floats (no precision, no compression).
  bytes file;
  std::vector<std::vector<md::vec3>> written;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> coordinate(-50.0f, 50.0f);
  const std::uint32_t counts[] = {0, 1, 3, 9};
  for (std::uint32_t natoms : counts) {
    bytes one;
    push_be32(one, 1995);
    push_be32(one, natoms);
    push_be32(one, 40 + natoms);
    push_float(one, 1.5f * static_cast<float>(natoms));
    for (int k = 0; k < 9; ++k)
      push_float(one, k % 4 == 0 ? 3.25f : 0.125f * static_cast<float>(k));
    push_be32(one, natoms);
    std::vector<md::vec3> x(natoms);
    for (auto& p : x)
      for (auto& c : p) {
        c = coordinate(rng);
        push_float(one, c);
      }
    written.push_back(x);
    const auto f = md::decode_xtc_frame(one);
    EXPECT_EQ(f.natoms, natoms);
    EXPECT_EQ(f.step, 40 + natoms);
    EXPECT_EQ(f.time_ps, 1.5f * static_cast<float>(natoms));
    EXPECT_EQ(f.precision, 0.0f);
    EXPECT_EQ(f.box_nm[1][1], 3.25f);
    EXPECT_EQ(f.box_nm[0][1], 0.125f);
    EXPECT_EQ(f.positions_nm, x);
    EXPECT_EQ(md::decode_xtc_frame(one, 2).positions_nm.size(), std::min<std::size_t>(2, natoms));
    if (natoms == 3) {
      append(file, one);
      append(file, one);
    }
  }
  // A file of two 3-atom frames.
  put_be32(file, 8 + file.size() / 2, 77);
  write_bytes(dir_ / "small.xtc", file);
  const auto frames = md::read_xtc(dir_ / "small.xtc");
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].positions_nm, written[2]);
  EXPECT_EQ(frames[1].step, 77);
  EXPECT_EQ(frames[1].offset, file.size() / 2);
  md::xtc_stream_reader reader(dir_ / "small.xtc");
  expect_same_frames(drain(reader), frames);
}

// --- Streaming ------------------------------------------------------------------------------

TEST_F(xtc_files, stream_reader_tails_a_file_growing_in_random_chunks) {
  const auto expected = md::read_xtc(short_xtc);
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  for (const std::size_t max_chunk : {7u, 300u, 9000u}) {
    SCOPED_TRACE("chunks of up to " + std::to_string(max_chunk) + " bytes");
    const auto path = dir_ / ("growing" + std::to_string(max_chunk) + ".xtc");
    md::xtc_stream_reader reader(path);
    EXPECT_FALSE(reader.try_next().has_value()); // no file yet
    std::mt19937 rng(static_cast<unsigned>(max_chunk));
    std::uniform_int_distribution<std::size_t> chunk(1, max_chunk);
    std::vector<md::xtc_frame> got;
    std::size_t written = 0;
    std::size_t partial_looks = 0;
    while (written < file.size()) {
      const auto n = std::min(chunk(rng), file.size() - written);
      append_bytes(path, file.data() + written, n);
      written += n;
      while (auto f = reader.try_next()) {
        ASSERT_LT(got.size(), index.size());
        // A frame comes out only once its last byte is there.
        EXPECT_LE(index[got.size()].offset + index[got.size()].size_bytes, written);
        got.push_back(std::move(*f));
      }
      partial_looks += reader.pending_bytes() > 0 ? 1 : 0;
      EXPECT_EQ(reader.offset() + reader.pending_bytes(), written);
    }
    EXPECT_GT(partial_looks, 0u);
    expect_same_frames(got, expected);
    EXPECT_EQ(reader.pending_bytes(), 0u);
    EXPECT_EQ(reader.offset(), file.size());
    EXPECT_EQ(reader.last_step(), 70);
    EXPECT_EQ(reader.resyncs(), 0u);
  }
}

TEST_F(xtc_files, wait_next_follows_a_writer_thread) {
  const auto expected = md::read_xtc(short_xtc);
  const auto file = read_bytes(short_xtc);
  const auto path = dir_ / "written.xtc";
  std::atomic<bool> done{false};
  std::thread writer([&file, &path, &done]() {
    std::mt19937 rng(11);
    std::uniform_int_distribution<std::size_t> chunk(1, 4096);
    std::uniform_int_distribution<int> pause_us(0, 3000);
    for (std::size_t written = 0; written < file.size();) {
      const auto n = std::min(chunk(rng), file.size() - written);
      append_bytes(path, file.data() + written, n);
      written += n;
      std::this_thread::sleep_for(std::chrono::microseconds(pause_us(rng)));
    }
    done = true;
  });
  md::xtc_stream_reader reader(path);
  std::vector<md::xtc_frame> got;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
    if (auto f = reader.wait_next(5s))
      got.push_back(std::move(*f));
  }
  writer.join();
  EXPECT_TRUE(done);
  expect_same_frames(got, expected);
  EXPECT_FALSE(reader.wait_next(20ms).has_value());
}

TEST_F(xtc_files, wait_next_times_out_and_honours_cancellation) {
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  const auto path = dir_ / "partial.xtc";
  // One frame and a half.
  write_bytes(
    path, bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(index[1].offset + 500)));
  md::xtc_stream_reader reader(path);
  ASSERT_TRUE(reader.wait_next(1s).has_value());
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(reader.wait_next(150ms).has_value());
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 5s);
  EXPECT_EQ(reader.pending_bytes(), 500u);

  int asked = 0;
  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(reader
                 .wait_next(60s,
                            [&asked]() {
                              return ++asked >= 3;
                            })
                 .has_value());
  waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(asked, 3);
  EXPECT_LT(waited, 5s); // asked at least every 100 ms

  // The rest of the frame arrives: the waiting reader returns it.
  std::thread finish([&]() {
    std::this_thread::sleep_for(50ms);
    append_bytes(path, file.data() + index[1].offset + 500, index[1].size_bytes - 500);
  });
  const auto f = reader.wait_next(10s);
  finish.join();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->step, 10);
}

// --- Corrupt and truncated files ------------------------------------------------------------

TEST_F(xtc_files, truncated_files) {
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  const auto expected = md::read_xtc(short_xtc);
  for (const std::size_t into : {1u, 30u, 60u, 100u, 5000u}) {
    SCOPED_TRACE("cut " + std::to_string(into) + " bytes into frame 5");
    const auto path = dir_ / ("cut" + std::to_string(into) + ".xtc");
    write_bytes(
      path,
      bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(index[5].offset + into)));
    expect_io_error(
      [&]() {
        (void)md::read_xtc(path);
      },
      path, index[5].offset, "file ends");
    expect_io_error(
      [&]() {
        (void)md::count_frames(path);
      },
      path, index[5].offset, "file ends");
    md::xtc_stream_reader reader(path);
    const auto got = drain(reader);
    expect_same_frames(got, std::vector<md::xtc_frame>(expected.begin(), expected.begin() + 5));
    EXPECT_EQ(reader.pending_bytes(), into);
    EXPECT_FALSE(reader.try_next().has_value()); // still waiting, still no error
  }
}

TEST_F(xtc_files, bad_magic_is_an_error_naming_file_and_offset) {
  auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  put_be32(file, index[3].offset, 1993);
  const auto path = dir_ / "magic.xtc";
  write_bytes(path, file);
  expect_io_error(
    [&]() {
      (void)md::read_xtc(path);
    },
    path, index[3].offset, "magic number 1993");
  md::xtc_stream_reader reader(path);
  EXPECT_EQ(take(reader, 3).size(), 3u);
  // The reader stays at the bad frame: asking again gives the same error, never a wrong frame.
  for (int k = 0; k < 2; ++k)
    expect_io_error(
      [&]() {
        (void)reader.try_next();
      },
      path, index[3].offset, "magic");
  EXPECT_EQ(reader.offset(), index[3].offset);
}

TEST_F(xtc_files, impossible_header_fields_are_errors) {
  const auto original = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  const auto at = index[2].offset;
  struct change {
    const char* name;
    std::size_t field; ///< byte offset in the header
    std::uint32_t value;
    const char* words;
  };
  const change changes[] = {
    {"negative atom count", 4, 0xffffff00u, "negative atom count"},
    {"atom counts disagree", 52, 1729, "atom counts disagree"},
    {"zero precision", 56, 0, "precision"},
    {"NaN precision", 56, 0x7fc00000u, "precision"},
    {"empty range", 72, 0x80000000u, "integer range"},
    {"small index too small", 84, 3, "small-integer index 3"},
    {"small index too large", 84, 90, "small-integer index 90"},
    {"huge compressed size", 88, 0x7fffffffu, "compressed size"},
    {"negative compressed size", 88, 0xfffffff0u, "compressed size"},
    {"tiny compressed size", 88, 8, "compressed size"},
  };
  for (const auto& c : changes) {
    SCOPED_TRACE(c.name);
    auto file = original;
    put_be32(file, at + c.field, c.value);
    const auto path = dir_ / "header.xtc";
    write_bytes(path, file);
    expect_io_error(
      [&]() {
        (void)md::read_xtc(path);
      },
      path, at, c.words);
    md::xtc_stream_reader reader(path);
    EXPECT_EQ(take(reader, 2).size(), 2u);
    expect_io_error(
      [&]() {
        (void)reader.try_next();
      },
      path, at, c.words);
  }
  // A frame whose atom count differs from the first frame's (both header fields agree).
  auto file = original;
  put_be32(file, at + 4, 1500);
  put_be32(file, at + 52, 1500);
  const auto path = dir_ / "atoms.xtc";
  write_bytes(path, file);
  expect_io_error(
    [&]() {
      (void)md::read_xtc(path);
    },
    path, at, "1500 atoms");
  md::xtc_stream_reader reader(path);
  EXPECT_EQ(take(reader, 2).size(), 2u);
  expect_io_error(
    [&]() {
      (void)reader.try_next();
    },
    path, at, "1500 atoms");
}

TEST_F(xtc_files, corrupt_compressed_data_is_an_error_or_a_frame_never_a_crash) {
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  const auto frame = frame_bytes(file, index, 4);
  std::mt19937 rng(1995);
  std::size_t errors = 0;
  std::size_t decoded = 0;
  for (int trial = 0; trial < 400; ++trial) {
    auto bad = frame;
    const auto data_begin = 92u;
    std::uniform_int_distribution<std::size_t> where(data_begin, bad.size() - 1);
    const int flips = 1 + trial % 8;
    for (int k = 0; k < flips; ++k)
      bad[where(rng)] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    if (trial % 10 == 0) // whole runs of garbage
      for (std::size_t k = where(rng), e = std::min(bad.size(), k + 64); k < e; ++k)
        bad[k] = static_cast<std::uint8_t>(rng());
    for (std::size_t leading : {std::size_t{0}, std::size_t{300}}) {
      try {
        const auto f = md::decode_xtc_frame(bad, leading);
        EXPECT_EQ(f.positions_nm.size(), leading == 0 ? short_atoms : leading);
        ++decoded;
      } catch (const md::io_error& e) {
        EXPECT_NE(std::string(e.what()).find("frame at byte 0: corrupt compressed coordinates"),
                  std::string::npos)
          << e.what();
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0u);
  // The same through the file readers, with the offset of the frame in the file.
  auto whole = file;
  for (std::size_t k = index[4].offset + 200; k < index[4].offset + 264; ++k)
    whole[k] = static_cast<std::uint8_t>(rng());
  const auto path = dir_ / "garbage.xtc";
  write_bytes(path, whole);
  try {
    (void)md::read_xtc(path);
  } catch (const md::io_error& e) {
    EXPECT_NE(std::string(e.what()).find("frame at byte " + std::to_string(index[4].offset)),
              std::string::npos);
  }
  (void)decoded;
}

// --- Restarts -------------------------------------------------------------------------------

TEST_F(xtc_files, repeated_steps_after_a_restart_are_skipped) {
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  const auto full = md::read_xtc(short_xtc);
  // Frames 0-7 (steps 0-70), then a restart from the checkpoint at step 30 writes 30-70
  // again, then steps 80 and 90.
  bytes restarted = file;
  for (std::size_t k = 3; k < short_frames; ++k)
    append(restarted, frame_bytes(file, index, k));
  append(restarted, with_step(frame_bytes(file, index, 0), 80));
  append(restarted, with_step(frame_bytes(file, index, 1), 90));
  const auto path = dir_ / "restarted.xtc";
  write_bytes(path, restarted);

  md::xtc_stream_reader reader(path);
  const auto got = drain(reader);
  ASSERT_EQ(got.size(), 10u);
  for (std::size_t k = 0; k < got.size(); ++k)
    EXPECT_EQ(got[k].step, static_cast<std::int64_t>(10 * k));
  for (std::size_t k = 0; k < short_frames; ++k) {
    EXPECT_EQ(got[k].positions_nm, full[k].positions_nm);
  }
  EXPECT_EQ(got[8].positions_nm, full[0].positions_nm);
  EXPECT_EQ(reader.offset(), restarted.size());

  EXPECT_EQ(md::read_xtc(path).size(), 15u); // every frame, as GROMACS and MDAnalysis read it
  const auto deduplicated
    = md::read_xtc(path, {.leading_atoms = 0, .threads = 2, .drop_repeated_steps = true});
  ASSERT_EQ(deduplicated.size(), got.size());
  for (std::size_t k = 0; k < got.size(); ++k)
    expect_same_frame(deduplicated[k], got[k]);
}

TEST_F(xtc_files, a_new_reader_resumes_from_offset_and_last_step) {
  const auto full = md::read_xtc(short_xtc);
  const auto size = fs::file_size(short_xtc);
  md::xtc_stream_reader first(short_xtc);
  for (int k = 0; k < 3; ++k)
    ASSERT_TRUE(first.try_next().has_value());
  const std::vector<md::xtc_frame> rest(full.begin() + 3, full.end());

  md::xtc_stream_options resume;
  resume.start_offset = first.offset();
  resume.last_step = first.last_step();
  EXPECT_EQ(resume.start_offset, full[3].offset);
  EXPECT_EQ(resume.last_step, 20);
  md::xtc_stream_reader second(short_xtc, resume);
  expect_same_frames(drain(second), rest);
  EXPECT_EQ(second.resyncs(), 0u);

  // A resume offset that is not a frame boundary, or beyond the end of the file, sends the
  // reader back to byte 0; the step rule still gives the remaining frames only.
  for (const std::uint64_t offset : {full[3].offset + 4, full[5].offset - 1, size + 100000}) {
    SCOPED_TRACE("resume at byte " + std::to_string(offset));
    resume.start_offset = offset;
    md::xtc_stream_reader third(short_xtc, resume);
    expect_same_frames(drain(third), rest);
    EXPECT_EQ(third.resyncs(), 1u);
  }
  // Moving a reader keeps its place.
  md::xtc_stream_reader moved = std::move(first);
  expect_same_frames(drain(moved), rest);
  static_assert(!std::is_copy_constructible_v<md::xtc_stream_reader>);
  static_assert(std::is_nothrow_move_constructible_v<md::xtc_stream_reader>);
}

TEST_F(xtc_files, truncation_rewrite_and_replacement_resynchronise) {
  const auto file = read_bytes(short_xtc);
  const auto index = md::index_xtc(short_xtc);
  const auto path = dir_ / "traj.xtc";
  write_bytes(path, file);
  md::xtc_stream_reader reader(path);
  ASSERT_EQ(drain(reader).size(), short_frames);

  // mdrun restarts with appending from the checkpoint at step 20: it truncates the file
  // after frame 2, then writes steps 30-70 again, then new steps.
  fs::resize_file(path, index[3].offset);
  EXPECT_FALSE(reader.try_next().has_value());
  EXPECT_EQ(reader.resyncs(), 1u);
  EXPECT_EQ(reader.offset(), index[3].offset);
  for (std::size_t k = 3; k < short_frames; ++k) {
    const auto f = frame_bytes(file, index, k);
    append_bytes(path, f.data(), f.size());
  }
  EXPECT_FALSE(reader.try_next().has_value());
  const auto step80 = with_step(frame_bytes(file, index, 0), 80);
  append_bytes(path, step80.data(), step80.size());
  auto f = reader.try_next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->step, 80);
  EXPECT_EQ(reader.resyncs(), 1u);

  // Truncated and rewritten between two looks, longer than before: the reader notices that
  // the last frame it passed has changed.
  bytes rewritten(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(index[2].offset));
  for (std::size_t k = 2; k < short_frames; ++k)
    append(rewritten,
           with_step(frame_bytes(file, index, k), static_cast<std::int32_t>(100 + 10 * k)));
  append(rewritten, with_step(frame_bytes(file, index, 0), 180));
  append(rewritten, with_step(frame_bytes(file, index, 1), 190));
  write_bytes(path, rewritten);
  auto got = drain(reader);
  ASSERT_EQ(got.size(), 8u);
  EXPECT_EQ(got.front().step, 120);
  EXPECT_EQ(got.back().step, 190);
  EXPECT_EQ(reader.resyncs(), 2u);

  // Replaced by another file (renamed over the path).
  bytes replacement;
  for (std::size_t k = 0; k < 3; ++k)
    append(replacement, with_step(frame_bytes(file, index, k), static_cast<std::int32_t>(300 + k)));
  write_bytes(dir_ / "new.xtc", replacement);
  fs::rename(dir_ / "new.xtc", path);
  got = drain(reader);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got.front().step, 300);
  EXPECT_EQ(reader.resyncs(), 3u);
}

TEST(xtc, missing_and_unreadable_files) {
  const fs::path missing = "/nonexistent-dir-of-mummi/traj.xtc";
  EXPECT_THROW((void)md::read_xtc(missing), md::io_error);
  EXPECT_THROW((void)md::index_xtc(missing), md::io_error);
  md::xtc_stream_reader reader(missing);
  EXPECT_FALSE(reader.try_next().has_value()); // may appear later
  EXPECT_FALSE(reader.wait_next(30ms).has_value());
  EXPECT_THROW((void)md::read_xtc(data_dir), md::io_error); // a directory
  EXPECT_THROW((void)md::decode_xtc_frame({}), md::io_error);
}
