#pragma once

/// The autoencoder over a protein's bead coordinates: encode frames into latent points, decode
/// latent points into coordinates (nm), train, fine-tune, save and load. LibTorch stays behind
/// the pimpl in autoencoder.cpp.
///
/// Thread-safety: one autoencoder may be used by one thread at a time; separate instances are
/// independent. LibTorch's intra-op thread count is process-wide (`set_cpu_threads`).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/ml/model_file.hpp"
#include "mummi/ml/sampler.hpp"

namespace mummi::ml {

enum class device_kind {
  automatic, ///< CUDA when LibTorch was built with it and a GPU is present, else CPU
  cpu,
  cuda
};

/// True when this build of LibTorch can use a CUDA device here.
bool cuda_available();

/// Sets LibTorch's CPU intra-op thread count (process-wide) and returns it. 0: automatic:
/// every core when LibTorch does matrix products itself (MKL), else 1. Debian's LibTorch hands
/// matrix products to OpenBLAS, whose own threads already use every core; LibTorch's OpenMP
/// threads spinning beside them made training 1.5-6x slower on two cores (docs/benchmarks.md).
std::size_t set_cpu_threads(std::size_t threads);

/// The version of the LibTorch this library was compiled against (e.g. "1.13.0").
std::string torch_version();

struct training_options {
  std::size_t batch_size = 64;
  std::size_t max_epochs = 300;
  double learning_rate = 1e-3;  ///< Adam's initial step size
  double weight_decay = 0;
  /// Fraction of each label's frames held out for validation.
  double validation_fraction = 0.15;
  /// Hold out the last frames of each label (in block order). Frames of an MD trajectory are
  /// correlated in time, so a tail is an honest test of generalisation; false: a random choice
  /// by the seed.
  bool hold_out_tail = true;
  /// Stop after this many epochs without a better validation loss (0: never stop early).
  std::size_t patience = 30;
  /// Reduce-on-plateau schedule: multiply the learning rate by `lr_factor` after
  /// `lr_patience` epochs without improvement, never below `min_learning_rate`.
  double lr_factor = 0.5;
  std::size_t lr_patience = 10;
  double min_learning_rate = 1e-5;
  std::uint64_t seed = 1;
  /// LibTorch intra-op threads (0: automatic, see `set_cpu_threads`). Process-wide.
  std::size_t threads = 0;
  device_kind device = device_kind::automatic;
};

/// Progress of one epoch, given to the progress callback.
struct epoch_report {
  std::size_t epoch = 0;          ///< 1-based
  std::size_t max_epochs = 0;
  double train_loss = 0;          ///< mean squared error in standardized units
  double validation_loss = 0;
  double learning_rate = 0;
  bool improved = false;          ///< best validation loss so far
  std::chrono::duration<double> elapsed{}; ///< since training started
  double samples_per_s = 0;       ///< training throughput of this epoch
};

struct training_report {
  std::vector<epoch_report> epochs;
  std::size_t best_epoch = 0;
  double best_validation_loss = 0;
  bool stopped_early = false;
  std::size_t training_frames = 0;
  std::size_t validation_frames = 0;
  /// Reconstruction RMSD (nm, in the aligned frame) on the validation split, best weights.
  double validation_rmsd_nm = 0;
  /// Indices (into the training block) of the validation frames.
  std::vector<std::size_t> validation_indices;
  std::string device;             ///< "cpu" or "cuda:N"
};

using progress_callback = std::function<void(const epoch_report&)>;

class autoencoder {
public:
  /// A new, untrained network with weights drawn from `seed`. Its preprocessing statistics
  /// are fitted by the first `train`.
  static autoencoder create(const architecture& arch, const preprocessing& prep,
                            std::uint64_t seed);
  /// Loads a mummi model file or a TorchScript module with `encode` and `decode` methods
  /// (see docs/ml.md for what such a module must provide). Throws model_error when the file
  /// is unreadable, corrupt, truncated, or its bead count differs from `expected_beads`.
  static autoencoder load(const std::filesystem::path& path,
                          std::optional<std::size_t> expected_beads = std::nullopt,
                          device_kind device = device_kind::cpu);

  autoencoder(autoencoder&&) noexcept;
  autoencoder& operator=(autoencoder&&) noexcept;
  ~autoencoder();

  const model_metadata& metadata() const noexcept;
  std::size_t beads() const noexcept;
  std::size_t latent_size() const noexcept;
  bool is_torchscript() const noexcept;
  bool is_trained() const noexcept;

  /// Writes a mummi model file (not possible for a TorchScript model). Throws model_error.
  void save(const std::filesystem::path& path) const;
  /// The weights and metadata as a model file would hold them.
  model_contents contents() const;

  /// Encodes `frames` frames of `beads() * 3` coordinates (nm); returns frames * latent values.
  std::vector<float> encode(std::span<const float> coordinates_nm) const;
  /// Decodes `points` latent points; returns points * beads * 3 coordinates (nm), centred on
  /// the training frames' mean centroid and in the reference orientation.
  std::vector<float> decode(std::span<const float> latent) const;
  /// Encodes and decodes: the reconstruction of each frame after preprocessing (nm).
  std::vector<float> reconstruct(std::span<const float> coordinates_nm) const;
  /// Frames after preprocessing (centred and aligned as the model sees them; nm).
  std::vector<float> preprocess(std::span<const float> coordinates_nm) const;

  /// Trains on `frames` (its atom count must equal `beads()`): fits the preprocessing when the
  /// model is untrained, splits off a validation set, runs Adam with the schedule and keeps
  /// the best weights. The metadata's digest, frame count and RMSD are updated.
  training_report train(const coupling::frame_block& frames, const training_options& options,
                        const progress_callback& progress = {});

  /// A copy of this model as round `round + 1`, fine-tuned on `frames` with this round's
  /// preprocessing (the campaign's retraining step).
  autoencoder fine_tune(const coupling::frame_block& frames, const training_options& options,
                        training_report& report, const progress_callback& progress = {}) const;

private:
  struct impl;
  explicit autoencoder(std::unique_ptr<impl> state);
  std::unique_ptr<impl> impl_;
};

/// The encodings of the state-A and state-B frames of `frames` (labels coupling::state_a and
/// state_b; other frames are left out): what the samplers work between. Throws
/// std::invalid_argument when either state has no frame.
state_ensembles encode_states(const autoencoder& model, const coupling::frame_block& frames);

/// RMSD (nm) between two coordinate sets of the same size (frames * beads * 3), per frame
/// averaged over frames.
double rmsd_nm(std::span<const float> a, std::span<const float> b, std::size_t beads);

} // namespace mummi::ml
