// The HDF5 frame store: exact round trips, appends across reopen and chunk boundaries,
// compression, read clamping, every malformed file and bad input, and h5dump (the HDF5
// project's own tool) as an independent reader of what was written.

#include "mummi/coupling/frame_store.hpp"
#include "../support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
using mummi::coupling::frame_block;
using mummi::coupling::frame_meta;
using mummi::coupling::frame_store;
using mummi::coupling::frame_store_options;
using mummi::coupling::read_frames;
using mummi::coupling::store_error;
using mummi::test::temp_dir;

namespace {

frame_store_options options(std::size_t atoms, std::size_t chunk_frames = 4, int deflate = 4,
                            std::string description = "test selection") {
  frame_store_options o;
  o.atoms = atoms;
  o.chunk_frames = chunk_frames;
  o.deflate_level = deflate;
  o.description = std::move(description);
  return o;
}

/// `frames` frames of random coordinates spanning signs and magnitudes (tiny, subnormal,
/// large, negative zero) with distinct metadata; `first` numbers the frames.
frame_block random_block(std::size_t atoms, std::size_t frames, std::uint32_t seed,
                         std::size_t first = 0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-25.0f, 25.0f);
  std::uniform_int_distribution<int> exponent(-40, 38);
  const std::array<float, 6> specials = {-0.0f,
                                         std::numeric_limits<float>::denorm_min(),
                                         -std::numeric_limits<float>::min(),
                                         std::numeric_limits<float>::max(),
                                         -std::numeric_limits<float>::max(),
                                         1e-30f};
  frame_block b;
  b.atoms = atoms;
  for (std::size_t f = 0; f < frames; ++f) {
    frame_meta m;
    m.step = static_cast<std::int64_t>((first + f) * 25000) - 7;
    m.time_ps = static_cast<double>(first + f) * 500.0 + 1.0 / 3.0;
    m.label = static_cast<std::int32_t>((first + f) % 3) - 1;
    m.source = (std::int64_t{1} << 40) + static_cast<std::int64_t>(first + f);
    b.meta.push_back(m);
    for (std::size_t k = 0; k < atoms * 3; ++k) {
      const auto pick = rng() % 4;
      float x = uniform(rng);
      if (pick == 1)
        x *= std::pow(10.0f, static_cast<float>(exponent(rng)) / 2.0f);
      else if (pick == 2)
        x = specials[rng() % specials.size()];
      b.positions_nm.push_back(x);
    }
  }
  return b;
}

std::vector<std::uint32_t> bits(const std::vector<float>& values) {
  std::vector<std::uint32_t> out(values.size());
  std::memcpy(out.data(), values.data(), values.size() * sizeof(float));
  return out;
}

/// Same atom count, bit-identical coordinates, equal metadata.
void expect_same(const frame_block& got, const frame_block& want) {
  EXPECT_EQ(got.atoms, want.atoms);
  ASSERT_EQ(got.frames(), want.frames());
  EXPECT_EQ(bits(got.positions_nm), bits(want.positions_nm));
  for (std::size_t i = 0; i < want.frames(); ++i) {
    EXPECT_EQ(got.meta[i].step, want.meta[i].step) << "frame " << i;
    EXPECT_EQ(std::memcmp(&got.meta[i].time_ps, &want.meta[i].time_ps, sizeof(double)), 0)
      << "frame " << i;
    EXPECT_EQ(got.meta[i].label, want.meta[i].label) << "frame " << i;
    EXPECT_EQ(got.meta[i].source, want.meta[i].source) << "frame " << i;
  }
}

/// Frames [first, first + count) of `b`.
frame_block slice(const frame_block& b, std::size_t first, std::size_t count) {
  frame_block out;
  out.atoms = b.atoms;
  const auto n = b.atoms * 3;
  out.positions_nm.assign(b.positions_nm.begin() + static_cast<std::ptrdiff_t>(first * n),
                          b.positions_nm.begin()
                            + static_cast<std::ptrdiff_t>((first + count) * n));
  out.meta.assign(b.meta.begin() + static_cast<std::ptrdiff_t>(first),
                  b.meta.begin() + static_cast<std::ptrdiff_t>(first + count));
  return out;
}

