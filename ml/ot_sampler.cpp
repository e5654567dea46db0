// `ot` and `ot_feedback`: new latent points along optimal-transport pairs between the state-A
// and state-B ensembles (mini-MuMMI's structure generator).
//
// Matching: k = min(subsample, |A|, |B|) points are drawn without replacement from each
// ensemble and matched one-to-one by solving the assignment problem on their squared latent
// distances (assignment.hpp). A selection picks a matched pair (a, b), lambda uniform in
// [lambda_min, lambda_max] and returns z = (1 - lambda) a + lambda b + N(0, noise^2) per
// dimension. With rematch_every > 0 new sub-samples are drawn and matched after that many
// selections.
//
// ot_feedback scores `candidates` such draws per selection and keeps the best:
//   score(z) = w * d_covered(z) - (1 - w) * sum over failed f with |z - f| < r of (r - |z - f|)
// d_covered is the distance to the nearest covered point: a state-A or state-B encoding (those
// states are simulated already), a frame position, or any point this sampler returned (validated; pending, so that one batch spreads out; failed, since its region
// has been tried). Failed points are samples whose validation or createsims failed; each
// one within the radius r (fail_radius) costs up to r, so one nearby failure outweighs up to
// w / (1 - w) units of distance gained. Both terms are latent distances. Ties keep the first
// candidate. The nearest covered point is found by brute
// force with early exit (see docs/ml.md, "Samplers", for timings).

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "assignment.hpp"
#include "samplers.hpp"

namespace mummi::ml {

namespace {

constexpr int ot_checkpoint_version = 1;

struct ot_settings {
  std::size_t subsample = 230;
  double lambda_min = 0.2;
  double lambda_max = 0.8;
  double noise = 0; ///< std of the Gaussian noise per latent dimension, latent units
  std::uint64_t rematch_every = 0;
  // ot_feedback only
  bool feedback = false;
  std::size_t candidates = 32;
  double weight = 0.5;
  double fail_radius = 0; ///< latent units
};

enum class outcome : std::uint8_t { pending = 0, passed = 1, failed = 2 };

/// Mean over both ensembles and all dimensions of the per-dimension standard deviation within
/// one ensemble (the spread of a state, not the A-B separation).
double mean_dim_std(const state_ensembles& states) {
  double sum = 0;
  for (const latent_points* p : {&states.a, &states.b}) {
    const std::size_t n = p->size();
    for (std::size_t d = 0; d < p->dims; ++d) {
      double mean = 0;
      for (std::size_t i = 0; i < n; ++i)
        mean += p->row(i)[d];
      mean /= static_cast<double>(n);
      double var = 0;
      for (std::size_t i = 0; i < n; ++i)
        var += (p->row(i)[d] - mean) * (p->row(i)[d] - mean);
      sum += std::sqrt(var / static_cast<double>(n));
    }
  }
  return sum / static_cast<double>(2 * states.a.dims);
}

float squared_distance(const float* x, const float* y, std::size_t dims) {
  float s = 0;
  for (std::size_t d = 0; d < dims; ++d)
    s += (x[d] - y[d]) * (x[d] - y[d]);
  return s;
}

class ot_sampler final : public sampler {
public:
  ot_sampler(const state_ensembles& states, const ot_settings& settings, std::uint64_t seed)
    : states_(states), settings_(settings), dims_(states.a.dims), rng_(seed) {
    match();
  }

  std::string_view name() const noexcept override {
    return settings_.feedback ? "ot_feedback" : "ot";
  }

