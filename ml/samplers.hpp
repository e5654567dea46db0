#pragma once

// The built-in samplers' factories (private to mummi::ml and its tests). Each throws
// sampler_error naming the sampler and every problem with its parameters or ensembles.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mummi/ml/sampler.hpp"

namespace mummi::ml {

/// `random`: uniform points in the bounding box of both ensembles (the baseline).
std::unique_ptr<sampler> make_random_sampler(const state_ensembles& states,
                                             const sampler_params& params, std::uint64_t seed);

/// `ot`: equal-size sub-samples of A and B matched by optimal transport (an assignment problem
/// on squared distances), new points along matched pairs at lambda in [0, 1] plus noise.
std::unique_ptr<sampler> make_ot_sampler(const state_ensembles& states,
                                         const sampler_params& params, std::uint64_t seed);

/// `ot_feedback`: `ot` with pairs and lambda weighted away from covered and failing regions.
std::unique_ptr<sampler> make_ot_feedback_sampler(const state_ensembles& states,
                                                  const sampler_params& params, std::uint64_t seed);

/// `importance`: dynim-style ranking of candidates by mean distance to their k nearest
/// selected points.
std::unique_ptr<sampler> make_importance_sampler(const state_ensembles& states,
                                                 const sampler_params& params, std::uint64_t seed);

// --- Shared by the samplers ------------------------------------------------------------------

/// Reads one sampler's parameters and collects every problem (malformed or out-of-range values,
/// unknown names, bad ensembles) so that `finish` reports them all at once.
class param_reader {
public:
  param_reader(std::string_view sampler, const sampler_params& params);

  bool has(std::string_view key) const;
  /// The value of `key` (or `fallback` when absent), which must be a finite number within
  /// [min, max]; a problem is recorded (and `fallback` returned) otherwise.
  double real(std::string_view key, double fallback, double min, double max);
  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max);
  /// "true"/"false"/"1"/"0"/"yes"/"no"/"on"/"off".
  bool boolean(std::string_view key, bool fallback);

  /// Records a problem not tied to one value (e.g. lambda_min > lambda_max).
  void problem(std::string message);
  /// Records every problem with the ensembles: empty, zero or unequal dims, a value count not
  /// a multiple of dims, non-finite values.
  void check_ensembles(const state_ensembles& states);
  /// Throws sampler_error naming the sampler and listing every problem, unknown parameters
  /// (those never asked for) included, with the known ones.
  void finish() const;

private:
  const std::string* find(std::string_view key);
  std::string sampler_;
  const sampler_params& params_;
  std::set<std::string, std::less<>> known_;
  std::vector<std::string> problems_;
};

/// A checkpoint: text lines `key value...`, the first `mummi-sampler <name> <version>`.
/// Floats are written as their bit patterns (hex) and doubles in hex-float notation, so a
/// restore is bit exact.
class checkpoint_writer {
public:
  checkpoint_writer(std::string_view sampler, int version);
  void u64(std::string_view key, std::uint64_t value);
  void f64(std::string_view key, double value);
  void u64s(std::string_view key, const std::vector<std::uint64_t>& values);
  void floats(std::string_view key, const std::vector<float>& values);
  void rng(std::string_view key, const std::mt19937_64& engine);
  std::string finish() &&;

private:
  std::string out_;
};

/// Reads what checkpoint_writer wrote, in the same order; every mismatch throws sampler_error
/// naming the sampler, the line and what was expected.
class checkpoint_reader {
public:
  checkpoint_reader(std::string_view sampler, int version, std::string_view bytes);
  std::uint64_t u64(std::string_view key);
  double f64(std::string_view key);
  std::vector<std::uint64_t> u64s(std::string_view key);
  std::vector<float> floats(std::string_view key);
  void rng(std::string_view key, std::mt19937_64& engine);
  /// Throws when anything follows the last field read.
  void finish() const;
  /// A sampler_error naming the sampler and the current line.
  [[noreturn]] void fail(std::string_view problem) const;

private:
  std::string_view value_of(std::string_view key);
  std::string sampler_;
  std::string_view rest_;
  std::size_t line_ = 0;
};

/// Random numbers computed from raw engine output, so that a seed gives the same draws with
/// every standard library.
double uniform01(std::mt19937_64& rng);                         ///< [0, 1), 53 bits
std::size_t uniform_index(std::mt19937_64& rng, std::size_t n); ///< [0, n), unbiased; n > 0
double normal01(std::mt19937_64& rng);                          ///< standard normal (Box-Muller)

} // namespace mummi::ml
