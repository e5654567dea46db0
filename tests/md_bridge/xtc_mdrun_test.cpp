// The XTC reader against real programs: mdrun's trajectory read while mdrun writes it, then
// compared with MDAnalysis (tests/md_bridge/xtc_oracle.py, /usr/bin/python3) and with GROMACS'
// own decoder (`gmx dump`); files written by MDAnalysis' XTC writer cover the encodings an
// LJ fluid does not reach (<= 9 atoms, water runs, integer ranges above 2^24 and 2^64).
//
// Exactness: MDAnalysis' XTC file class returns float32 positions in nm, decoded like GROMACS
// does (integer times the float reciprocal of the precision); ours must be the same bits. Its
// Universe returns float32 Angstrom, the nm value times 10 in float32: float(x_nm * 10.0f)
// must be the same bits too. `gmx dump` prints 6 significant digits: every coordinate must
// agree to that precision (half a unit of the 6th digit).

#include "mummi/md_bridge/xtc.hpp"

#include "mummi/coupling/child_process.hpp"
#include "mummi/md_bridge/errors.hpp"

#include "../support/md_files.hpp"

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace md = mummi::md;
namespace cpl = mummi::coupling;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path data_dir = fs::path(MD_TEST_DATA) / "xtc";

class xtc_mdrun : public ::testing::Test {
protected:
  cpl::spawn_options in_dir(const std::string& log) const {
    cpl::spawn_options o;
    o.working_directory = dir_;
    o.stdout_file = dir_ / (log + ".out");
    o.stderr_file = dir_ / (log + ".err");
    o.stdin_null = true;
    return o;
  }

  std::string log_tail(const std::string& log) const {
    const auto all = mummi::test::read_file(dir_ / (log + ".err"));
    return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
  }

  /// Runs a program to its end in the test directory; fails the test unless it exits 0.
  void run(const std::vector<std::string>& argv, const std::string& log,
           std::chrono::seconds timeout = 300s) {
    cpl::child_process p(argv, {}, in_dir(log));
    const auto status = p.wait_for(timeout);
    ASSERT_TRUE(status.has_value()) << argv[0] << " " << argv[1] << " did not finish";
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << argv[0] << " " << argv[1] << ": " << cpl::describe_wait_status(*status) << "\n"
      << log_tail(log);
  }

  mummi::test::temp_dir tmp_{"mummi-xtc-mdrun"};
  fs::path dir_ = tmp_.path();
};

/// The LJ fluid's start: a 12^3 lattice in a 6.5 nm box (as data/xtc/regenerate.sh builds).
void write_lattice_gro(const fs::path& path) {
  constexpr int n = 12;
  constexpr double box = 6.5;
  std::ofstream out(path);
  out << "LJ fluid on a 12^3 lattice\n" << n * n * n << "\n";
  int k = 0;
  char line[64];
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      for (int l = 0; l < n; ++l) {
        ++k;
        std::snprintf(line, sizeof line, "%5d%-5s%5s%5d%8.3f%8.3f%8.3f\n", k % 100000, "LJB", "LJ",
                      k % 100000, (i + 0.5) * box / n, (j + 0.5) * box / n, (l + 0.5) * box / n);
        out << line;
      }
  std::snprintf(line, sizeof line, "%10.5f%10.5f%10.5f\n", box, box, box);
  out << line;
}

struct oracle_frame {
  std::int64_t step = 0;
  float time_ps = 0;
  float precision = 0;
  std::array<float, 9> box_nm{};
  std::vector<float> x_nm;
  std::vector<float> x_angstrom;
};

std::vector<oracle_frame> read_dump(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  EXPECT_EQ(std::string(magic, 8), "XTCDUMP1");
  std::int32_t nframes = 0;
  std::int32_t natoms = 0;
  in.read(reinterpret_cast<char*>(&nframes), 4);
  in.read(reinterpret_cast<char*>(&natoms), 4);
  std::vector<oracle_frame> frames(static_cast<std::size_t>(nframes));
  const auto n = static_cast<std::size_t>(natoms) * 3;
  for (auto& f : frames) {
    in.read(reinterpret_cast<char*>(&f.step), 8);
    in.read(reinterpret_cast<char*>(&f.time_ps), 4);
    in.read(reinterpret_cast<char*>(&f.precision), 4);
    in.read(reinterpret_cast<char*>(f.box_nm.data()), 36);
    f.x_nm.resize(n);
    f.x_angstrom.resize(n);
    in.read(reinterpret_cast<char*>(f.x_nm.data()), static_cast<std::streamsize>(4 * n));
    in.read(reinterpret_cast<char*>(f.x_angstrom.data()), static_cast<std::streamsize>(4 * n));
  }
  EXPECT_TRUE(in.good()) << "short dump " << path;
  return frames;
}

std::uint32_t bits(float f) {
  return std::bit_cast<std::uint32_t>(f);
}

