// The autoencoder on synthetic two-state frames: training, preprocessing, save/load, fine-tuning,
// bad input, and TorchScript modules exported by Debian's python3-torch.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numbers>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../support/md_files.hpp"
#include "mummi/ml/autoencoder.hpp"

namespace ml = mummi::ml;
namespace cpl = mummi::coupling;
using mummi::test::read_file;
using mummi::test::temp_dir;

namespace {

constexpr std::size_t beads = 40;

using mat3 = std::array<std::array<double, 3>, 3>;

mat3 random_rotation(std::mt19937_64& rng) {
  // A random unit quaternion gives a uniformly random rotation.
  std::normal_distribution<double> n;
  double q[4] = {n(rng), n(rng), n(rng), n(rng)};
  const double len = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  for (auto& v : q)
    v /= len;
  const double w = q[0], x = q[1], y = q[2], z = q[3];
  return {{{1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)},
           {2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)},
           {2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)}}};
}

void move_rigidly(std::span<float> frame, const mat3& r, const std::array<double, 3>& shift) {
  for (std::size_t a = 0; a < frame.size() / 3; ++a) {
    const double p[3] = {frame[a * 3], frame[a * 3 + 1], frame[a * 3 + 2]};
    for (int i = 0; i < 3; ++i)
      frame[a * 3 + i] =
        static_cast<float>(r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2] + shift[i]);
  }
}

// A two-domain chain hinged in the middle: state A folded (hinge ~40 degrees from straight),
// state B open (~140 degrees), with a hinge angle that wanders, thermal noise of `noise_nm`,
// and a random rigid motion of every frame.
cpl::frame_block two_state_frames(std::size_t per_state, std::uint64_t seed,
                                  double noise_nm = 0.03) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss;
  std::uniform_real_distribution<double> uni(-3, 3);
  cpl::frame_block b;
  b.atoms = beads;
  for (int state = 0; state < 2; ++state) {
    for (std::size_t f = 0; f < per_state; ++f) {
      const double hinge = (state == 0 ? 40.0 : 140.0) + 12.0 * gauss(rng);
      const double phi = hinge * std::numbers::pi / 180;
      std::vector<float> frame;
      for (std::size_t a = 0; a < beads; ++a) {
        double x, y;
        if (a < beads / 2) {
          x = -0.35 * static_cast<double>(beads / 2 - a);
          y = 0.1 * std::sin(static_cast<double>(a));
        } else {
          const double s = 0.35 * static_cast<double>(a - beads / 2 + 1);
          x = s * std::cos(std::numbers::pi - phi);
          y = s * std::sin(std::numbers::pi - phi);
        }
        const double z = 0.2 * std::cos(static_cast<double>(a) * 0.7);
        for (double v : {x, y, z})
          frame.push_back(static_cast<float>(v + noise_nm * gauss(rng)));
      }
      move_rigidly(frame, random_rotation(rng), {uni(rng), uni(rng), uni(rng)});
      b.positions_nm.insert(b.positions_nm.end(), frame.begin(), frame.end());
      cpl::frame_meta m;
      m.step = static_cast<std::int64_t>(f) * 100;
      m.time_ps = static_cast<double>(f);
      m.label = state == 0 ? cpl::state_a : cpl::state_b;
      m.source = state;
      b.meta.push_back(m);
    }
  }
  return b;
}

ml::architecture small_architecture() {
  ml::architecture a;
  a.beads = beads;
  a.latent = 4;
  a.hidden = {64, 32};
  return a;
}

ml::training_options quick_options() {
  ml::training_options o;
  o.max_epochs = 80;
  o.batch_size = 32;
  o.learning_rate = 2e-3;
  o.patience = 20;
  o.threads = 1;
  o.device = ml::device_kind::cpu;
  return o;
}

// One model trained once for the tests that only need a trained model.
const ml::autoencoder& trained_model() {
  static const ml::autoencoder model = [] {
    auto m = ml::autoencoder::create(small_architecture(), {}, 7);
    m.train(two_state_frames(150, 11), quick_options());
    return m;
  }();
  return model;
}

std::string bytes_of(const std::filesystem::path& p) {
  return read_file(p);
}

} // namespace

