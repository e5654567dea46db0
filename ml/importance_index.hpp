#pragma once

// The importance sampler's incremental k-nearest index (private to mummi::ml, its tests and
// bench/importance_bench). For every candidate it keeps the squared L2 distances to its k
// nearest selected points, sorted ascending; adding selected points updates every candidate
// with the new points' distances only (one matrix product per block, batched until the next
// `flush`), so ranking a batch costs O(candidates) instead of a new k-nearest search.
//
// Thread-safety: one thread at a time (the sampler's owner).

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mummi::ml {

class knn_distance_index {
public:
  /// `dims` coordinates per point, `k` neighbours per candidate (both > 0).
  knn_distance_index(std::size_t dims, std::size_t k);

  std::size_t dims() const noexcept {
    return dims_;
  }
  std::size_t k() const noexcept {
    return k_;
  }
  std::size_t candidate_count() const noexcept {
    return cand_norms_.size();
  }
  /// Selected points, those still waiting for `flush` included.
  std::size_t selected_count() const noexcept {
    return sel_norms_.size() + pending_.size() / dims_;
  }

  /// Appends `count` candidates (`dims` floats each); they are measured against every
  /// selected point at once.
  void add_candidates(const float* rows, std::size_t count);
  /// Adds `count` selected points; candidates take them in at the next `flush` (done by every
  /// call that reads distances).
  void add_selected(const float* rows, std::size_t count);
  /// Takes the pending selected points into every candidate's neighbour list.
  void flush();

  /// The ranks: for each candidate, the mean L2 distance to its min(k, selected) nearest
  /// selected points; +infinity when nothing is selected.
  void ranks(std::vector<float>& out);
  /// Indices of the `n` highest-ranked candidates (all when fewer), highest first; equal ranks
  /// in pool order.
  std::vector<std::size_t> top_ranked(std::size_t n);
  /// Indices of the `n` lowest-ranked candidates (all when fewer), lowest first; among equal
  /// ranks the later in the pool first.
  std::vector<std::size_t> bottom_ranked(std::size_t n);

  /// Removes candidates (distinct indices, any order): each removed slot, highest index first,
  /// takes the pool's last candidate (see `swap_remove`, which does the same to a parallel
  /// array).
  void remove_candidates(std::vector<std::size_t> indices);

  const float* candidate(std::size_t i) const noexcept {
    return cand_.data() + i * dims_;
  }
  /// Candidate i's k squared distances, ascending (+infinity where fewer were selected).
  /// Valid after `flush`.
  const float* neighbours(std::size_t i) const noexcept {
    return nb_.data() + i * k_;
  }

  /// Raw state, for checkpoints: candidates, their neighbour lists, selected points (flushed
  /// first).
  const std::vector<float>& candidate_values() const noexcept {
    return cand_;
  }
  const std::vector<float>& neighbour_values() const noexcept {
    return nb_;
  }
  const std::vector<float>& selected_values() const noexcept {
    return sel_;
  }
  /// Replaces the whole state (sizes checked by the caller: multiples of dims / k, same count).
  void assign(std::vector<float> candidates, std::vector<float> neighbours,
              std::vector<float> selected);

  /// Removes `indices` from a parallel array exactly as `remove_candidates` does.
  template <class T>
  static void swap_remove(std::vector<T>& values, std::vector<std::size_t> indices,
                          std::size_t row = 1);

private:
  static void sort_descending(std::vector<std::size_t>& indices);
  void measure(std::size_t first, std::size_t last, const float* sel, const float* sel_norms,
               std::size_t sel_count);

  std::size_t dims_;
  std::size_t k_;
  std::vector<float> cand_;       // candidates, dims_ each
  std::vector<float> cand_norms_; // their squared norms
  std::vector<float> nb_;         // k_ squared distances per candidate, ascending
  std::vector<float> sel_;        // selected points taken into nb_
  std::vector<float> sel_norms_;
  std::vector<float> pending_;    // selected points not yet taken into nb_
  std::vector<float> scratch_;
};

template <class T>
void knn_distance_index::swap_remove(std::vector<T>& values, std::vector<std::size_t> indices,
                                     std::size_t row) {
  sort_descending(indices);
  std::size_t n = values.size() / row;
  for (std::size_t i : indices) {
    --n;
    if (i != n) {
      for (std::size_t c = 0; c < row; ++c)
        values[i * row + c] = values[n * row + c];
    }
  }
  values.resize(n * row);
}

} // namespace mummi::ml
