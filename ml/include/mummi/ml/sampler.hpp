#pragma once

/// Latent-space samplers: the math that decides which latent points the generator decodes next.
/// Each sampler is registered by name; the structure-generator actors (actors/) own one at a
/// time, feed it every outcome, checkpoint it to the campaign journal and can swap it for
/// another while the campaign runs (the new one is given the whole feedback history).
///
/// Thread-safety: a sampler is used by one thread (its actor) at a time.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mummi::ml {

/// Latent points (row after row, `dims` values each).
struct latent_points {
  std::size_t dims = 0;
  std::vector<float> values;

  std::size_t size() const noexcept {
    return dims == 0 ? 0 : values.size() / dims;
  }
  const float* row(std::size_t i) const noexcept {
    return values.data() + i * dims;
  }
};

/// The two conformational ensembles the samplers work between: the encodings of the state-A
/// and state-B frames.
struct state_ensembles {
  latent_points a;
  latent_points b;
};

/// One latent point chosen by a sampler.
struct latent_sample {
  std::uint64_t id = 0;        ///< unique in the sampler's history (1, 2, ...); never reused
  std::vector<float> z;        ///< latent coordinates
  double lambda = -1;          ///< position from A (0) to B (1) along the matched pair; -1: none
  std::int64_t pair_a = -1;    ///< index into state_ensembles::a of the pair's A end; -1: none
  std::int64_t pair_b = -1;    ///< index into state_ensembles::b of the pair's B end; -1: none
};

/// What the rest of the campaign reports back.
struct sampler_feedback {
  enum class kind : std::uint8_t {
    validation, ///< the decoded structure passed (ok) or failed vacuum minimisation
    createsims, ///< its membrane system was built and equilibrated (ok) or not
    frame       ///< a simulation frame's latent position (`z`); `sample_id` its structure
  };
  kind what = kind::validation;
  std::uint64_t sample_id = 0;
  bool ok = true;
  std::vector<float> z; ///< for frames: the frame's encoding
};

/// Named parameters of a sampler ("lambda_noise" -> "0.05"); unknown or malformed ones are
/// errors naming the parameter.
using sampler_params = std::map<std::string, std::string>;

/// A sampler's parameters, checkpoint bytes or inputs that are unusable. `what()` names the
/// sampler and the problem.
class sampler_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The interface every sampler implements (no fields; implementations are `final`).
class sampler {
public:
  virtual ~sampler() = default;

  /// The registered name ("ot", "ot_feedback", "importance", "random").
  virtual std::string_view name() const noexcept = 0;

  /// The next `count` latent points; never a point already returned.
  virtual std::vector<latent_sample> select(std::size_t count) = 0;

  /// Takes one outcome into account for later selections. Feedback for an id this sampler did
  /// not return (e.g. history handed over from another sampler) is accepted and used where it
  /// makes sense (frame positions), ignored otherwise.
  virtual void add_feedback(const sampler_feedback& feedback) = 0;

  /// Everything needed to continue exactly where this sampler is (its random state included):
  /// `restore` on a sampler made with the same ensembles and parameters then gives the same
  /// next selections as this one would.
  virtual std::string checkpoint() const = 0;
  /// Throws sampler_error for bytes that are not a checkpoint of this sampler kind.
  virtual void restore(std::string_view bytes) = 0;
};

using sampler_factory = std::function<std::unique_ptr<sampler>(
  const state_ensembles& states, const sampler_params& params, std::uint64_t seed)>;

/// Samplers by name. Made in main (or a test) and passed to whoever creates samplers; no
/// global registry.
class sampler_registry {
public:
  /// A registry holding the built-in samplers: ot, ot_feedback, importance, random.
  static sampler_registry with_builtins();

  /// Adds (or replaces) a sampler kind.
  void add(std::string name, sampler_factory factory);
  /// Throws sampler_error naming the unknown sampler and the known ones, or the problems with
  /// `params`.
  std::unique_ptr<sampler> create(std::string_view name, const state_ensembles& states,
                                  const sampler_params& params, std::uint64_t seed) const;
  std::vector<std::string> names() const;

private:
  std::map<std::string, sampler_factory, std::less<>> factories_;
};

} // namespace mummi::ml
