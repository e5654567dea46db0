#pragma once

/// GROMACS compressed trajectories (.xtc): a decoder of our own for the XDR frames and their
/// "xtc3" integer compression, a streaming reader that tails a file mdrun is still writing,
/// and a whole-file reader that decodes frames on all cores.
///
/// Positions are the stored integer times the single-precision reciprocal of the precision, in
/// nm: bit for bit what MDAnalysis' XTC reader returns (tests/md_bridge/xtc_mdrun_test.cpp).
/// Only the GROMACS 1995 frame format is read (what GROMACS 2022 writes).

#include "mummi/md_bridge/structure.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace mummi::md {

/// One trajectory frame.
struct xtc_frame {
  std::int64_t step = 0;
  float time_ps = 0;
  box_matrix box_nm{};
  /// Compression precision (1000 = 0.001 nm); 0 for frames stored uncompressed (<= 9 atoms).
  float precision = 0;
  /// Atoms in the file; `positions_nm` may hold only the leading ones.
  std::uint32_t natoms = 0;
  std::vector<vec3> positions_nm;
  /// Byte offset of the frame's header in the file.
  std::uint64_t offset = 0;
};

/// Where a frame lies in a file, from its header alone.
struct xtc_frame_info {
  std::uint64_t offset = 0;     ///< byte offset of the header
  std::uint64_t size_bytes = 0; ///< header + coordinates, the distance to the next frame
  std::int64_t step = 0;
  float time_ps = 0;
  std::uint32_t natoms = 0;
};

/// Decodes the frame that starts at `bytes[0]` (header and coordinates; trailing bytes are
/// ignored). `leading_atoms` = 0 decodes every atom, otherwise only the first N. Throws
/// io_error (path "<memory>", byte offset in the message) when the bytes are not one complete,
/// well-formed frame. Thread-safe.
xtc_frame decode_xtc_frame(std::span<const std::uint8_t> bytes, std::size_t leading_atoms = 0);

struct xtc_stream_options {
  /// 0 decodes every atom; otherwise only the first N (decoding stops there, and only the
  /// bytes those atoms need are read). The protein comes first in MuMMI's files.
  std::size_t leading_atoms = 0;
  /// Resume: byte offset of the next frame, as `xtc_stream_reader::offset()` returned it.
  std::uint64_t start_offset = 0;
  /// Resume: frames whose step is not greater than this are skipped.
  std::optional<std::int64_t> last_step;
};

/// Reads the frames of an XTC file in order while mdrun may still be appending to it.
///
/// - `try_next` returns the next complete frame, or nothing while the file holds no complete
///   next frame (missing file, or a frame still being written: it is neither misread nor
///   consumed, and a later call returns it once its last byte is there).
/// - Frames whose step is not greater than the last returned one are skipped (mdrun restarted
///   from a checkpoint writes frames again from the checkpoint's step).
/// - Re-synchronisation rule: the reader goes back to byte 0 and walks the frame headers again,
///   skipping by step as above, when (a) the file is shorter than the resume offset (mdrun
///   truncated it on a restart with appending), (b) the path now names another file, (c) the
///   header of the last frame it passed has changed (the file was truncated and rewritten
///   between two looks), or (d) no frame header lies at a resume offset given in the options
///   (one the reader did not reach by itself).
/// - Anything else that is not a well-formed frame (bad magic where a header must be,
///   impossible sizes, a frame whose atom count differs from the first frame's, coordinates
///   that do not decode) throws io_error naming the file and the frame's byte offset. After
///   such an error the reader stays at that frame.
///
/// Move-only; owns its file descriptors (a moved-from reader may only be destroyed or assigned
/// to). Not thread-safe: one owner thread at a time.
class xtc_stream_reader {
public:
  explicit xtc_stream_reader(std::filesystem::path path, xtc_stream_options options = {});
  ~xtc_stream_reader();
  xtc_stream_reader(xtc_stream_reader&&) noexcept;
  xtc_stream_reader& operator=(xtc_stream_reader&&) noexcept;
  xtc_stream_reader(const xtc_stream_reader&) = delete;
  xtc_stream_reader& operator=(const xtc_stream_reader&) = delete;

  /// The next complete frame, or nothing when there is none yet. Never blocks on the file
  /// growing. Throws io_error on corrupt data or when the file cannot be read.
  [[nodiscard]] std::optional<xtc_frame> try_next();
  /// Like `try_next` but fills `into`, reusing its memory (no page faults for a fresh buffer
  /// per frame). Returns false, leaving `into` unchanged, when there is no complete next frame;
  /// after an exception `into` holds unspecified values.
  [[nodiscard]] bool try_next(xtc_frame& into);

  /// Like `try_next` but waits up to `timeout` for the next frame, woken by inotify when the
  /// file changes (and at least every 100 ms, when `cancelled` is asked too). Returns nothing on
  /// timeout or as soon as `cancelled()` returns true.
  [[nodiscard]] std::optional<xtc_frame> wait_next(std::chrono::milliseconds timeout,
                                                   const std::function<bool()>& cancelled = {});

  /// Resume point: byte offset of the next frame to read.
  [[nodiscard]] std::uint64_t offset() const noexcept;
  /// Resume point: step of the last returned frame (or the one given in the options).
  [[nodiscard]] std::optional<std::int64_t> last_step() const noexcept;
  /// Bytes after `offset()` at the last look: non-zero after `try_next` returned nothing means
  /// an incomplete frame (still being written, or cut short if the writer has exited).
  [[nodiscard]] std::uint64_t pending_bytes() const noexcept;
  /// How many times the reader went back to byte 0 (see the re-synchronisation rule).
  [[nodiscard]] std::uint64_t resyncs() const noexcept;
  [[nodiscard]] const std::filesystem::path& path() const noexcept;

private:
  struct state;
  std::unique_ptr<state> state_;
};

struct xtc_read_options {
  /// 0 decodes every atom; otherwise only the first N.
  std::size_t leading_atoms = 0;
  /// Decoding threads; 0 = one per hardware thread.
  unsigned threads = 0;
  /// Skip frames whose step is not greater than an earlier frame's (restart duplicates). Off
  /// by default: every frame of the file is returned, as GROMACS and MDAnalysis do.
  bool drop_repeated_steps = false;
};

/// Frame boundaries of a whole file, from the headers alone (no decoding). Throws io_error
/// when a header is malformed or the last frame is incomplete.
std::vector<xtc_frame_info> index_xtc(const std::filesystem::path& path);

/// Number of frames in a whole file (see `index_xtc`).
std::size_t count_frames(const std::filesystem::path& path);

/// Every frame of a whole file: scans the frame boundaries, then decodes frames in parallel.
/// Throws io_error (the one of the earliest bad frame) on malformed or incomplete files; use
/// `xtc_stream_reader` for a file that is still being written.
std::vector<xtc_frame> read_xtc(const std::filesystem::path& path,
                                const xtc_read_options& options = {});

} // namespace mummi::md