TEST(autoencoder, training_lowers_the_validation_loss_and_reconstructs_held_out_frames) {
  auto frames = two_state_frames(150, 3);
  auto model = ml::autoencoder::create(small_architecture(), {}, 5);
  EXPECT_FALSE(model.is_trained());
  std::vector<double> seen;
  auto report = model.train(frames, quick_options(), [&seen](const ml::epoch_report& e) {
    seen.push_back(e.validation_loss);
  });
  ASSERT_EQ(seen.size(), report.epochs.size());
  ASSERT_GE(report.epochs.size(), 10u);
  EXPECT_LT(report.best_validation_loss, 0.25 * report.epochs.front().validation_loss);
  EXPECT_EQ(report.validation_frames, 46u);  // 15% of each state's 150, its last frames
  EXPECT_EQ(report.training_frames, 254u);
  EXPECT_EQ(report.validation_indices.front(), 127u);  // 150 - round(22.5)
  EXPECT_EQ(report.device, "cpu");
  EXPECT_TRUE(model.is_trained());

  // The reported RMSD is the held-out frames' reconstruction error, recomputed here.
  std::vector<float> held_out;
  for (auto i : report.validation_indices) {
    auto f = frames.frame(i);
    held_out.insert(held_out.end(), f.begin(), f.end());
  }
  const auto rmsd = ml::rmsd_nm(model.reconstruct(held_out), model.preprocess(held_out), beads);
  EXPECT_NEAR(rmsd, report.validation_rmsd_nm, 1e-4);
  EXPECT_LT(rmsd, 0.12);
  EXPECT_EQ(model.metadata().training_frames, 300u);
  EXPECT_DOUBLE_EQ(model.metadata().validation_rmsd_nm, report.validation_rmsd_nm);
}

TEST(autoencoder, training_is_reproducible_for_a_seed) {
  auto frames = two_state_frames(60, 4);
  auto opts = quick_options();
  opts.max_epochs = 15;
  auto a = ml::autoencoder::create(small_architecture(), {}, 9);
  auto b = ml::autoencoder::create(small_architecture(), {}, 9);
  a.train(frames, opts);
  b.train(frames, opts);
  EXPECT_EQ(a.contents(), b.contents());
  auto c = ml::autoencoder::create(small_architecture(), {}, 10);
  c.train(frames, opts);
  EXPECT_NE(a.contents(), c.contents());
}

TEST(autoencoder, encoding_ignores_rigid_motion_of_a_frame) {
  const auto& model = trained_model();
  auto frames = two_state_frames(3, 21);
  std::vector<float> moved = frames.positions_nm;
  std::mt19937_64 rng(1);
  for (std::size_t f = 0; f < frames.frames(); ++f)
    move_rigidly(std::span<float>(moved).subspan(f * beads * 3, beads * 3), random_rotation(rng),
                 {5.0, -2.0, 7.5});
  auto l0 = model.encode(frames.positions_nm);
  auto l1 = model.encode(moved);
  ASSERT_EQ(l0.size(), frames.frames() * model.latent_size());
  for (std::size_t i = 0; i < l0.size(); ++i)
    EXPECT_NEAR(l0[i], l1[i], 2e-4) << i;
}

TEST(autoencoder, decoded_structures_sit_at_the_training_frames_mean_centroid) {
  const auto& model = trained_model();
  auto frames = two_state_frames(150, 11);
  double centroid[3] = {0, 0, 0};
  for (std::size_t i = 0; i < frames.positions_nm.size(); ++i)
    centroid[i % 3] += frames.positions_nm[i];
  const auto n = static_cast<double>(frames.frames() * beads);
  auto out = model.decode(model.encode(frames.frame(0)));
  ASSERT_EQ(out.size(), beads * 3);
  double c[3] = {0, 0, 0};
  for (std::size_t i = 0; i < out.size(); ++i)
    c[i % 3] += out[i];
  // The training split's centroid: close to that of all frames, within the decoder's error.
  for (int k = 0; k < 3; ++k)
    EXPECT_NEAR(c[k] / beads, centroid[k] / n, 0.5) << k;
  // Decoding a frame's encoding gives back its shape: compare with its preprocessed form.
  auto pre = model.preprocess(frames.frame(0));
  std::vector<float> recentred(out);
  for (std::size_t i = 0; i < out.size(); ++i)
    recentred[i] = static_cast<float>(out[i] - c[i % 3] / beads);
  EXPECT_LT(ml::rmsd_nm(recentred, pre, beads), 0.15);
}

