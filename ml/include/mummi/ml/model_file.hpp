#pragma once

/// The model file format: one file per training round carrying the autoencoder's weights, its
/// preprocessing and its metadata. No LibTorch here: the autoencoder converts its tensors to
/// and from a `model_contents`.
///
/// Layout (format 1, little-endian), documented in docs/ml.md:
///   8 bytes   magic "MUMMI-AE"
///   u32       format version (1)
///   u32       header length H
///   H bytes   header: JSON (metadata + tensor table: name, shape, offset, element count)
///   ...       tensor payload: float32 values, in table order, no padding
///   u64       FNV-1a-64 of every byte before it
/// Files are written to a temporary name and renamed, so a reader never sees half a file.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace mummi::ml {

/// A model file (or TorchScript module) that cannot be read, is corrupt or truncated, or does
/// not fit what the caller needs (bead count, latent size). `what()` reads "path: problem".
class model_error : public std::runtime_error {
public:
  model_error(std::filesystem::path path, const std::string& problem)
    : std::runtime_error(path.string() + ": " + problem), path_(std::move(path)) {}
  const std::filesystem::path& path() const noexcept {
    return path_;
  }

private:
  std::filesystem::path path_;
};

inline constexpr std::uint32_t model_format_version = 1;

enum class activation { relu, elu, tanh };

/// The network: beads * 3 -> hidden... -> latent, and the mirror image back.
struct architecture {
  std::size_t beads = 0;
  std::size_t latent = 32;
  std::vector<std::size_t> hidden = {1024, 256};
  activation act = activation::elu;

  bool operator==(const architecture&) const = default;
};

/// How coordinates are prepared before the network sees them.
struct preprocessing {
  bool centre = true;  ///< subtract each frame's centroid
  bool align = true;   ///< then rotate each frame onto the reference (Kabsch)
  bool operator==(const preprocessing&) const = default;
};

/// Metadata of one round.
struct model_metadata {
  architecture arch;
  preprocessing prep;
  std::uint32_t round = 0;
  std::string data_digest;     ///< digest of the training frames (`frames_digest`)
  std::string parent_digest;   ///< data digest of the round this one was fine-tuned from
  std::size_t training_frames = 0;
  double validation_rmsd_nm = 0; ///< reconstruction RMSD on the validation split
  std::string created_by;      ///< program and version that wrote the file

  bool operator==(const model_metadata&) const = default;
};

/// A named float32 tensor.
struct named_tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
  bool operator==(const named_tensor&) const = default;
};

/// Everything a model file holds.
struct model_contents {
  model_metadata meta;
  std::map<std::string, named_tensor> tensors;
  bool operator==(const model_contents&) const = default;
};

/// Writes `contents` to `path`: to `<path>.tmp-<pid>`, fsynced, then renamed over `path`.
/// Throws model_error for a tensor whose value count does not match its shape, a string that
/// is not UTF-8, or a file that cannot be written (no temporary file is left behind).
void write_model_file(const std::filesystem::path& path, const model_contents& contents);

/// Reads a model file. Throws model_error naming the problem: not a mummi model file, a newer
/// format, a truncated file, a checksum mismatch (corrupt), a malformed header, a tensor whose
/// size does not match its shape.
model_contents read_model_file(const std::filesystem::path& path);

/// True when the file starts like a TorchScript archive (a ZIP file); false when it does not
/// or cannot be read.
bool looks_like_torchscript(const std::filesystem::path& path);

/// "fnv1a64:<16 hex digits>": FNV-1a-64 over the little-endian bytes of `values`, then of
/// `labels` (when given).
std::string frames_digest(const std::vector<float>& values,
                          const std::vector<std::int32_t>& labels = {});

} // namespace mummi::ml