void expect_store_error(const std::function<void()>& f, const fs::path& path,
                        const std::vector<std::string>& words) {
  mummi::test::expect_path_error<store_error>(f, path, words);
}

/// The standard output of a shell command; fails the test when it does not exit with 0.
std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return out;
  }
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    out.append(buffer, n);
  const int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
    << command << " failed (is hdf5-tools installed?):\n"
    << out;
  return out;
}

/// The numbers between "DATA {" and its closing "}" of h5dump output.
std::vector<std::string> dumped_values(const std::string& dump) {
  const auto open = dump.find("DATA {");
  if (open == std::string::npos)
    return {};
  const auto close = dump.find('}', open + 6);
  std::vector<std::string> out;
  std::string token;
  for (auto c : dump.substr(open + 6, close - open - 6)) {
    if (c == ',' || c == ' ' || c == '\n') {
      if (!token.empty())
        out.push_back(token);
      token.clear();
    } else {
      token += c;
    }
  }
  if (!token.empty())
    out.push_back(token);
  return out;
}

// -- HDF5 files made directly with the C API, right or wrong in chosen ways ------------------

struct fake_dataset {
  std::string name;
  hid_t type;
  std::vector<hsize_t> dims;
  bool extendible = true;
};

struct fake_store {
  std::vector<fake_dataset> datasets;
  std::vector<std::pair<std::string, int>> int_attributes;
  std::string description = "hand made";
  bool variable_length_description = false;
};

/// A frame store of `frames` frames of `atoms` atoms, as the layout prescribes.
fake_store good_layout(hsize_t frames, hsize_t atoms) {
  fake_store s;
  s.datasets = {{"positions", H5T_IEEE_F32LE, {frames, atoms, 3}},
                {"step", H5T_STD_I64LE, {frames}},
                {"time_ps", H5T_IEEE_F64LE, {frames}},
                {"label", H5T_STD_I32LE, {frames}},
                {"source", H5T_STD_I64LE, {frames}}};
  s.int_attributes = {{"mummi_format", 1}, {"atoms", static_cast<int>(atoms)}};
  return s;
}

fake_dataset& dataset(fake_store& s, const std::string& name) {
  for (auto& d : s.datasets)
    if (d.name == name)
      return d;
  throw std::logic_error("no dataset " + name);
}

void remove_dataset(fake_store& s, const std::string& name) {
  std::erase_if(s.datasets, [&name](const fake_dataset& d) {
    return d.name == name;
  });
}

