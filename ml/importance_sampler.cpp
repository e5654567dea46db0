// The `importance` sampler (dynim-style) and its incremental k-nearest index.
//
// Candidates are ranked by the mean L2 distance to their k nearest selected points (selected:
// returned by `select`, or simulation frames reported back); `select(n)` returns the n
// highest-ranked candidates, all ranked at once against the selected set as it stands (the
// batch does not re-rank itself). The index keeps every candidate's k nearest squared
// distances, so a selection costs one pass over the candidates plus a matrix product of the
// candidates with the newly selected points.

#include <algorithm>
#include <functional>
#include <memory>
#include <type_traits>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "importance_index.hpp"
#include "samplers.hpp"

#if defined(MUMMI_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace mummi::ml {

// ---------------------------------------------------------------------------------------------
// knn_distance_index

namespace {

constexpr float infinity = std::numeric_limits<float>::infinity();

// Block sizes of the distance products: a candidate block times a selected block of dot
// products stays in the L2 cache.
constexpr std::size_t candidate_block = 2048;
constexpr std::size_t selected_block = 128;

float squared_norm(const float* x, std::size_t dims) {
  float s = 0;
  for (std::size_t c = 0; c < dims; ++c)
    s += x[c] * x[c];
  return s;
}

// out[i * ns + j] = dot(a_i, b_j) for na rows of a and ns rows of b.
void dot_block(const float* a, std::size_t na, const float* b, std::size_t ns, std::size_t dims,
               float* out) {
#if defined(MUMMI_HAVE_CBLAS)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(na),
              static_cast<int>(ns), static_cast<int>(dims), 1.0F, a, static_cast<int>(dims), b,
              static_cast<int>(dims), 0.0F, out, static_cast<int>(ns));
#else
  for (std::size_t i = 0; i < na; ++i) {
    const float* ai = a + i * dims;
    for (std::size_t j = 0; j < ns; ++j) {
      const float* bj = b + j * dims;
      float s = 0;
      for (std::size_t c = 0; c < dims; ++c)
        s += ai[c] * bj[c];
      out[i * ns + j] = s;
    }
  }
#endif
}

// Inserts d into the ascending list nb[0..k) when it is smaller than the last entry.
inline void insert_sorted(float* nb, std::size_t k, float d) {
  std::size_t p = k - 1;
  while (p > 0 && nb[p - 1] > d) {
    nb[p] = nb[p - 1];
    --p;
  }
  nb[p] = d;
}

} // namespace

knn_distance_index::knn_distance_index(std::size_t dims, std::size_t k) : dims_(dims), k_(k) {
  if (dims == 0 || k == 0)
    throw std::invalid_argument("knn_distance_index: dims and k must be positive");
}

void knn_distance_index::sort_descending(std::vector<std::size_t>& indices) {
  std::sort(indices.begin(), indices.end(), std::greater<>());
  if (std::adjacent_find(indices.begin(), indices.end()) != indices.end())
    throw std::invalid_argument("knn_distance_index: an index is removed twice");
}

void knn_distance_index::measure(std::size_t first, std::size_t last, const float* sel,
                                 const float* sel_norms, std::size_t sel_count) {
  if (first >= last || sel_count == 0)
    return;
  scratch_.resize(candidate_block * selected_block);
  float* g = scratch_.data();
  for (std::size_t c0 = first; c0 < last; c0 += candidate_block) {
    const std::size_t nc = std::min(candidate_block, last - c0);
    for (std::size_t s0 = 0; s0 < sel_count; s0 += selected_block) {
      const std::size_t ns = std::min(selected_block, sel_count - s0);
      dot_block(cand_.data() + c0 * dims_, nc, sel + s0 * dims_, ns, dims_, g);
      for (std::size_t i = 0; i < nc; ++i) {
        float* nb = nb_.data() + (c0 + i) * k_;
        const float cn = cand_norms_[c0 + i];
        const float* gi = g + i * ns;
        const float* sn = sel_norms + s0;
        float worst = nb[k_ - 1];
        for (std::size_t j = 0; j < ns; ++j) {
          const float d = cn + sn[j] - 2.0F * gi[j];
          if (d < worst) {
            insert_sorted(nb, k_, std::max(d, 0.0F));
            worst = nb[k_ - 1];
          }
        }
      }
    }
  }
}

