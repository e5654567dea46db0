// `random`: the baseline sampler, uniform in the bounding box of both ensembles.

#include <algorithm>
#include <limits>

#include "samplers.hpp"

namespace mummi::ml {

namespace {

constexpr std::string_view random_name = "random";
constexpr int random_checkpoint_version = 1;

class random_sampler final : public sampler {
public:
  random_sampler(const state_ensembles& states, double margin, std::uint64_t seed) : rng_(seed) {
    const std::size_t dims = states.a.dims;
    lo_.assign(dims, std::numeric_limits<double>::infinity());
    std::vector<double> hi(dims, -std::numeric_limits<double>::infinity());
    for (const latent_points* p : {&states.a, &states.b})
      for (std::size_t i = 0; i < p->size(); ++i)
        for (std::size_t d = 0; d < dims; ++d) {
          lo_[d] = std::min(lo_[d], static_cast<double>(p->row(i)[d]));
          hi[d] = std::max(hi[d], static_cast<double>(p->row(i)[d]));
        }
    extent_.resize(dims);
    for (std::size_t d = 0; d < dims; ++d) {
      const double e = hi[d] - lo_[d];
      lo_[d] -= margin * e;
      extent_[d] = e * (1 + 2 * margin);
    }
  }

  std::string_view name() const noexcept override {
    return random_name;
  }

  std::vector<latent_sample> select(std::size_t count) override {
    std::vector<latent_sample> out(count);
    for (auto& s : out) {
      s.id = next_id_++;
      s.z.resize(lo_.size());
      for (std::size_t d = 0; d < lo_.size(); ++d)
        s.z[d] = static_cast<float>(lo_[d] + extent_[d] * uniform01(rng_));
    }
    return out;
  }

  void add_feedback(const sampler_feedback&) override {}

  std::string checkpoint() const override {
    checkpoint_writer w(random_name, random_checkpoint_version);
    w.u64("next_id", next_id_);
    w.rng("rng", rng_);
    return std::move(w).finish();
  }

  void restore(std::string_view bytes) override {
    checkpoint_reader r(random_name, random_checkpoint_version, bytes);
    const std::uint64_t next_id = r.u64("next_id");
    std::mt19937_64 rng;
    r.rng("rng", rng);
    r.finish();
    if (next_id == 0)
      r.fail("next_id is 0");
    next_id_ = next_id;
    rng_ = rng;
  }

private:
  std::mt19937_64 rng_;
  std::uint64_t next_id_ = 1;
  std::vector<double> lo_;     ///< lower corner of the box, margin included
  std::vector<double> extent_; ///< box edge lengths, margin included
};

} // namespace

std::unique_ptr<sampler> make_random_sampler(const state_ensembles& states,
                                             const sampler_params& params, std::uint64_t seed) {
  param_reader p(random_name, params);
  // Widens the box on each side by this fraction of its extent in each dimension.
  const double margin = p.real("margin", 0.0, 0.0, 10.0);
  p.check_ensembles(states);
  p.finish();
  return std::make_unique<random_sampler>(states, margin, seed);
}

} // namespace mummi::ml