  std::vector<latent_sample> select(std::size_t count) override {
    std::vector<latent_sample> out;
    out.reserve(count);
    for (std::size_t n = 0; n < count; ++n) {
      if (settings_.rematch_every > 0 && since_match_ >= settings_.rematch_every)
        match();
      ++since_match_;
      latent_sample s = draw();
      if (settings_.feedback) {
        double best_score = score(s.z);
        for (std::size_t c = 1; c < settings_.candidates; ++c) {
          latent_sample candidate = draw();
          const double candidate_score = score(candidate.z);
          if (candidate_score > best_score) {
            best_score = candidate_score;
            s = std::move(candidate);
          }
        }
      }
      s.id = next_id_++;
      if (settings_.feedback) {
        sample_index_.emplace(s.id, sample_ids_.size());
        sample_ids_.push_back(s.id);
        sample_outcome_.push_back(outcome::pending);
        sample_z_.insert(sample_z_.end(), s.z.begin(), s.z.end());
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  void add_feedback(const sampler_feedback& feedback) override {
    if (feedback.what == sampler_feedback::kind::frame) {
      if (feedback.z.size() != dims_)
        throw sampler_error("sampler '" + std::string(name()) + "': frame feedback for sample "
                            + std::to_string(feedback.sample_id) + " has "
                            + std::to_string(feedback.z.size()) + " latent values, not "
                            + std::to_string(dims_));
      if (settings_.feedback)
        frames_.insert(frames_.end(), feedback.z.begin(), feedback.z.end());
      return;
    }
    if (!settings_.feedback)
      return;
    const auto it = sample_index_.find(feedback.sample_id);
    if (it == sample_index_.end())
      return; // not returned by this sampler: no position known
    outcome& o = sample_outcome_[it->second];
    if (!feedback.ok)
      set_failed(it->second);
    else if (feedback.what == sampler_feedback::kind::validation && o == outcome::pending)
      o = outcome::passed;
  }

  std::string checkpoint() const override {
    checkpoint_writer w(name(), ot_checkpoint_version);
    w.u64("next_id", next_id_);
    w.u64("since_match", since_match_);
    w.u64s("pairs", pairs_);
    w.rng("rng", rng_);
    if (settings_.feedback) {
      w.u64s("sample_ids", sample_ids_);
      std::vector<std::uint64_t> outcomes(sample_outcome_.size());
      for (std::size_t i = 0; i < outcomes.size(); ++i)
        outcomes[i] = static_cast<std::uint64_t>(sample_outcome_[i]);
      w.u64s("sample_outcomes", outcomes);
      w.floats("sample_z", sample_z_);
      w.floats("frames", frames_);
    }
    return std::move(w).finish();
  }

  void restore(std::string_view bytes) override {
    checkpoint_reader r(name(), ot_checkpoint_version, bytes);
    const std::uint64_t next_id = r.u64("next_id");
    const std::uint64_t since_match = r.u64("since_match");
    std::vector<std::uint64_t> pairs = r.u64s("pairs");
    std::mt19937_64 rng;
    r.rng("rng", rng);
    if (next_id == 0)
      r.fail("next_id is 0");
    if (pairs.empty() || pairs.size() % 2 != 0)
      r.fail("pairs holds " + std::to_string(pairs.size()) + " indices, not a positive even count");
    for (std::size_t i = 0; i < pairs.size(); ++i)
      if (pairs[i] >= (i % 2 == 0 ? states_.a.size() : states_.b.size()))
        r.fail("pair index " + std::to_string(pairs[i]) + " is outside ensemble "
               + (i % 2 == 0 ? "A" : "B"));
    std::vector<std::uint64_t> ids, outcomes;
    std::vector<float> sample_z, frames;
    if (settings_.feedback) {
      ids = r.u64s("sample_ids");
      outcomes = r.u64s("sample_outcomes");
      sample_z = r.floats("sample_z");
      frames = r.floats("frames");
      if (outcomes.size() != ids.size() || sample_z.size() != ids.size() * dims_)
        r.fail("sample_ids, sample_outcomes and sample_z disagree in size");
      if (frames.size() % dims_ != 0)
        r.fail("frames holds " + std::to_string(frames.size()) + " values, not a multiple of "
               + std::to_string(dims_) + " dims");
      for (std::size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == 0 || ids[i] >= next_id || outcomes[i] > 2)
          r.fail("sample " + std::to_string(i) + " has a bad id or outcome");
    }
    r.finish();
    next_id_ = next_id;
    since_match_ = since_match;
    pairs_ = std::move(pairs);
    rng_ = rng;
    sample_ids_ = std::move(ids);
    sample_z_ = std::move(sample_z);
    frames_ = std::move(frames);
    sample_index_.clear();
    sample_outcome_.clear();
    failed_z_.clear();
    for (std::size_t i = 0; i < sample_ids_.size(); ++i) {
      sample_index_.emplace(sample_ids_[i], i);
      sample_outcome_.push_back(outcome::pending);
      if (static_cast<outcome>(outcomes[i]) == outcome::failed)
        set_failed(i);
      else
        sample_outcome_[i] = static_cast<outcome>(outcomes[i]);
    }
  }

private:
  /// Draws sub-samples of A and B and matches them; pairs_ holds (a, b) index pairs.
  void match() {
    const std::size_t k = std::min({settings_.subsample, states_.a.size(), states_.b.size()});
    const auto draw_subset = [this, k](std::size_t n) {
      std::vector<std::size_t> idx(n);
      std::iota(idx.begin(), idx.end(), std::size_t{0});
      for (std::size_t i = 0; i < k; ++i) // partial Fisher-Yates
        std::swap(idx[i], idx[i + uniform_index(rng_, n - i)]);
      idx.resize(k);
      return idx;
    };
    const std::vector<std::size_t> ia = draw_subset(states_.a.size());
    const std::vector<std::size_t> ib = draw_subset(states_.b.size());
    std::vector<double> cost(k * k);
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = 0; j < k; ++j)
        cost[i * k + j] = squared_distance(states_.a.row(ia[i]), states_.b.row(ib[j]), dims_);
    const std::vector<std::size_t> col = solve_assignment(cost, k);
    pairs_.clear();
    for (std::size_t i = 0; i < k; ++i) {
      pairs_.push_back(ia[i]);
      pairs_.push_back(ib[col[i]]);
    }
    since_match_ = 0;
  }

  latent_sample draw() {
    latent_sample s;
    const std::size_t p = uniform_index(rng_, pairs_.size() / 2);
    s.pair_a = static_cast<std::int64_t>(pairs_[2 * p]);
    s.pair_b = static_cast<std::int64_t>(pairs_[2 * p + 1]);
    s.lambda
      = settings_.lambda_min + (settings_.lambda_max - settings_.lambda_min) * uniform01(rng_);
    const float* a = states_.a.row(pairs_[2 * p]);
    const float* b = states_.b.row(pairs_[2 * p + 1]);
    s.z.resize(dims_);
    for (std::size_t d = 0; d < dims_; ++d) {
      const double noise = settings_.noise > 0 ? settings_.noise * normal01(rng_) : 0.0;
      s.z[d] = static_cast<float>((1 - s.lambda) * a[d] + s.lambda * b[d] + noise);
    }
    return s;
  }

  /// Distance from z to the nearest covered point (the ensembles are never empty).
  double nearest_covered(const std::vector<float>& z) const {
    float best = std::numeric_limits<float>::infinity();
    const auto visit = [&](const float* row) {
      float s = 0;
      for (std::size_t d = 0; d < dims_; ++d) {
        s += (z[d] - row[d]) * (z[d] - row[d]);
        if ((d & 7) == 7 && s >= best)
          return;
      }
      best = std::min(best, s);
    };
    for (const latent_points* ensemble : {&states_.a, &states_.b})
      for (std::size_t i = 0; i < ensemble->size(); ++i)
        visit(ensemble->row(i));
    for (std::size_t i = 0; i < frames_.size(); i += dims_)
      visit(frames_.data() + i);
    for (std::size_t i = 0; i < sample_z_.size(); i += dims_)
      visit(sample_z_.data() + i);
    return std::isinf(best) ? 0.0 : std::sqrt(static_cast<double>(best));
  }

  double score(const std::vector<float>& z) const {
    double penalty = 0;
    const double r = settings_.fail_radius;
    for (std::size_t i = 0; i < failed_z_.size(); i += dims_) {
      const double d = std::sqrt(squared_distance(z.data(), failed_z_.data() + i, dims_));
      if (d < r)
        penalty += r - d;
    }
    return settings_.weight * nearest_covered(z) - (1 - settings_.weight) * penalty;
  }

  void set_failed(std::size_t i) {
    if (sample_outcome_[i] == outcome::failed)
      return;
    sample_outcome_[i] = outcome::failed;
    failed_z_.insert(failed_z_.end(), sample_z_.begin() + static_cast<std::ptrdiff_t>(i * dims_),
                     sample_z_.begin() + static_cast<std::ptrdiff_t>((i + 1) * dims_));
  }

  state_ensembles states_;
  ot_settings settings_;
  std::size_t dims_;
  std::mt19937_64 rng_;
  std::uint64_t next_id_ = 1;
  std::uint64_t since_match_ = 0;
  std::vector<std::uint64_t> pairs_; ///< a0, b0, a1, b1, ...: indices into the full ensembles

  // ot_feedback only: every returned sample (id, outcome, z), frames and failed points.
  std::map<std::uint64_t, std::size_t> sample_index_;
  std::vector<std::uint64_t> sample_ids_;
  std::vector<outcome> sample_outcome_;
  std::vector<float> sample_z_;
  std::vector<float> frames_;
  std::vector<float> failed_z_;
};

std::unique_ptr<sampler> make(std::string_view name, bool feedback, const state_ensembles& states,
                              const sampler_params& params, std::uint64_t seed) {
  param_reader p(name, params);
  p.check_ensembles(states);
  ot_settings s;
  s.feedback = feedback;
  s.subsample = static_cast<std::size_t>(p.integer("subsample", 230, 1, 100000));
  s.lambda_min = p.real("lambda_min", s.lambda_min, 0.0, 1.0);
  s.lambda_max = p.real("lambda_max", s.lambda_max, 0.0, 1.0);
  if (s.lambda_min > s.lambda_max)
    p.problem("lambda_min " + params.at("lambda_min") + " is above lambda_max "
              + (p.has("lambda_max") ? params.at("lambda_max") : std::string("0.8")));
  const double inf = std::numeric_limits<double>::infinity();
  const double noise = p.real("noise", -1, 0.0, inf);
  const double noise_fraction = p.real("noise_fraction", 0.05, 0.0, inf);
  if (p.has("noise") && p.has("noise_fraction"))
    p.problem(
      "give 'noise' (latent units) or 'noise_fraction' (of the ensembles' spread), not both");
  s.rematch_every = static_cast<std::uint64_t>(p.integer("rematch_every", 0, 0, INT64_MAX));
  double fail_radius = -1, fail_radius_fraction = 0.5;
  if (feedback) {
    s.candidates = static_cast<std::size_t>(p.integer("candidates", 32, 1, 4096));
    s.weight = p.real("weight", s.weight, 0.0, 1.0);
    fail_radius = p.real("fail_radius", -1, 0.0, inf);
    fail_radius_fraction = p.real("fail_radius_fraction", 0.5, 0.0, inf);
    if (p.has("fail_radius") && p.has("fail_radius_fraction"))
      p.problem("give 'fail_radius' (latent units) or 'fail_radius_fraction', not both");
  }
  p.finish();
  const double spread = mean_dim_std(states);
  s.noise = noise >= 0 ? noise : noise_fraction * spread;
  s.fail_radius = fail_radius >= 0
    ? fail_radius
    : fail_radius_fraction * spread * std::sqrt(static_cast<double>(states.a.dims));
  return std::make_unique<ot_sampler>(states, s, seed);
}

} // namespace

std::unique_ptr<sampler> make_ot_sampler(const state_ensembles& states,
                                         const sampler_params& params, std::uint64_t seed) {
  return make("ot", false, states, params, seed);
}

std::unique_ptr<sampler> make_ot_feedback_sampler(const state_ensembles& states,
                                                  const sampler_params& params,
                                                  std::uint64_t seed) {
  return make("ot_feedback", true, states, params, seed);
}

} // namespace mummi::ml