TEST(autoencoder, save_and_load_round_trip_bit_exactly) {
  temp_dir dir;
  const auto& model = trained_model();
  model.save(dir.path() / "round-0.ae");
  auto loaded = ml::autoencoder::load(dir.path() / "round-0.ae", beads);
  EXPECT_EQ(loaded.contents(), model.contents());
  EXPECT_EQ(loaded.metadata(), model.metadata());
  loaded.save(dir.path() / "again.ae");
  EXPECT_EQ(bytes_of(dir.path() / "round-0.ae"), bytes_of(dir.path() / "again.ae"));

  auto frames = two_state_frames(5, 31);
  auto l0 = model.encode(frames.positions_nm);
  auto l1 = loaded.encode(frames.positions_nm);
  EXPECT_EQ(l0, l1);
  EXPECT_EQ(model.decode(l0), loaded.decode(l0));
}

TEST(autoencoder, load_refuses_a_model_made_for_another_bead_count) {
  temp_dir dir;
  trained_model().save(dir.path() / "m.ae");
  try {
    (void)ml::autoencoder::load(dir.path() / "m.ae", 127);
    FAIL() << "loaded a 40-bead model for a 127-bead protein";
  } catch (const ml::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("made for 40 beads, but 127 are expected"),
              std::string::npos)
      << e.what();
    EXPECT_EQ(e.path(), dir.path() / "m.ae");
  }
}

