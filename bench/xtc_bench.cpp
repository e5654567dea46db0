// XTC decoding throughput of mummi::md: whole frames with read_xtc (one thread or several, a
// fresh buffer per frame since it returns them all), frames one at a time with
// xtc_stream_reader (reusing one buffer, as an in-situ analysis does), whole or the leading
// atoms only (the protein). Every position is touched (summed; the sum is printed in full so
// that bench/xtc_bench.py can check it against MDAnalysis' on the same file). bench/xtc_bench.py
// makes the trajectory (a GROMACS run of a system built by mummi createsims) and runs
// MDAnalysis side by side.
//
//   xtc_bench --file traj.xtc [--mode whole|stream] [--threads N] [--leading N] [--repeat R]
//
// Prints one JSON line: {"mode":..., "threads":..., "leading":..., "frames":...,
// "seconds":..., "frames_per_s":..., "checksum":...} with the best of R repeats.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "mummi/md_bridge/xtc.hpp"

namespace md = mummi::md;
using clock_type = std::chrono::steady_clock;

namespace {

double sum_positions(const md::xtc_frame& f) {
  double s = 0;
  for (const auto& p : f.positions_nm)
    s += static_cast<double>(p[0]) + p[1] + p[2];
  return s;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"XTC decoding throughput of mummi::md"};
  std::string file;
  std::string mode = "whole";
  unsigned threads = 1;
  std::size_t leading = 0;
  int repeat = 3;
  app.add_option("--file", file, "XTC file")->required();
  app.add_option("--mode", mode, "whole (read_xtc) or stream (xtc_stream_reader)")
    ->check(CLI::IsMember({"whole", "stream"}));
  app.add_option("--threads", threads, "read_xtc threads (0 = all cores)");
  app.add_option("--leading", leading, "decode only the first N atoms (0 = all)");
  app.add_option("--repeat", repeat, "repeats; the best is reported")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  double best = 1e300;
  std::size_t frames = 0;
  double checksum = 0;
  try {
    for (int r = 0; r < repeat; ++r) {
      const auto start = clock_type::now();
      double sum = 0;
      std::size_t n = 0;
      if (mode == "whole") {
        const auto all = md::read_xtc(file, {.leading_atoms = leading, .threads = threads});
        for (const auto& f : all)
          sum += sum_positions(f);
        n = all.size();
      } else {
        md::xtc_stream_options options;
        options.leading_atoms = leading;
        md::xtc_stream_reader reader(file, options);
        md::xtc_frame frame; // reused: the positions buffer is allocated once
        while (reader.try_next(frame)) {
          sum += sum_positions(frame);
          ++n;
        }
      }
      best = std::min(best, std::chrono::duration<double>(clock_type::now() - start).count());
      frames = n;
      checksum = sum;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xtc_bench: %s\n", e.what());
    return 1;
  }
  std::printf("{\"mode\": \"%s\", \"threads\": %u, \"leading\": %zu, \"frames\": %zu, "
              "\"seconds\": %.6f, \"frames_per_s\": %.2f, \"checksum\": %.17g}\n",
              mode.c_str(), threads, leading, frames, best, static_cast<double>(frames) / best,
              checksum);
  return 0;
}
