// The demo model and its frames (data/demo/frames.h5, data/demo/model.ae, made by
// `mummi demo-data`): the committed model was trained on the committed frames, reconstructs the
// held-out frames within 0.3 nm, and its latent space separates state A from state B linearly.
// A model trained here from scratch on the same frames does as well.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/ml/autoencoder.hpp"

namespace ml = mummi::ml;
namespace cpl = mummi::coupling;

namespace {

const std::filesystem::path demo_dir = std::filesystem::path(MUMMI_SOURCE_DATA_DIR) / "demo";
// The held-out share of each state's frames: its last ones (`mummi demo-data` trains with it).
constexpr double held_out_fraction = 0.15;

struct split {
  std::vector<std::size_t> train, held_out;
};

// The last `held_out_fraction` of each label's frames, as the trainer holds them out.
split tail_split(const cpl::frame_block& frames) {
  split s;
  for (std::int32_t label : {cpl::state_a, cpl::state_b}) {
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < frames.frames(); ++i)
      if (frames.meta[i].label == label)
        idx.push_back(i);
    const auto n = static_cast<std::size_t>(
      std::lround(held_out_fraction * static_cast<double>(idx.size())));
    s.train.insert(s.train.end(), idx.begin(), idx.end() - static_cast<std::ptrdiff_t>(n));
    s.held_out.insert(s.held_out.end(), idx.end() - static_cast<std::ptrdiff_t>(n), idx.end());
  }
  return s;
}

std::vector<float> gather(const cpl::frame_block& frames, const std::vector<std::size_t>& idx) {
  std::vector<float> out;
  for (auto i : idx) {
    auto f = frames.frame(i);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

// Logistic regression (gradient descent on standardized features) fitted on `x_train`; returns
// the fraction of `x_test` classified right.
double linear_accuracy(const std::vector<float>& x_train, const std::vector<int>& y_train,
                       const std::vector<float>& x_test, const std::vector<int>& y_test,
                       std::size_t dims) {
  const auto n = y_train.size();
  std::vector<double> mean(dims, 0), sd(dims, 0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t d = 0; d < dims; ++d)
      mean[d] += x_train[i * dims + d] / static_cast<double>(n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t d = 0; d < dims; ++d)
      sd[d] += std::pow(x_train[i * dims + d] - mean[d], 2) / static_cast<double>(n);
  for (auto& v : sd)
    v = std::sqrt(v) + 1e-9;
  auto feature = [&](const std::vector<float>& x, std::size_t i, std::size_t d) {
    return (x[i * dims + d] - mean[d]) / sd[d];
  };
  std::vector<double> w(dims, 0);
  double b = 0;
  for (int iter = 0; iter < 500; ++iter) {
    std::vector<double> gw(dims, 0);
    double gb = 0;
    for (std::size_t i = 0; i < n; ++i) {
      double z = b;
      for (std::size_t d = 0; d < dims; ++d)
        z += w[d] * feature(x_train, i, d);
      const double err = 1 / (1 + std::exp(-z)) - y_train[i];
      for (std::size_t d = 0; d < dims; ++d)
        gw[d] += err * feature(x_train, i, d) / static_cast<double>(n);
      gb += err / static_cast<double>(n);
    }
    for (std::size_t d = 0; d < dims; ++d)
      w[d] -= 0.5 * gw[d];
    b -= 0.5 * gb;
  }
  std::size_t right = 0;
  for (std::size_t i = 0; i < y_test.size(); ++i) {
    double z = b;
    for (std::size_t d = 0; d < dims; ++d)
      z += w[d] * feature(x_test, i, d);
    right += (z > 0 ? 1 : 0) == y_test[i] ? 1 : 0;
  }
  return static_cast<double>(right) / static_cast<double>(y_test.size());
}

std::vector<int> labels_of(const cpl::frame_block& frames, const std::vector<std::size_t>& idx) {
  std::vector<int> y;
  for (auto i : idx)
    y.push_back(frames.meta[i].label == cpl::state_b ? 1 : 0);
  return y;
}

// Held-out RMSD and A/B classification accuracy of `model` on the demo frames.
void expect_demo_goals(const ml::autoencoder& model, const cpl::frame_block& frames) {
  const auto s = tail_split(frames);
  ASSERT_GT(s.held_out.size(), 20u);
  const auto held = gather(frames, s.held_out);
  const double rmsd = ml::rmsd_nm(model.reconstruct(held), model.preprocess(held), model.beads());
  EXPECT_LT(rmsd, 0.3) << "held-out reconstruction RMSD (nm)";
  const double accuracy =
    linear_accuracy(model.encode(gather(frames, s.train)), labels_of(frames, s.train),
                    model.encode(held), labels_of(frames, s.held_out), model.latent_size());
  EXPECT_GE(accuracy, 0.95) << "linear A/B classification of held-out latent vectors";
  std::printf("held-out frames: %zu, reconstruction RMSD %.4f nm, A/B accuracy %.4f\n",
              s.held_out.size(), rmsd, accuracy);
  ::testing::Test::RecordProperty("held_out_rmsd_nm", std::to_string(rmsd));
  ::testing::Test::RecordProperty("held_out_accuracy", std::to_string(accuracy));
}

} // namespace

TEST(demo_model, was_trained_on_the_committed_frames) {
  auto frames = cpl::frame_store::open(demo_dir / "frames.h5").read_all();
  auto model = ml::autoencoder::load(demo_dir / "model.ae", frames.atoms);
  std::vector<std::int32_t> labels;
  for (const auto& m : frames.meta)
    labels.push_back(m.label);
  EXPECT_EQ(model.metadata().data_digest, ml::frames_digest(frames.positions_nm, labels));
  EXPECT_EQ(model.metadata().training_frames, frames.frames());
  EXPECT_EQ(model.metadata().round, 0u);
  EXPECT_EQ(model.latent_size(), 32u);
}

TEST(demo_model, reconstructs_held_out_frames_and_separates_the_states) {
  auto frames = cpl::frame_store::open(demo_dir / "frames.h5").read_all();
  auto model = ml::autoencoder::load(demo_dir / "model.ae", frames.atoms);
  expect_demo_goals(model, frames);
}

TEST(demo_model, training_from_scratch_meets_the_same_goals) {
  auto frames = cpl::frame_store::open(demo_dir / "frames.h5").read_all();
  auto model = ml::autoencoder::load(demo_dir / "model.ae", frames.atoms);
  auto arch = model.metadata().arch;
  auto fresh = ml::autoencoder::create(arch, model.metadata().prep, 3);
  ml::training_options o;
  o.max_epochs = 60;
  o.validation_fraction = held_out_fraction;
  o.device = ml::device_kind::cpu;
  auto report = fresh.train(frames, o);
  EXPECT_LT(report.best_validation_loss, 0.5 * report.epochs.front().validation_loss);
  expect_demo_goals(fresh, frames);
}