/// Writes `s` as /frames of a new HDF5 file (the data are the fill value, zeros).
void write_fake(const fs::path& path, const fake_store& s) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t group = H5Gcreate2(file, "frames", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(group, 0);
  for (const auto& [name, value] : s.int_attributes) {
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr
      = H5Acreate2(group, name.c_str(), H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(H5Awrite(attr, H5T_NATIVE_INT, &value), 0);
    H5Aclose(attr);
    H5Sclose(space);
  }
  {
    const hid_t type = H5Tcopy(H5T_C_S1);
    const char* text = s.description.c_str();
    H5Tset_size(type,
                s.variable_length_description ? static_cast<std::size_t>(-1)
                                              : s.description.size() + 1);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(group, "description", type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (s.variable_length_description)
      EXPECT_GE(H5Awrite(attr, type, static_cast<const void*>(&text)), 0);
    else
      EXPECT_GE(H5Awrite(attr, type, text), 0);
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
  }
  for (const auto& d : s.datasets) {
    std::vector<hsize_t> max = d.dims;
    std::vector<hsize_t> chunk = d.dims;
    if (d.extendible)
      max[0] = static_cast<hsize_t>(-1);
    for (auto& c : chunk)
      c = std::max<hsize_t>(c, 1);
    const auto rank = static_cast<int>(d.dims.size());
    const hid_t space = H5Screate_simple(rank, d.dims.data(), max.data());
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (d.extendible)
      H5Pset_chunk(dcpl, rank, chunk.data());
    const hid_t dset
      = H5Dcreate2(group, d.name.c_str(), d.type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    EXPECT_GE(dset, 0) << d.name;
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  H5Gclose(group);
  H5Fclose(file);
}

void write_store(const fs::path& path, const frame_block& block, const frame_store_options& o) {
  auto store = frame_store::create(path, o);
  store.append(block);
}

// -- round trips ----------------------------------------------------------------------------

TEST(frame_store, round_trip_keeps_exact_bits) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  const auto block = random_block(7, 10, 1);
  {
    auto store = frame_store::create(path, options(7, 4, 4, "CA atoms of RAS"));
    EXPECT_EQ(store.path(), path);
    EXPECT_EQ(store.atom_count(), 7U);
    EXPECT_EQ(store.frame_count(), 0U);
    store.append(block);
    EXPECT_EQ(store.frame_count(), 10U);
    expect_same(store.read_all(), block);
  }
  const auto store = frame_store::open(path);
  EXPECT_EQ(store.atom_count(), 7U);
  EXPECT_EQ(store.frame_count(), 10U);
  EXPECT_EQ(store.description(), "CA atoms of RAS");
  expect_same(store.read_all(), block);
  const auto one = store.read(3, 1);
  ASSERT_EQ(one.frames(), 1U);
  EXPECT_EQ(bits({one.frame(0).begin(), one.frame(0).end()}),
            bits({block.frame(3).begin(), block.frame(3).end()}));
}

TEST(frame_store, appends_in_batches_across_a_reopen) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  const auto all = random_block(5, 10, 2);
  {
    auto store = frame_store::create(path, options(5, 4));
    store.append(slice(all, 0, 3));
  }
  {
    auto store = frame_store::open(path, frame_store::mode::append);
    EXPECT_EQ(store.frame_count(), 3U);
    store.append(slice(all, 3, 5));
    store.append(frame_block{5, {}, {}}); // no frames: nothing to do
    store.append(slice(all, 8, 2));
    EXPECT_EQ(store.frame_count(), 10U);
  }
  expect_same(frame_store::open(path).read_all(), all);
}

class frame_store_deflate : public ::testing::TestWithParam<int> {};

TEST_P(frame_store_deflate, reads_across_chunk_boundaries_and_clamps) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  const auto all = random_block(3, 10, 3);
  write_store(path, all, options(3, 4, GetParam()));
  const auto store = frame_store::open(path);
  expect_same(store.read_all(), all);
  expect_same(store.read(3, 5), slice(all, 3, 5)); // chunks 0, 1 and 2
  expect_same(store.read(7, 1), slice(all, 7, 1));
  expect_same(store.read(8, 100), slice(all, 8, 2)); // clamped to the end
  for (const auto& [first, count] :
       std::vector<std::pair<std::size_t, std::size_t>>{{10, 1}, {50, 2}, {0, 0}}) {
    const auto none = store.read(first, count);
    EXPECT_EQ(none.frames(), 0U);
    EXPECT_TRUE(none.positions_nm.empty());
    EXPECT_EQ(none.atoms, 3U);
  }
}

INSTANTIATE_TEST_SUITE_P(levels, frame_store_deflate, ::testing::Values(0, 1, 9));

TEST(frame_store, deflate_shrinks_a_compressible_block) {
  temp_dir dir;
  frame_block block;
  block.atoms = 500;
  for (std::size_t f = 0; f < 200; ++f) {
    block.meta.push_back(frame_meta{});
    for (std::size_t k = 0; k < block.atoms * 3; ++k)
      block.positions_nm.push_back(static_cast<float>(k % 30) * 0.5f);
  }
  const auto raw_bytes = block.positions_nm.size() * sizeof(float);
  write_store(dir / "plain.h5", block, options(500, 64, 0));
  write_store(dir / "packed.h5", block, options(500, 64, 9));
  EXPECT_GE(fs::file_size(dir / "plain.h5"), raw_bytes);
  EXPECT_LT(fs::file_size(dir / "packed.h5"), raw_bytes / 10);
  expect_same(frame_store::open(dir / "packed.h5").read_all(), block);
}

TEST(frame_store, h5dump_reads_what_was_written) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  frame_block block;
  block.atoms = 2;
  for (int f = 0; f < 6; ++f) {
    frame_meta m;
    m.step = f * 25000;
    m.time_ps = f * 500.0 + 0.25;
    m.label = f % 2 == 0 ? mummi::coupling::state_a : mummi::coupling::no_label;
    m.source = 40 + f;
    block.meta.push_back(m);
    for (int k = 0; k < 6; ++k)
      block.positions_nm.push_back(static_cast<float>(f) - 1.0f + static_cast<float>(k) * 0.25f);
  }
  write_store(path, block, options(2, 4, 9, "backbone beads"));

  const auto positions = run("h5dump -d /frames/positions -y -w 0 " + path.string());
  EXPECT_NE(positions.find("H5T_IEEE_F32LE"), std::string::npos) << positions;
  EXPECT_NE(positions.find("SIMPLE { ( 6, 2, 3 ) / ( H5S_UNLIMITED, 2, 3 ) }"), std::string::npos)
    << positions;
  const auto values = dumped_values(positions);
  ASSERT_EQ(values.size(), block.positions_nm.size()) << positions;
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(std::stof(values[i]), block.positions_nm[i]) << "value " << i;

  const auto step = run("h5dump -d /frames/step -y -w 0 " + path.string());
  EXPECT_NE(step.find("H5T_STD_I64LE"), std::string::npos) << step;
  EXPECT_NE(step.find("SIMPLE { ( 6 ) / ( H5S_UNLIMITED ) }"), std::string::npos) << step;
  EXPECT_EQ(dumped_values(step),
            (std::vector<std::string>{"0", "25000", "50000", "75000", "100000", "125000"}));
  const auto time = run("h5dump -d /frames/time_ps -y -w 0 " + path.string());
  EXPECT_NE(time.find("H5T_IEEE_F64LE"), std::string::npos) << time;
  EXPECT_EQ(
    dumped_values(time),
    (std::vector<std::string>{"0.25", "500.25", "1000.25", "1500.25", "2000.25", "2500.25"}));
  const auto label = run("h5dump -d /frames/label -y -w 0 " + path.string());
  EXPECT_NE(label.find("H5T_STD_I32LE"), std::string::npos) << label;
  EXPECT_EQ(dumped_values(label), (std::vector<std::string>{"0", "-1", "0", "-1", "0", "-1"}));
  const auto source = run("h5dump -d /frames/source -y -w 0 " + path.string());
  EXPECT_EQ(dumped_values(source), (std::vector<std::string>{"40", "41", "42", "43", "44", "45"}));

  // Attributes, and the storage layout: chunks of 4 frames, shuffle then deflate 9.
  const auto attributes = run("h5dump -A " + path.string());
  EXPECT_NE(attributes.find("ATTRIBUTE \"mummi_format\" {\n         DATATYPE  H5T_STD_I32LE\n"
                            "         DATASPACE  SCALAR\n         DATA {\n         (0): 1\n"),
            std::string::npos)
    << attributes;
  EXPECT_NE(attributes.find("ATTRIBUTE \"atoms\" {\n         DATATYPE  H5T_STD_I32LE\n"
                            "         DATASPACE  SCALAR\n         DATA {\n         (0): 2\n"),
            std::string::npos)
    << attributes;
  EXPECT_NE(attributes.find("(0): \"backbone beads\""), std::string::npos) << attributes;
  const auto layout = run("h5dump -p -H -d /frames/positions " + path.string());
  EXPECT_NE(layout.find("CHUNKED ( 4, 2, 3 )"), std::string::npos) << layout;
  const auto shuffle = layout.find("PREPROCESSING SHUFFLE");
  const auto deflate = layout.find("COMPRESSION DEFLATE { LEVEL 9 }");
  EXPECT_NE(shuffle, std::string::npos) << layout;
  EXPECT_NE(deflate, std::string::npos) << layout;
  EXPECT_LT(shuffle, deflate) << layout;
  const auto step_layout = run("h5dump -p -H -d /frames/step " + path.string());
  EXPECT_NE(step_layout.find("CHUNKED ( 4 )"), std::string::npos) << step_layout;
}