void knn_distance_index::add_candidates(const float* rows, std::size_t count) {
  const std::size_t first = candidate_count();
  cand_.insert(cand_.end(), rows, rows + count * dims_);
  cand_norms_.reserve(first + count);
  for (std::size_t i = 0; i < count; ++i)
    cand_norms_.push_back(squared_norm(rows + i * dims_, dims_));
  nb_.resize((first + count) * k_, infinity);
  measure(first, first + count, sel_.data(), sel_norms_.data(), sel_norms_.size());
}

void knn_distance_index::add_selected(const float* rows, std::size_t count) {
  pending_.insert(pending_.end(), rows, rows + count * dims_);
}

void knn_distance_index::flush() {
  if (pending_.empty())
    return;
  const std::size_t count = pending_.size() / dims_;
  std::vector<float> norms(count);
  for (std::size_t i = 0; i < count; ++i)
    norms[i] = squared_norm(pending_.data() + i * dims_, dims_);
  measure(0, candidate_count(), pending_.data(), norms.data(), count);
  sel_.insert(sel_.end(), pending_.begin(), pending_.end());
  sel_norms_.insert(sel_norms_.end(), norms.begin(), norms.end());
  pending_.clear();
}

void knn_distance_index::ranks(std::vector<float>& out) {
  flush();
  const std::size_t n = candidate_count();
  out.resize(n);
  const std::size_t m = std::min(k_, sel_norms_.size());
  if (m == 0) {
    std::fill(out.begin(), out.end(), infinity);
    return;
  }
  const float scale = 1.0F / static_cast<float>(m);
  for (std::size_t i = 0; i < n; ++i) {
    const float* nb = nb_.data() + i * k_;
    float s = 0;
    for (std::size_t j = 0; j < m; ++j)
      s += std::sqrt(nb[j]);
    out[i] = s * scale;
  }
}

std::vector<std::size_t> knn_distance_index::top_ranked(std::size_t n) {
  std::vector<float> r;
  ranks(r);
  n = std::min(n, r.size());
  std::vector<std::size_t> idx(r.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  auto higher = [&r](std::size_t a, std::size_t b) { return r[a] > r[b] || (r[a] == r[b] && a < b); };
  std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end(), higher);
  idx.resize(n);
  std::sort(idx.begin(), idx.end(), higher);
  return idx;
}

std::vector<std::size_t> knn_distance_index::bottom_ranked(std::size_t n) {
  std::vector<float> r;
  ranks(r);
  n = std::min(n, r.size());
  std::vector<std::size_t> idx(r.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  auto lower = [&r](std::size_t a, std::size_t b) { return r[a] < r[b] || (r[a] == r[b] && a > b); };
  std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end(), lower);
  idx.resize(n);
  std::sort(idx.begin(), idx.end(), lower);
  return idx;
}

void knn_distance_index::remove_candidates(std::vector<std::size_t> indices) {
  flush();
  for (std::size_t i : indices) {
    if (i >= candidate_count())
      throw std::out_of_range("knn_distance_index: candidate index out of range");
  }
  swap_remove(cand_, indices, dims_);
  swap_remove(nb_, indices, k_);
  swap_remove(cand_norms_, std::move(indices));
}

void knn_distance_index::assign(std::vector<float> candidates, std::vector<float> neighbours,
                                std::vector<float> selected) {
  cand_ = std::move(candidates);
  nb_ = std::move(neighbours);
  sel_ = std::move(selected);
  pending_.clear();
  const std::size_t n = cand_.size() / dims_;
  cand_norms_.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    cand_norms_[i] = squared_norm(cand_.data() + i * dims_, dims_);
  const std::size_t s = sel_.size() / dims_;
  sel_norms_.resize(s);
  for (std::size_t i = 0; i < s; ++i)
    sel_norms_[i] = squared_norm(sel_.data() + i * dims_, dims_);
}

// ---------------------------------------------------------------------------------------------
// The sampler

namespace {

constexpr std::string_view sampler_name = "importance";
constexpr std::string_view checkpoint_magic = "mummi.importance.checkpoint.v1";

[[noreturn]] void fail(const std::string& what) {
  throw sampler_error("importance sampler: " + what);
}

struct importance_params {
  std::size_t k = 10;                   ///< neighbours per rank
  std::size_t min_candidates = 100;     ///< no selection while the pool holds fewer
  std::size_t max_candidates = 35000;   ///< pool cap; the lowest-ranked are dropped
  std::size_t random_selections = 10;   ///< random picks until this many points are selected
  std::size_t initial_candidates = 1000; ///< random A-B interpolations added at construction
  bool include_ensembles = true;        ///< the ensembles' points are candidates too
};

bool parse_count(const std::string& text, std::size_t& out) {
  if (text.empty() || text.size() > 12)
    return false;
  std::size_t v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9')
      return false;
    v = v * 10 + static_cast<std::size_t>(ch - '0');
  }
  out = v;
  return true;
}