TEST(autoencoder, load_refuses_corrupt_truncated_and_inconsistent_files) {
  temp_dir dir;
  const auto good = dir.path() / "m.ae";
  trained_model().save(good);
  const auto bytes = bytes_of(good);
  auto expect_refused = [&dir](const std::string& content, const std::string& fragment) {
    const auto p = dir.path() / "bad.ae";
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    try {
      (void)ml::autoencoder::load(p);
      ADD_FAILURE() << "loaded a bad file (" << fragment << ")";
    } catch (const ml::model_error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto flipped = bytes;
  flipped[bytes.size() / 2] = static_cast<char>(flipped[bytes.size() / 2] ^ 0x10);
  expect_refused(flipped, "corrupt");
  expect_refused(bytes.substr(0, bytes.size() - 100), "truncated");
  expect_refused("hello, world\n", "not a mummi model file");
  expect_refused("", "");

  // A well-formed file whose tensors do not fit its architecture.
  auto c = trained_model().contents();
  c.meta.arch.hidden = {64, 16};
  ml::write_model_file(dir.path() / "shape.ae", c);
  try {
    (void)ml::autoencoder::load(dir.path() / "shape.ae");
    ADD_FAILURE() << "loaded tensors of the wrong shape";
  } catch (const ml::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("wrong shape"), std::string::npos) << e.what();
  }
  c = trained_model().contents();
  c.tensors.erase("prep.std");
  ml::write_model_file(dir.path() / "missing.ae", c);
  try {
    (void)ml::autoencoder::load(dir.path() / "missing.ae");
    ADD_FAILURE() << "loaded a model without its standardization";
  } catch (const ml::model_error& e) {
    EXPECT_NE(std::string(e.what()).find("'prep.std' is missing"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)ml::autoencoder::load(dir.path() / "no-such.ae"), ml::model_error);
}

TEST(autoencoder, fine_tuning_makes_the_next_round_with_the_same_preprocessing) {
  const auto& r0 = trained_model();
  auto more = two_state_frames(80, 41, 0.05);
  auto opts = quick_options();
  opts.max_epochs = 20;
  ml::training_report report;
  auto r1 = r0.fine_tune(more, opts, report);
  EXPECT_EQ(r1.metadata().round, r0.metadata().round + 1);
  EXPECT_EQ(r1.metadata().parent_digest, r0.metadata().data_digest);
  EXPECT_NE(r1.metadata().data_digest, r0.metadata().data_digest);
  EXPECT_EQ(r1.metadata().training_frames, 160u);
  const auto c0 = r0.contents();
  const auto c1 = r1.contents();
  for (const char* name : {"prep.mean", "prep.std", "prep.reference", "prep.origin"})
    EXPECT_EQ(c0.tensors.at(name), c1.tensors.at(name)) << name;
  EXPECT_NE(c0.tensors.at("encoder.0.weight"), c1.tensors.at("encoder.0.weight"));
  // Starting from round 0, the first epoch is already better than an untrained network's.
  auto fresh = ml::autoencoder::create(small_architecture(), {}, 7);
  auto fresh_report = fresh.train(more, opts);
  EXPECT_LT(report.epochs.front().validation_loss, fresh_report.epochs.front().validation_loss);
}

TEST(autoencoder, bad_input_is_refused_with_a_clear_error) {
  auto model = ml::autoencoder::create(small_architecture(), {}, 1);
  std::vector<float> frame(beads * 3, 0.5f);
  EXPECT_THROW((void)model.encode(frame), std::logic_error);  // untrained
  const auto& trained = trained_model();
  EXPECT_THROW((void)trained.encode(std::vector<float>(beads * 3 - 1, 0.f)),
               std::invalid_argument);
  EXPECT_THROW((void)trained.decode(std::vector<float>(trained.latent_size() + 1, 0.f)),
               std::invalid_argument);
  EXPECT_THROW((void)trained.save("/nonexistent-dir/m.ae"), ml::model_error);

  auto frames = two_state_frames(10, 1);
  frames.atoms = 39;
  EXPECT_THROW(model.train(frames, quick_options()), std::invalid_argument);
  frames = two_state_frames(10, 1);
  frames.positions_nm[17] = std::nanf("");
  EXPECT_THROW(model.train(frames, quick_options()), std::invalid_argument);

  auto bad = quick_options();
  bad.batch_size = 0;
  bad.learning_rate = -1;
  bad.validation_fraction = 1.5;
  try {
    model.train(two_state_frames(10, 1), bad);
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const char* part : {"batch size", "learning rate", "validation fraction"})
      EXPECT_NE(what.find(part), std::string::npos) << what;
  }
  ml::architecture zero = small_architecture();
  zero.latent = 0;
  EXPECT_THROW((void)ml::autoencoder::create(zero, {}, 1), std::invalid_argument);
}

// A TorchScript module exported by python3-torch gives the same encodings in C++ as in Python.
class torchscript : public ::testing::Test {
protected:
  // Runs the export script; returns the frames it used and the encodings/decodings it computed.
  void export_module(const std::string& variant) {
    const std::string cmd = std::string("/usr/bin/python3 ") + EXPORT_SCRIPT + " " + variant + " " +
                            dir_.path().string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::vector<float> floats(const std::string& name) const {
    auto bytes = read_file(dir_.path() / name);
    std::vector<float> v(bytes.size() / sizeof(float));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
    return v;
  }
  temp_dir dir_;
};

TEST_F(torchscript, encodings_and_decodings_match_python) {
  for (const std::string variant : {"plain", "standardized"}) {
    SCOPED_TRACE(variant);
    export_module(variant);
    auto model = ml::autoencoder::load(dir_.path() / "model.pt", 30);
    EXPECT_TRUE(model.is_torchscript());
    EXPECT_EQ(model.beads(), 30u);
    EXPECT_EQ(model.latent_size(), 6u);
    auto frames = floats("frames.f32");
    auto expected = floats("latent.f32");
    auto got = model.encode(frames);
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], expected[i], 1e-5) << i;
    auto decoded = model.decode(expected);
    auto expected_decoded = floats("decoded.f32");
    ASSERT_EQ(decoded.size(), expected_decoded.size());
    for (std::size_t i = 0; i < decoded.size(); ++i)
      EXPECT_NEAR(decoded[i], expected_decoded[i], 1e-5) << i;
    EXPECT_THROW(model.save(dir_.path() / "x.ae"), std::logic_error);
    EXPECT_THROW((void)ml::autoencoder::load(dir_.path() / "model.pt", 31), ml::model_error);
    std::filesystem::remove(dir_.path() / "model.pt");
  }
}

TEST_F(torchscript, modules_without_encode_or_decode_or_bead_count_are_refused) {
  auto expect_refused = [this](const std::string& variant, std::optional<std::size_t> beads_wanted,
                               const std::string& fragment) {
    export_module(variant);
    try {
      (void)ml::autoencoder::load(dir_.path() / "model.pt", beads_wanted);
      ADD_FAILURE() << variant << " loaded";
    } catch (const ml::model_error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    std::filesystem::remove(dir_.path() / "model.pt");
  };
  expect_refused("no_decode", 30, "no 'decode' method");
  expect_refused("no_beads", std::nullopt, "cannot tell the TorchScript module's bead count");
  expect_refused("wrong_input", 30, "encode/decode of a 30-bead frame failed");
  // A ZIP file that is not TorchScript.
  auto p = dir_.path() / "model.pt";
  std::ofstream(p, std::ios::binary) << std::string("PK\x03\x04", 4) << "not really an archive";
  EXPECT_THROW((void)ml::autoencoder::load(p, 30), ml::model_error);
}