TEST(frame_store, reads_stores_made_by_other_writers) {
  temp_dir dir;
  // Contiguous (not extendible) datasets and a variable-length description: readable,
  // just not appendable.
  auto layout = good_layout(3, 4);
  for (auto& d : layout.datasets)
    d.extendible = false;
  layout.variable_length_description = true;
  layout.description = "from another tool";
  write_fake(dir / "a.h5", layout);
  {
    const auto store = frame_store::open(dir / "a.h5");
    EXPECT_EQ(store.frame_count(), 3U);
    EXPECT_EQ(store.atom_count(), 4U);
    EXPECT_EQ(store.description(), "from another tool");
    const auto block = store.read_all();
    EXPECT_EQ(block.positions_nm, std::vector<float>(3 * 4 * 3, 0.0f));
    expect_store_error(
      [&] {
        frame_store::open(dir / "a.h5", frame_store::mode::append);
      },
      dir / "a.h5", {"it is open read-only in this process"});
  }
  expect_store_error(
    [&] {
      frame_store::open(dir / "a.h5", frame_store::mode::append);
    },
    dir / "a.h5", {"/frames/positions: not extendible", "/frames/step: not extendible"});
}

TEST(frame_store, reads_several_stores_into_one_block) {
  temp_dir dir;
  const auto all = random_block(4, 9, 4);
  write_store(dir / "a.h5", slice(all, 0, 5), options(4));
  write_store(dir / "b.h5", slice(all, 5, 0), options(4));
  write_store(dir / "c.h5", slice(all, 5, 4), options(4, 2, 0));
  expect_same(read_frames({dir / "a.h5", dir / "b.h5", dir / "c.h5"}), all);
  EXPECT_EQ(read_frames({}).frames(), 0U);

  write_store(dir / "d.h5", random_block(6, 2, 5), options(6));
  expect_store_error(
    [&] {
      read_frames({dir / "a.h5", dir / "d.h5"});
    },
    dir / "d.h5", {"has 6 atoms per frame", (dir / "a.h5").string() + " has 4"});
  expect_store_error(
    [&] {
      read_frames({dir / "a.h5", dir / "missing.h5"});
    },
    dir / "missing.h5", {"no such file"});
}