/// Every frame and atom bit-equal to MDAnalysis (see the file comment).
void expect_matches_mdanalysis(const std::vector<md::xtc_frame>& ours,
                               const std::vector<oracle_frame>& theirs) {
  ASSERT_EQ(ours.size(), theirs.size());
  std::size_t mismatches = 0;
  for (std::size_t k = 0; k < ours.size(); ++k) {
    const auto& a = ours[k];
    const auto& b = theirs[k];
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(bits(a.time_ps), bits(b.time_ps)) << "frame " << k;
    if (a.natoms > 9) {
      EXPECT_EQ(bits(a.precision), bits(b.precision)) << "frame " << k;
    }
    for (std::size_t c = 0; c < 9; ++c)
      EXPECT_EQ(bits(a.box_nm[c / 3][c % 3]), bits(b.box_nm[c])) << "frame " << k;
    ASSERT_EQ(a.positions_nm.size() * 3, b.x_nm.size()) << "frame " << k;
    for (std::size_t i = 0; i < a.positions_nm.size(); ++i)
      for (std::size_t d = 0; d < 3; ++d) {
        const float nm = a.positions_nm[i][d];
        if (bits(nm) != bits(b.x_nm[3 * i + d])
            || bits(nm * 10.0f) != bits(b.x_angstrom[3 * i + d])) {
          if (++mismatches <= 5)
            ADD_FAILURE() << "frame " << k << " atom " << i << " axis " << d << ": ours " << nm
                          << " nm, MDAnalysis " << b.x_nm[3 * i + d] << " nm / "
                          << b.x_angstrom[3 * i + d] << " A";
        }
      }
  }
  EXPECT_EQ(mismatches, 0u);
}

/// Frames bit-equal (header fields and positions).
void expect_same_frames(const std::vector<md::xtc_frame>& a, const std::vector<md::xtc_frame>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].step, b[k].step);
    EXPECT_EQ(a[k].offset, b[k].offset);
    ASSERT_EQ(a[k].positions_nm.size(), b[k].positions_nm.size());
    EXPECT_EQ(0,
              std::memcmp(a[k].positions_nm.data(), b[k].positions_nm.data(),
                          a[k].positions_nm.size() * sizeof(md::vec3)));
  }
}

/// `gmx dump -f xtc` parsed: per frame step and positions (6 significant digits).
struct gmx_frame {
  std::int64_t step = 0;
  std::vector<double> x;
};

std::vector<gmx_frame> parse_gmx_dump(const fs::path& text) {
  std::vector<gmx_frame> frames;
  std::ifstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (const auto s = line.find("step=");
        s != std::string::npos && line.find("natoms=") != std::string::npos) {
      frames.emplace_back();
      frames.back().step = std::stoll(line.substr(s + 5));
    } else if (const auto x = line.find_first_not_of(' ');
               x != std::string::npos && line.compare(x, 2, "x[") == 0 && !frames.empty()) {
      const auto open = line.find('{', x);
      std::string values = line.substr(open + 1, line.find('}', open) - open - 1);
      std::replace(values.begin(), values.end(), ',', ' ');
      std::istringstream v(values);
      double a = 0, b = 0, c = 0;
      v >> a >> b >> c;
      frames.back().x.insert(frames.back().x.end(), {a, b, c});
    }
  }
  return frames;
}

void expect_matches_gmx_dump(const std::vector<md::xtc_frame>& ours,
                             const std::vector<gmx_frame>& theirs) {
  ASSERT_EQ(ours.size(), theirs.size());
  std::size_t mismatches = 0;
  for (std::size_t k = 0; k < ours.size(); ++k) {
    EXPECT_EQ(ours[k].step, theirs[k].step);
    ASSERT_EQ(ours[k].positions_nm.size() * 3, theirs[k].x.size());
    for (std::size_t i = 0; i < ours[k].positions_nm.size(); ++i)
      for (std::size_t d = 0; d < 3; ++d) {
        const double printed = theirs[k].x[3 * i + d];
        const double mine = ours[k].positions_nm[i][d];
        if (std::abs(mine - printed) > 0.50001e-5 * std::abs(printed) + 1e-30 && ++mismatches <= 5)
          ADD_FAILURE() << "frame " << k << " atom " << i << " axis " << d << ": ours " << mine
                        << ", gmx dump " << printed;
      }
  }
  EXPECT_EQ(mismatches, 0u);
}

} // namespace

