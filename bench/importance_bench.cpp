// The importance sampler's k-nearest index on data written by bench/importance_bench.py:
// building it from scratch (every candidate against every selected point) and the steady-state
// batch (rank, take the top batch, take those into the other candidates' neighbour lists).
// Usage: importance_bench DIR CANDIDATES DIMS SELECTED BATCH ROUNDS
// Reads DIR/candidates.f32 and DIR/selected.f32 (row-major float32); writes
// DIR/mummi_top_R.txt (the original indices of round R's batch, best first) and prints
// "key value" lines.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "importance_index.hpp"

namespace {

std::vector<float> read_floats(const std::string& path, std::size_t count) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(path + ": cannot open");
  std::vector<float> v(count);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (in.gcount() != static_cast<std::streamsize>(count * sizeof(float)))
    throw std::runtime_error(path + ": shorter than " + std::to_string(count) + " floats");
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) try {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s DIR CANDIDATES DIMS SELECTED BATCH ROUNDS\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const auto n = std::stoul(argv[2]);
  const auto dims = std::stoul(argv[3]);
  const auto nsel = std::stoul(argv[4]);
  const auto batch = std::stoul(argv[5]);
  const auto rounds = std::stoul(argv[6]);
  const auto cand = read_floats(dir + "/candidates.f32", n * dims);
  const auto sel = read_floats(dir + "/selected.f32", nsel * dims);

  mummi::ml::knn_distance_index index(dims, 10);
  auto t0 = std::chrono::steady_clock::now();
  index.add_selected(sel.data(), nsel);
  index.add_candidates(cand.data(), n);
  index.flush();
  std::printf("build_s %.6f\n", seconds_since(t0));

  std::vector<std::size_t> original(n);
  for (std::size_t i = 0; i < n; ++i)
    original[i] = i;
  std::vector<double> batch_s;
  for (std::size_t r = 1; r <= rounds; ++r) {
    t0 = std::chrono::steady_clock::now();
    const auto top = index.top_ranked(batch);
    std::vector<float> rows;
    rows.reserve(top.size() * dims);
    for (std::size_t i : top)
      rows.insert(rows.end(), index.candidate(i), index.candidate(i) + dims);
    std::vector<std::size_t> ids;
    for (std::size_t i : top)
      ids.push_back(original[i]);
    index.remove_candidates(top);
    mummi::ml::knn_distance_index::swap_remove(original, top);
    index.add_selected(rows.data(), top.size());
    index.flush();
    batch_s.push_back(seconds_since(t0));
    std::ofstream out(dir + "/mummi_top_" + std::to_string(r) + ".txt");
    for (std::size_t id : ids)
      out << id << '\n';
  }
  std::sort(batch_s.begin(), batch_s.end());
  std::printf("batch_median_s %.6f\n", batch_s[batch_s.size() / 2]);
  std::printf("batch_min_s %.6f\n", batch_s.front());
  std::printf("batch_max_s %.6f\n", batch_s.back());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "importance_bench: %s\n", e.what());
  return 1;
}