TEST(frame_block, append_checks_atom_counts) {
  frame_block all;
  all.append(random_block(3, 2, 6));
  EXPECT_EQ(all.atoms, 3U);
  all.append(random_block(3, 1, 7));
  EXPECT_EQ(all.frames(), 3U);
  EXPECT_EQ(all.positions_nm.size(), 27U);
  EXPECT_THROW(all.append(random_block(4, 1, 8)), std::invalid_argument);
  auto broken = random_block(3, 2, 9);
  broken.positions_nm.pop_back();
  EXPECT_THROW(all.append(broken), std::invalid_argument);
  EXPECT_EQ(all.frames(), 3U);
}

// -- lifetime -------------------------------------------------------------------------------

TEST(frame_store, moved_from_store_is_safe) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  auto store = frame_store::create(path, options(2));
  store.append(random_block(2, 3, 10));
  frame_store moved(std::move(store));
  EXPECT_EQ(moved.frame_count(), 3U);
  // NOLINTBEGIN(bugprone-use-after-move): the moved-from state is what is tested.
  EXPECT_EQ(store.frame_count(), 0U);
  EXPECT_EQ(store.atom_count(), 0U);
  EXPECT_TRUE(store.path().empty());
  EXPECT_TRUE(store.description().empty());
  EXPECT_THROW(store.append(random_block(2, 1, 11)), std::logic_error);
  EXPECT_THROW(static_cast<void>(store.read_all()), std::logic_error);
  // NOLINTEND(bugprone-use-after-move)

  // Assigning over a store closes it: the file can then be opened for appending again.
  write_store(dir / "b.h5", random_block(2, 1, 12), options(2));
  moved = frame_store::open(dir / "b.h5");
  auto again = frame_store::open(path, frame_store::mode::append);
  EXPECT_EQ(again.frame_count(), 3U);
}