TEST_F(xtc_mdrun, streams_mdrun_output_while_it_is_written_and_matches_mdanalysis) {
  write_lattice_gro(dir_ / "conf.gro");
  run({"gmx", "grompp", "-f", (data_dir / "lj_fluid.mdp").string(), "-c", "conf.gro", "-p",
       (data_dir / "lj_fluid.top").string(), "-o", "topol.tpr", "-po", "mdout.mdp"},
      "grompp");
  const auto xtc = dir_ / "traj.xtc";
  md::xtc_stream_reader reader(xtc);
  std::vector<md::xtc_frame> streamed;
  std::size_t while_running = 0;
  std::size_t partial_looks = 0;
  {
    cpl::child_process mdrun(
      {"gmx", "mdrun", "-nt", "1", "-s", "topol.tpr", "-deffnm", "md", "-x", xtc.string()}, {},
      in_dir("mdrun"));
    const auto deadline = std::chrono::steady_clock::now() + 280s;
    while (mdrun.running() && std::chrono::steady_clock::now() < deadline) {
      if (auto f = reader.wait_next(20ms)) {
        streamed.push_back(std::move(*f));
        ++while_running;
      } else if (reader.pending_bytes() > 0) {
        ++partial_looks;
      }
    }
    const auto status = mdrun.wait_for(10s);
    ASSERT_TRUE(status.has_value()) << "mdrun did not finish";
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "mdrun: " << cpl::describe_wait_status(*status) << "\n"
      << log_tail("mdrun");
  }
  while (auto f = reader.try_next())
    streamed.push_back(std::move(*f));
  std::cout << "[ info ] " << while_running << " of " << streamed.size()
            << " frames read while mdrun ran; " << partial_looks
            << " looks found an incomplete frame\n";
  EXPECT_GT(while_running, 0u) << "the reader never saw a frame before mdrun ended";
  EXPECT_EQ(reader.pending_bytes(), 0u);
  ASSERT_EQ(streamed.size(), 301u); // nsteps 3000, a frame every 10 steps
  for (std::size_t k = 0; k < streamed.size(); ++k) {
    EXPECT_EQ(streamed[k].step, static_cast<std::int64_t>(10 * k));
    EXPECT_EQ(streamed[k].natoms, 1728u);
  }

  run({"/usr/bin/python3", "-W", "ignore", XTC_ORACLE, "dump", xtc.string(), "oracle.bin"},
      "oracle");
  expect_matches_mdanalysis(streamed, read_dump(dir_ / "oracle.bin"));

  expect_same_frames(md::read_xtc(xtc, {.leading_atoms = 0, .threads = 0}), streamed);
  auto leading = md::read_xtc(xtc, {.leading_atoms = 100, .threads = 2});
  for (auto& f : streamed)
    f.positions_nm.resize(100);
  expect_same_frames(leading, streamed);
}

TEST_F(xtc_mdrun, every_encoding_matches_mdanalysis_and_gmx_dump) {
  struct written {
    const char* kind;
    int atoms;
    double precision;
  };
  const written files[] = {
    {"uniform", 1, 1000},  {"uniform", 3, 1000},  {"uniform", 9, 1000}, // stored uncompressed
    {"uniform", 10, 1000}, {"uniform", 500, 10},  {"walk", 3000, 1000},
    {"walk", 3000, 100},   {"water", 2001, 1000}, {"wide", 400, 1000}, // triplet > 64 bits
    {"huge", 400, 1000}, // ranges > 2^24: three plain integers
  };
  // A copy: MDAnalysis writes an offsets cache next to the trajectory it reads.
  fs::copy_file(data_dir / "lj_fluid_short.xtc", dir_ / "lj_fluid_short.xtc");
  std::vector<fs::path> paths = {dir_ / "lj_fluid_short.xtc"};
  int seed = 1;
  for (const auto& w : files) {
    const auto name = std::string(w.kind) + std::to_string(w.atoms) + "_"
      + std::to_string(static_cast<int>(w.precision)) + ".xtc";
    run({"/usr/bin/python3", "-W", "ignore", XTC_ORACLE, "write", name, "--atoms",
         std::to_string(w.atoms), "--frames", "4", "--precision", std::to_string(w.precision),
         "--kind", w.kind, "--seed", std::to_string(seed++)},
        "write");
    paths.push_back(dir_ / name);
  }
  for (const auto& path : paths) {
    SCOPED_TRACE(path.filename().string());
    const auto frames = md::read_xtc(path);
    md::xtc_stream_reader reader(path);
    std::vector<md::xtc_frame> streamed;
    while (auto f = reader.try_next())
      streamed.push_back(std::move(*f));
    expect_same_frames(streamed, frames);

    run({"/usr/bin/python3", "-W", "ignore", XTC_ORACLE, "dump", path.string(), "oracle.bin"},
        "oracle");
    expect_matches_mdanalysis(frames, read_dump(dir_ / "oracle.bin"));

    cpl::spawn_options o = in_dir("dump");
    o.stdout_file = dir_ / "gmx_dump.txt";
    cpl::child_process dump({"gmx", "-quiet", "dump", "-f", path.string()}, {}, o);
    const auto status = dump.wait_for(120s);
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << log_tail("dump");
    expect_matches_gmx_dump(frames, parse_gmx_dump(dir_ / "gmx_dump.txt"));

    // Leading atoms: the prefix of the full decode.
    const std::size_t n = frames.front().natoms / 2 + 1;
    auto lead = md::read_xtc(path, {.leading_atoms = n, .threads = 2});
    auto prefix = frames;
    for (auto& f : prefix)
      f.positions_nm.resize(std::min<std::size_t>(n, f.natoms));
    expect_same_frames(lead, prefix);
  }
}