importance_params parse_params(const sampler_params& params) {
  importance_params p;
  std::vector<std::string> problems;
  auto count = [&](const std::string& key, const std::string& value, std::size_t& out,
                   std::size_t min) {
    std::size_t v = 0;
    if (!parse_count(value, v) || v < min) {
      problems.push_back("parameter '" + key + "' = '" + value + "': expected an integer >= " +
                         std::to_string(min));
      return;
    }
    out = v;
  };
  for (const auto& [key, value] : params) {
    if (key == "k")
      count(key, value, p.k, 1);
    else if (key == "min_candidates")
      count(key, value, p.min_candidates, 0);
    else if (key == "max_candidates")
      count(key, value, p.max_candidates, 1);
    else if (key == "random_selections")
      count(key, value, p.random_selections, 0);
    else if (key == "initial_candidates")
      count(key, value, p.initial_candidates, 0);
    else if (key == "include_ensembles") {
      if (value == "true")
        p.include_ensembles = true;
      else if (value == "false")
        p.include_ensembles = false;
      else
        problems.push_back("parameter 'include_ensembles' = '" + value +
                           "': expected true or false");
    } else {
      problems.push_back("unknown parameter '" + key +
                         "' (known: k, min_candidates, max_candidates, random_selections, "
                         "initial_candidates, include_ensembles)");
    }
  }
  if (problems.empty() && p.min_candidates > p.max_candidates)
    problems.push_back("parameter 'min_candidates' (" + std::to_string(p.min_candidates) +
                       ") exceeds 'max_candidates' (" + std::to_string(p.max_candidates) + ")");
  if (!problems.empty()) {
    std::string all;
    for (const auto& s : problems)
      all += (all.empty() ? "" : "; ") + s;
    fail(all);
  }
  return p;
}

void check_ensembles(const state_ensembles& states) {
  std::vector<std::string> problems;
  auto check = [&problems](const latent_points& pts, const char* name) {
    if (pts.dims == 0) {
      problems.push_back(std::string("ensemble ") + name + " has dims 0");
      return;
    }
    if (pts.values.size() % pts.dims != 0)
      problems.push_back(std::string("ensemble ") + name + " holds " +
                         std::to_string(pts.values.size()) + " values, not a multiple of dims " +
                         std::to_string(pts.dims));
    if (pts.values.empty())
      problems.push_back(std::string("ensemble ") + name + " is empty");
    for (std::size_t i = 0; i < pts.values.size(); ++i) {
      if (!std::isfinite(pts.values[i])) {
        problems.push_back(std::string("ensemble ") + name + " row " +
                           std::to_string(i / pts.dims) + " column " +
                           std::to_string(i % pts.dims) + " is not finite");
        break;
      }
    }
  };
  check(states.a, "A");
  check(states.b, "B");
  if (problems.empty() && states.a.dims != states.b.dims)
    problems.push_back("ensembles A and B differ in dims (" + std::to_string(states.a.dims) +
                       " and " + std::to_string(states.b.dims) + ")");
  if (!problems.empty()) {
    std::string all;
    for (const auto& s : problems)
      all += (all.empty() ? "" : "; ") + s;
    fail(all);
  }
}

// Where a candidate came from (reported with its selection).
struct candidate_origin {
  double lambda = -1;
  std::int64_t pair_a = -1;
  std::int64_t pair_b = -1;
};

// Little-endian byte writer/reader for checkpoints.
class byte_writer {
public:
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const char*>(&v);
    out_.append(p, sizeof(T));
  }
  template <class T>
  void put_vector(const std::vector<T>& v) {
    put<std::uint64_t>(v.size());
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  void put_string(std::string_view s) {
    put<std::uint64_t>(s.size());
    out_.append(s);
  }
  std::string take() {
    return std::move(out_);
  }

private:
  std::string out_;
};