/// Runs `write` on `path` in a child process that then dies without closing anything, as a
/// crashed writer does.
void crash_after(const std::function<void()>& write) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      write();
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0); // unreachable when `write` exits itself
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(frame_store, flushed_frames_survive_a_crashed_writer) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  const auto block = random_block(6, 9, 13);
  crash_after([&] {
    auto store = frame_store::create(path, options(6, 4));
    store.append(slice(block, 0, 5));
    store.append(slice(block, 5, 4));
    store.flush();
    ::_exit(0); // the store is never closed
  });
  // The file keeps HDF5's "open for writing" mark until it is cleared.
  expect_store_error(
    [&] {
      frame_store::open(path);
    },
    path, {"not closed by its last writer", "h5clear -s " + path.string()});
  expect_store_error(
    [&] {
      frame_store::open(path, frame_store::mode::append);
    },
    path, {"not closed by its last writer"});
  run("h5clear -s " + path.string());
  expect_same(frame_store::open(path).read_all(), block);

  // A new writer carries on where the crashed one stopped.
  const auto more = random_block(6, 2, 23, 9);
  frame_store::open(path, frame_store::mode::append).append(more);
  auto all = block;
  all.append(more);
  expect_same(frame_store::open(path).read_all(), all);

  // The control: frames appended after the last flush die with the writer.
  const auto lost = dir / "b.h5";
  crash_after([&] {
    auto store = frame_store::create(lost, options(6, 4));
    store.append(block);
    ::_exit(0);
  });
  run("h5clear -s " + lost.string());
  EXPECT_EQ(frame_store::open(lost).frame_count(), 0U);
}

TEST(frame_store, one_writer_per_file) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  write_store(path, random_block(2, 1, 14), options(2));
  {
    auto writer = frame_store::open(path, frame_store::mode::append);
    expect_store_error(
      [&] {
        frame_store::open(path, frame_store::mode::append);
      },
      path, {"already open in this process"});
  }
  // Another process holding the file open for writing locks out this one.
  int ready[2];
  int done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c = 0;
    try {
      auto writer = frame_store::open(path, frame_store::mode::append);
      c = 1;
      static_cast<void>(::write(ready[1], &c, 1));
      static_cast<void>(::read(done[0], &c, 1));
    } catch (...) {
      static_cast<void>(::write(ready[1], &c, 1));
    }
    ::_exit(0);
  }
  char opened = 0;
  ASSERT_EQ(::read(ready[0], &opened, 1), 1);
  EXPECT_EQ(opened, 1);
  expect_store_error(
    [&] {
      frame_store::open(path, frame_store::mode::append);
    },
    path, {"another process has it open for writing"});
  const char c = 0;
  EXPECT_EQ(::write(done[1], &c, 1), 1);
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  for (int fd : {ready[0], ready[1], done[0], done[1]})
    ::close(fd);
  EXPECT_EQ(frame_store::open(path, frame_store::mode::append).frame_count(), 1U);
}

// -- create errors --------------------------------------------------------------------------

TEST(frame_store, create_refuses_an_existing_file) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  std::ofstream(path) << "precious";
  expect_store_error(
    [&] {
      frame_store::create(path, options(2));
    },
    path, {"already exists"});
  std::ifstream in(path);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");

  write_store(dir / "b.h5", random_block(2, 2, 15), options(2));
  expect_store_error(
    [&] {
      frame_store::create(dir / "b.h5", options(2));
    },
    dir / "b.h5", {"already exists"});
  EXPECT_EQ(frame_store::open(dir / "b.h5").frame_count(), 2U);
}

TEST(frame_store, create_names_a_missing_parent_directory) {
  temp_dir dir;
  const auto path = dir / "no" / "such" / "a.h5";
  expect_store_error(
    [&] {
      frame_store::create(path, options(2));
    },
    path, {"parent directory " + (dir / "no" / "such").string() + " does not exist"});
  EXPECT_FALSE(fs::exists(dir / "no"));
}

