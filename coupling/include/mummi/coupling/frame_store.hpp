#pragma once

/// The HDF5 frame store: coordinate frames (float32, nm) of a fixed set of atoms with, per
/// frame, the MD step, time, a state label and the source (simulation) id. One file holds one
/// store; one writer per file. Frames are appended in chunks and compressed (shuffle + deflate);
/// the file count of a campaign grows with nodes or simulations, never with frames.
///
/// Layout (format 1), documented in docs/data.md:
///   /frames/positions  float32 [frames][atoms][3], chunked, extendible   (nm)
///   /frames/step       int64   [frames]
///   /frames/time_ps    float64 [frames]
///   /frames/label      int32   [frames]   (state label; -1 when none)
///   /frames/source     int64   [frames]   (simulation id; -1 when none)
///   attributes on /frames: mummi_format (int), atoms (int), description (string)
///
/// Not thread-safe: one owner thread at a time (HDF5 is built without thread safety).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace mummi::coupling {

/// A store file that cannot be created, opened, read or written, or whose content is not a
/// frame store. `what()` reads "path: problem".
class store_error : public std::runtime_error {
public:
  store_error(std::filesystem::path path, const std::string& problem)
    : std::runtime_error(path.string() + ": " + problem), path_(std::move(path)) {}
  const std::filesystem::path& path() const noexcept {
    return path_;
  }

private:
  std::filesystem::path path_;
};

/// State labels of the two conformational ensembles the model is trained on.
inline constexpr std::int32_t state_a = 0;
inline constexpr std::int32_t state_b = 1;
inline constexpr std::int32_t no_label = -1;

/// What is stored with each frame besides its coordinates.
struct frame_meta {
  std::int64_t step = 0;
  double time_ps = 0;
  std::int32_t label = no_label;
  std::int64_t source = -1;
};

/// Frames read from (or to be appended to) a store: `positions_nm` holds
/// `frames() * atoms * 3` values, frame after frame, atom after atom, x y z.
struct frame_block {
  std::size_t atoms = 0;
  std::vector<float> positions_nm;
  std::vector<frame_meta> meta;

  std::size_t frames() const noexcept {
    return meta.size();
  }
  /// The coordinates of frame `i` (atoms * 3 values).
  std::span<const float> frame(std::size_t i) const {
    return {positions_nm.data() + i * atoms * 3, atoms * 3};
  }
  /// Appends every frame of `other` (same atom count, else std::invalid_argument; a block
  /// without frames takes the atom count of the first frames appended to it).
  void append(const frame_block& other);
};

struct frame_store_options {
  std::size_t atoms = 0;           ///< atoms per frame (> 0)
  std::size_t chunk_frames = 64;   ///< frames per HDF5 chunk
  int deflate_level = 4;           ///< 0 (none) .. 9
  std::string description;         ///< free text kept as an attribute (e.g. the selection)
};

/// An open store file. Move-only; closing (destruction, or assigning over it) flushes. A
/// moved-from store reports an empty path and no atoms or frames; append, read and flush on it
/// throw std::logic_error.
///
/// One writer per file: while a store is open for appending, HDF5's file lock refuses the file
/// to every other process (readers included), and this process refuses a second writer.
class frame_store {
public:
  enum class mode { read_only, append };

  /// Creates a new store; refuses to overwrite an existing file.
  static frame_store create(const std::filesystem::path& path, const frame_store_options& options);
  /// Opens an existing store; throws store_error when the file is missing, not HDF5, locked
  /// by a writer, or not a frame store of a supported format (every problem with the layout is
  /// named at once).
  static frame_store open(const std::filesystem::path& path, mode how = mode::read_only);

  frame_store(frame_store&&) noexcept;
  frame_store& operator=(frame_store&&) noexcept;
  ~frame_store();

  const std::filesystem::path& path() const noexcept;
  std::size_t atom_count() const noexcept;
  std::size_t frame_count() const noexcept;
  const std::string& description() const noexcept;

  /// Appends frames (`block.atoms` must equal `atom_count()`; every coordinate finite). A
  /// block that breaks a rule is refused whole (store_error naming frame, atom and
  /// coordinate), as is any append to a store opened read-only.
  void append(const frame_block& block);
  /// Reads `count` frames from `first` (clamped to the end).
  frame_block read(std::size_t first, std::size_t count) const;
  frame_block read_all() const;
  /// Flushes written frames to the file: they survive a crash of the writer after this. The
  /// file of a crashed writer keeps HDF5's "open for writing" mark, which `open` reports;
  /// `h5clear -s FILE` clears it.
  void flush();

private:
  struct impl;
  explicit frame_store(std::unique_ptr<impl> state);
  std::unique_ptr<impl> impl_;
};

/// Reads every frame of several stores into one block (all must have the same atom count).
frame_block read_frames(const std::vector<std::filesystem::path>& paths);

} // namespace mummi::coupling