class byte_reader {
public:
  explicit byte_reader(std::string_view bytes) : bytes_(bytes) {}
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> get_vector(const char* what) {
    const auto n = get<std::uint64_t>(what);
    if (n > (bytes_.size() - pos_) / sizeof(T))
      fail_at(what, "length " + std::to_string(n) + " runs past the end");
    std::vector<T> v(n);
    std::memcpy(v.data(), bytes_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }
  std::string get_string(const char* what) {
    const auto n = get<std::uint64_t>(what);
    need(n, what);
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  bool at_end() const noexcept {
    return pos_ == bytes_.size();
  }
  [[noreturn]] void fail_at(const char* what, const std::string& problem) const {
    fail("checkpoint byte " + std::to_string(pos_) + " (" + what + "): " + problem);
  }

private:
  void need(std::size_t n, const char* what) const {
    if (n > bytes_.size() - pos_)
      fail_at(what, "truncated (" + std::to_string(bytes_.size()) + " bytes in all)");
  }
  std::string_view bytes_;
  std::size_t pos_ = 0;
};

class importance_sampler final : public sampler {
public:
  importance_sampler(const state_ensembles& states, importance_params params,
                     std::uint64_t seed)
      : params_(params), dims_(states.a.dims), index_(states.a.dims, params.k), rng_(seed) {
    std::vector<float> rows;
    if (params_.include_ensembles) {
      for (std::size_t i = 0; i < states.a.size(); ++i) {
        rows.insert(rows.end(), states.a.row(i), states.a.row(i) + dims_);
        origins_.push_back({0.0, static_cast<std::int64_t>(i), -1});
      }
      for (std::size_t i = 0; i < states.b.size(); ++i) {
        rows.insert(rows.end(), states.b.row(i), states.b.row(i) + dims_);
        origins_.push_back({1.0, -1, static_cast<std::int64_t>(i)});
      }
    }
    for (std::size_t n = 0; n < params_.initial_candidates; ++n) {
      const std::size_t ia = uniform_index(states.a.size());
      const std::size_t ib = uniform_index(states.b.size());
      const double lambda = uniform01();
      const float* a = states.a.row(ia);
      const float* b = states.b.row(ib);
      for (std::size_t c = 0; c < dims_; ++c)
        rows.push_back(static_cast<float>((1.0 - lambda) * a[c] + lambda * b[c]));
      origins_.push_back({lambda, static_cast<std::int64_t>(ia), static_cast<std::int64_t>(ib)});
    }
    index_.add_candidates(rows.data(), rows.size() / dims_);
    enforce_cap();
  }

  std::string_view name() const noexcept override {
    return sampler_name;
  }

  std::vector<latent_sample> select(std::size_t count) override {
    std::vector<latent_sample> out;
    const std::size_t pool = index_.candidate_count();
    if (pool < params_.min_candidates || count == 0 || pool == 0)
      return out;
    const std::size_t n = std::min(count, pool);
    std::vector<std::size_t> picks;
    if (index_.selected_count() < params_.random_selections) {
      // Partial Fisher-Yates over the pool.
      std::vector<std::size_t> all(pool);
      std::iota(all.begin(), all.end(), std::size_t{0});
      for (std::size_t i = 0; i < n; ++i)
        std::swap(all[i], all[i + uniform_index(pool - i)]);
      picks.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
    } else {
      picks = index_.top_ranked(n);
    }
    out.reserve(n);
    std::vector<float> chosen;
    chosen.reserve(n * dims_);
    for (std::size_t i : picks) {
      latent_sample s;
      s.id = next_id_++;
      s.z.assign(index_.candidate(i), index_.candidate(i) + dims_);
      s.lambda = origins_[i].lambda;
      s.pair_a = origins_[i].pair_a;
      s.pair_b = origins_[i].pair_b;
      chosen.insert(chosen.end(), s.z.begin(), s.z.end());
      out.push_back(std::move(s));
    }
    index_.remove_candidates(picks);
    knn_distance_index::swap_remove(origins_, std::move(picks));
    index_.add_selected(chosen.data(), n);
    return out;
  }

  void add_feedback(const sampler_feedback& feedback) override {
    if (feedback.what != sampler_feedback::kind::frame)
      return;
    if (feedback.z.size() != dims_)
      fail("frame feedback for sample " + std::to_string(feedback.sample_id) + " has " +
           std::to_string(feedback.z.size()) + " coordinates, expected " +
           std::to_string(dims_));
    for (std::size_t c = 0; c < dims_; ++c) {
      if (!std::isfinite(feedback.z[c]))
        fail("frame feedback for sample " + std::to_string(feedback.sample_id) +
             ": coordinate " + std::to_string(c) + " is not finite");
    }
    // Covered already (simulated): selected for ranking, and a candidate of its own.
    index_.add_selected(feedback.z.data(), 1);
    index_.add_candidates(feedback.z.data(), 1);
    origins_.push_back({});
    enforce_cap();
  }

  std::string checkpoint() const override {
    // Flushing changes no rank; it is done on a copy so that checkpoint stays const.
    knn_distance_index index = index_;
    index.flush();
    byte_writer w;
    w.put_string(checkpoint_magic);
    w.put<std::uint64_t>(dims_);
    w.put<std::uint64_t>(params_.k);
    std::ostringstream rng_text;
    rng_text << rng_;
    w.put_string(rng_text.str());
    w.put<std::uint64_t>(next_id_);
    w.put_vector(index.candidate_values());
    w.put_vector(index.neighbour_values());
    w.put_vector(index.selected_values());
    std::vector<double> lambdas;
    std::vector<std::int64_t> pairs;
    for (const auto& o : origins_) {
      lambdas.push_back(o.lambda);
      pairs.push_back(o.pair_a);
      pairs.push_back(o.pair_b);
    }
    w.put_vector(lambdas);
    w.put_vector(pairs);
    return w.take();
  }

  void restore(std::string_view bytes) override {
    byte_reader r(bytes);
    if (r.get_string("magic") != checkpoint_magic)
      r.fail_at("magic", "not an importance sampler checkpoint");
    if (r.get<std::uint64_t>("dims") != dims_)
      r.fail_at("dims", "made with other dims than this sampler's " + std::to_string(dims_));
    if (r.get<std::uint64_t>("k") != params_.k)
      r.fail_at("k", "made with another k than this sampler's " + std::to_string(params_.k));
    std::mt19937_64 rng;
    std::istringstream rng_text(r.get_string("random state"));
    rng_text >> rng;
    if (!rng_text)
      r.fail_at("random state", "unreadable");
    const auto next_id = r.get<std::uint64_t>("next id");
    auto cand = r.get_vector<float>("candidates");
    auto nb = r.get_vector<float>("neighbours");
    auto sel = r.get_vector<float>("selected");
    auto lambdas = r.get_vector<double>("lambdas");
    auto pairs = r.get_vector<std::int64_t>("pairs");
    const std::size_t n = cand.size() / dims_;
    if (cand.size() % dims_ != 0 || sel.size() % dims_ != 0 || nb.size() != n * params_.k ||
        lambdas.size() != n || pairs.size() != 2 * n)
      r.fail_at("pool", "inconsistent sizes");
    if (!r.at_end())
      r.fail_at("end", "trailing bytes");
    index_.assign(std::move(cand), std::move(nb), std::move(sel));
    origins_.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      origins_[i] = {lambdas[i], pairs[2 * i], pairs[2 * i + 1]};
    rng_ = rng;
    next_id_ = next_id;
  }

private:
  // Drops the lowest-ranked candidates beyond the cap (with nothing selected yet all ranks
  // are equal and the newest go).
  void enforce_cap() {
    const std::size_t n = index_.candidate_count();
    if (n <= params_.max_candidates)
      return;
    auto drop = index_.bottom_ranked(n - params_.max_candidates);
    index_.remove_candidates(drop);
    knn_distance_index::swap_remove(origins_, std::move(drop));
  }

  double uniform01() {
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  }
  // Uniform in [0, n) (n > 0), without modulo bias.
  std::size_t uniform_index(std::size_t n) {
    const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                                std::numeric_limits<std::uint64_t>::max() % n;
    std::uint64_t v = 0;
    do {
      v = rng_();
    } while (v >= limit);
    return static_cast<std::size_t>(v % n);
  }

  importance_params params_;
  std::size_t dims_;
  knn_distance_index index_;
  std::vector<candidate_origin> origins_; // parallel to the index's candidates
  std::mt19937_64 rng_;
  std::uint64_t next_id_ = 1;
};

} // namespace

std::unique_ptr<sampler> make_importance_sampler(const state_ensembles& states,
                                                 const sampler_params& params,
                                                 std::uint64_t seed) {
  auto p = parse_params(params);
  check_ensembles(states);
  return std::make_unique<importance_sampler>(states, p, seed);
}

} // namespace mummi::ml