TEST(frame_store, create_reports_every_bad_option) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  auto o = options(0, 0, 12);
  expect_store_error(
    [&] {
      frame_store::create(path, o);
    },
    path, {"atoms must be > 0", "chunk_frames must be > 0", "deflate_level 12 is outside 0..9"});
  o = options(100000, 4000);
  expect_store_error(
    [&] {
      frame_store::create(path, o);
    },
    path, {"4 GiB chunk limit"});
  o = options(3, 4, -1);
  expect_store_error(
    [&] {
      frame_store::create(path, o);
    },
    path, {"deflate_level -1"});
  EXPECT_FALSE(fs::exists(path));
}

// -- open errors ----------------------------------------------------------------------------

TEST(frame_store, open_rejects_files_that_are_not_stores) {
  temp_dir dir;
  expect_store_error(
    [&] {
      frame_store::open(dir / "missing.h5");
    },
    dir / "missing.h5", {"no such file"});
  fs::create_directory(dir / "folder.h5");
  expect_store_error(
    [&] {
      frame_store::open(dir / "folder.h5");
    },
    dir / "folder.h5", {"is a directory"});
  std::ofstream(dir / "text.h5") << "frame 1\n0.1 0.2 0.3\n";
  expect_store_error(
    [&] {
      frame_store::open(dir / "text.h5");
    },
    dir / "text.h5", {"not an HDF5 file", "20 bytes"});
  std::ofstream{dir / "empty.h5"};
  expect_store_error(
    [&] {
      frame_store::open(dir / "empty.h5");
    },
    dir / "empty.h5", {"not an HDF5 file", "0 bytes"});

  const hid_t file = H5Fcreate((dir / "other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  H5Gclose(H5Gcreate2(file, "trajectory", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Fclose(file);
  expect_store_error(
    [&] {
      frame_store::open(dir / "other.h5");
    },
    dir / "other.h5", {"without a /frames group"});
}

TEST(frame_store, open_rejects_damaged_stores) {
  temp_dir dir;
  const auto good = dir / "good.h5";
  write_store(good, random_block(50, 40, 16), options(50, 8, 1));
  const auto size = fs::file_size(good);

  fs::copy_file(good, dir / "truncated.h5");
  fs::resize_file(dir / "truncated.h5", size / 2);
  expect_store_error(
    [&] {
      frame_store::open(dir / "truncated.h5");
    },
    dir / "truncated.h5", {"cannot open the HDF5 file", "truncated"});
  expect_store_error(
    [&] {
      frame_store::open(dir / "truncated.h5", frame_store::mode::append);
    },
    dir / "truncated.h5", {"cannot open the HDF5 file for appending", "truncated"});

  // The superblock overwritten: no signature left.
  fs::copy_file(good, dir / "scribbled.h5");
  {
    std::fstream f(dir / "scribbled.h5", std::ios::in | std::ios::out | std::ios::binary);
    const std::string junk(64, 'x');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  expect_store_error(
    [&] {
      frame_store::open(dir / "scribbled.h5");
    },
    dir / "scribbled.h5", {"not an HDF5 file"});
  EXPECT_EQ(frame_store::open(good).frame_count(), 40U);
}

TEST(frame_store, open_reports_every_layout_problem_at_once) {
  temp_dir dir;
  const auto path = dir / "bad.h5";
  auto layout = good_layout(10, 4);
  dataset(layout, "positions").dims = {10, 12};
  dataset(layout, "step").type = H5T_IEEE_F64LE;
  dataset(layout, "label").type = H5T_STD_U32LE;
  dataset(layout, "source").dims = {9};
  remove_dataset(layout, "time_ps");
  layout.int_attributes = {{"mummi_format", 2}};
  write_fake(path, layout);
  expect_store_error(
    [&] {
      frame_store::open(path);
    },
    path,
    {"not a frame store of format 1", "unsupported mummi_format 2 (this build reads format 1)",
     "/frames attribute atoms: missing", "/frames/positions: rank 2, expected 3",
     "/frames/step: element type is float64, expected int64", "/frames/time_ps: missing",
     "/frames/label: element type is uint32, expected int32",
     "differ in length (frames): step 10, label 10, source 9"});
}

struct layout_case {
  std::string name;
  std::function<void(fake_store&)> damage;
  std::string expected;
};

class frame_store_layout : public ::testing::TestWithParam<layout_case> {};

TEST_P(frame_store_layout, open_names_the_problem) {
  temp_dir dir;
  const auto path = dir / "bad.h5";
  auto layout = good_layout(10, 4);
  GetParam().damage(layout);
  write_fake(path, layout);
  expect_store_error(
    [&] {
      frame_store::open(path);
    },
    path, {"not a frame store of format 1", GetParam().expected});
}

INSTANTIATE_TEST_SUITE_P(
  cases, frame_store_layout,
  ::testing::Values(
    layout_case{"lengths",
                [](fake_store& s) {
                  dataset(s, "time_ps").dims = {11};
                },
                "differ in length (frames): positions 10, step 10, time_ps 11, label 10, "
                "source 10"},
    layout_case{"format",
                [](fake_store& s) {
                  s.int_attributes[0].second = 7;
                },
                "unsupported mummi_format 7"},
    layout_case{"atoms_attribute",
                [](fake_store& s) {
                  s.int_attributes[1].second = 5;
                },
                "/frames/positions holds 4 atoms per frame, but attribute atoms says 5"},
    layout_case{"xyz",
                [](fake_store& s) {
                  dataset(s, "positions").dims = {10, 4, 4};
                },
                "/frames/positions: last dimension is 4, expected 3"},
    layout_case{"double_positions",
                [](fake_store& s) {
                  dataset(s, "positions").type = H5T_IEEE_F64LE;
                },
                "/frames/positions: element type is float64, expected float32"},
    layout_case{"narrow_step",
                [](fake_store& s) {
                  dataset(s, "step").type = H5T_STD_I32LE;
                },
                "/frames/step: element type is int32, expected int64"},
    layout_case{"label_rank",
                [](fake_store& s) {
                  dataset(s, "label").dims = {10, 1};
                },
                "/frames/label: rank 2, expected 1"},
    layout_case{"no_format",
                [](fake_store& s) {
                  s.int_attributes.erase(s.int_attributes.begin());
                },
                "/frames attribute mummi_format: missing"}),
  [](const ::testing::TestParamInfo<layout_case>& test) {
    return test.param.name;
  });

// -- append errors --------------------------------------------------------------------------

/// The file still holds exactly `want` (reopened from disk).
void expect_file_holds(const fs::path& path, const frame_block& want) {
  expect_same(frame_store::open(path).read_all(), want);
}

TEST(frame_store, append_rejects_bad_blocks_and_writes_nothing) {
  temp_dir dir;
  const auto path = dir / "a.h5";
  const auto first = random_block(3, 5, 17);
  {
    auto store = frame_store::create(path, options(3, 4));
    store.append(first);

    expect_store_error(
      [&] {
        store.append(random_block(4, 2, 18));
      },
      path, {"frames of 4 atoms to a store of 3 atoms"});
    auto short_block = random_block(3, 2, 19);
    short_block.positions_nm.pop_back();
    expect_store_error(
      [&] {
        store.append(short_block);
      },
      path, {"holds 17 coordinates, expected 2 frames x 3 atoms x 3 = 18"});

    auto nan_block = random_block(3, 4, 20);
    nan_block.positions_nm[2 * 9 + 1 * 3 + 1] = std::numeric_limits<float>::quiet_NaN();
    expect_store_error(
      [&] {
        store.append(nan_block);
      },
      path,
      {"frame 2 of the block (would be frame 7 of the store), atom 1, "
       "coordinate y is nan",
       "nothing was written"});
    auto inf_block = random_block(3, 4, 21);
    inf_block.positions_nm[3 * 9 + 2 * 3 + 2] = -std::numeric_limits<float>::infinity();
    expect_store_error(
      [&] {
        store.append(inf_block);
      },
      path, {"frame 3 of the block", "atom 2, coordinate z is -inf"});
    EXPECT_EQ(store.frame_count(), 5U);
    expect_same(store.read_all(), first);
  }
  expect_file_holds(path, first);

  auto reader = frame_store::open(path);
  expect_store_error(
    [&] {
      reader.append(random_block(3, 1, 22));
    },
    path, {"opened read-only", "mode::append"});
  EXPECT_EQ(reader.frame_count(), 5U);
}

} // namespace
