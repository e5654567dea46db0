#include "mummi/md_bridge/xtc.hpp"

#include "mummi/md_bridge/errors.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace mummi::md {

namespace {

// --- Format constants -----------------------------------------------------------------------
//
// An XTC file is a sequence of XDR (big-endian, 4-byte aligned) frames:
//   int magic (1995), int natoms, int step, float time_ps, float box_nm[3][3], int natoms,
//   then for natoms <= 9: float x_nm[natoms][3];
//   otherwise: float precision, int min[3], int max[3], int small_index, int byte_count,
//   byte_count bytes of compressed coordinates padded with zeros to a multiple of 4.

constexpr std::int32_t xtc_magic = 1995;
constexpr std::size_t short_header_bytes = 56; ///< up to the repeated atom count
constexpr std::size_t full_header_bytes = 92;  ///< up to the compressed byte count
constexpr std::uint32_t max_uncompressed_atoms = 9;
/// Zero bytes after the compressed data in every decode buffer: one decoding step reads at
/// most 96 + 6 + 10 * 72 bits (about 103 bytes) plus an 8-byte word, so a step that starts
/// inside the data never reads past the padding.
constexpr std::size_t decode_padding = 256;

/// Sizes of the small-integer ranges (about 2^(i/3)): three small integers below
/// small_sizes[i] fit in i bits.
constexpr std::array<std::uint32_t, 73> small_sizes
  = {0,        0,        0,       0,       0,       0,       0,       0,       0,       8,
     10,       12,       16,      20,      25,      32,      40,      50,      64,      80,
     101,      128,      161,     203,     256,     322,     406,     512,     645,     812,
     1024,     1290,     1625,    2048,    2580,    3250,    4096,    5060,    6501,    8192,
     10321,    13003,    16384,   20642,   26007,   32768,   41285,   52015,   65536,   82570,
     104031,   131072,   165140,  208063,  262144,  330280,  416127,  524287,  660561,  832255,
     1048576,  1321122,  1664510, 2097152, 2642245, 3329021, 4194304, 5284491, 6658042, 8388607,
     10568983, 13316085, 16777216};
constexpr int first_small_index = 9;
constexpr int last_small_index = static_cast<int>(small_sizes.size()) - 1;

__extension__ typedef unsigned __int128 uint128; // NOLINT(modernize-use-using)

// --- Byte order -----------------------------------------------------------------------------

std::uint32_t load_be32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little)
    v = __builtin_bswap32(v);
  return v;
}

std::uint64_t load_be64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little)
    v = __builtin_bswap64(v);
  return v;
}

std::int32_t load_int(const std::uint8_t* p) {
  return static_cast<std::int32_t>(load_be32(p));
}

float load_float(const std::uint8_t* p) {
  return std::bit_cast<float>(load_be32(p));
}

// --- Errors ---------------------------------------------------------------------------------

[[noreturn]] void fail(const std::filesystem::path& path, std::uint64_t offset,
                       const std::string& problem) {
  throw io_error(path, 0, "frame at byte " + std::to_string(offset) + ": " + problem);
}

/// Throws for the failed system call whose errno value is `error` (read right after the call).
[[noreturn]] void fail_system(const std::filesystem::path& path, const std::string& what,
                              int error) {
  throw io_error(path, 0, what + ": " + std::generic_category().message(error));
}

const std::filesystem::path& memory_name() {
  static const std::filesystem::path name("<memory>");
  return name;
}

// --- Frame header ---------------------------------------------------------------------------

struct frame_header {
  std::uint32_t natoms = 0;
  std::int32_t step = 0;
  float time_ps = 0;
  box_matrix box_nm{};
  bool compressed = false;
  float precision = 0;
  std::array<std::int32_t, 3> min_int{};
  std::array<std::uint32_t, 3> range{}; ///< max - min + 1 per axis
  int small_index = 0;
  std::uint32_t data_bytes = 0;  ///< compressed bytes, without the alignment padding
  std::uint64_t header_size = 0; ///< bytes before the coordinates
  std::uint64_t frame_size = 0;  ///< header + coordinates + padding
};

/// Parses the header in `bytes[0, available)`. Checks every field that is there; returns
/// nothing when the header is not complete yet.
std::optional<frame_header> parse_header(const std::uint8_t* bytes, std::size_t available,
                                         const std::filesystem::path& path, std::uint64_t offset) {
  if (available >= 4) {
    const auto magic = load_int(bytes);
    if (magic != xtc_magic)
      fail(path, offset,
           "no XTC frame header here (magic number " + std::to_string(magic) + ", expected "
             + std::to_string(xtc_magic) + ")");
  }
  std::int32_t natoms = 0;
  if (available >= 8) {
    natoms = load_int(bytes + 4);
    if (natoms < 0)
      fail(path, offset, "negative atom count " + std::to_string(natoms));
  }
  if (available < short_header_bytes)
    return std::nullopt;
  frame_header h;
  h.natoms = static_cast<std::uint32_t>(natoms);
  h.step = load_int(bytes + 8);
  h.time_ps = load_float(bytes + 12);
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t c = 0; c < 3; ++c)
      h.box_nm[r][c] = load_float(bytes + 16 + 4 * (3 * r + c));
  const auto natoms_again = load_int(bytes + 52);
  if (natoms_again != natoms)
    fail(path, offset,
         "the header's two atom counts disagree (" + std::to_string(natoms) + " and "
           + std::to_string(natoms_again) + ")");
  if (h.natoms <= max_uncompressed_atoms) {
    h.header_size = short_header_bytes;
    h.frame_size = short_header_bytes + std::uint64_t{12} * h.natoms;
    return h;
  }
  if (available < full_header_bytes)
    return std::nullopt;
  h.compressed = true;
  h.precision = load_float(bytes + 56);
  if (!(std::isfinite(h.precision) && h.precision > 0))
    fail(path, offset, "precision " + std::to_string(h.precision) + " is not a positive number");
  constexpr std::array<char, 3> axis = {'x', 'y', 'z'};
  for (std::size_t k = 0; k < 3; ++k) {
    const std::int64_t lo = load_int(bytes + 60 + 4 * k);
    const std::int64_t hi = load_int(bytes + 72 + 4 * k);
    if (hi < lo || hi - lo + 1 > std::int64_t{std::numeric_limits<std::uint32_t>::max()})
      fail(path, offset,
           std::string("impossible integer range of ") + axis[k] + " (" + std::to_string(lo)
             + " to " + std::to_string(hi) + ")");
    h.min_int[k] = static_cast<std::int32_t>(lo);
    h.range[k] = static_cast<std::uint32_t>(hi - lo + 1);
  }
  h.small_index = load_int(bytes + 84);
  if (h.small_index < first_small_index || h.small_index > last_small_index)
    fail(path, offset,
         "small-integer index " + std::to_string(h.small_index) + " outside "
           + std::to_string(first_small_index) + ".." + std::to_string(last_small_index));
  const std::int64_t data_bytes = load_int(bytes + 88);
  // Every atom costs at least 2 bits (a 1-bit triplet and the run flag) and at most 102
  // (three 32-bit integers and the 6 run bits).
  if (data_bytes < 0 || data_bytes > 13 * std::int64_t{h.natoms} + 8
      || std::int64_t{h.natoms} > 4 * data_bytes + 4)
    fail(path, offset,
         "compressed size of " + std::to_string(data_bytes) + " bytes is impossible for "
           + std::to_string(h.natoms) + " atoms");
  h.data_bytes = static_cast<std::uint32_t>(data_bytes);
  h.header_size = full_header_bytes;
  h.frame_size = full_header_bytes + ((std::uint64_t{h.data_bytes} + 3) & ~std::uint64_t{3});
  return h;
}

// --- Compressed coordinates -----------------------------------------------------------------
//
// The compressed stream is a big-endian bit stream. Each step holds one "large" atom (an
// absolute position: three integers in [0, range) packed into one number, or three plain
// integers when a range exceeds 2^24), one flag bit (1: a 5-bit code follows that sets the run
// length and whether the small-integer size grows or shrinks after this step), then `run / 3`
// "small" atoms, each a packed triplet of displacements from the atom before. The first small
// atom is the one that comes first in the file (the writer swapped it with the large one,
// which suits water's O-H-H order).
//
// The helpers are always inlined so that the bit position and the coordinates stay in
// registers: spilling them to memory costs store-forwarding stalls on every atom.

#define MUMMI_XTC_INLINE [[gnu::always_inline]] inline

struct triplet {
  std::uint32_t x, y, z;
};

/// The next `n` bits (1 <= n <= 57) at bit `position` of `data`, most significant bit first.
/// `data` must extend 8 bytes past the last bit read.
MUMMI_XTC_INLINE std::uint64_t peek_bits(const std::uint8_t* data, std::uint64_t position,
                                         unsigned n) {
  return (load_be64(data + (position >> 3)) << (position & 7)) >> (64 - n);
}

/// An `n`-bit number (n <= 64) stored as 8-bit groups, least significant group first, the last
/// group holding the n % 8 highest bits; each group stored most significant bit first.
MUMMI_XTC_INLINE std::uint64_t take_grouped(const std::uint8_t* data, std::uint64_t& position,
                                            unsigned n) {
  std::uint64_t v;
  if (n <= 57) {
    v = peek_bits(data, position, n);
  } else {
    v = (peek_bits(data, position, n - 32) << 32) | peek_bits(data, position + n - 32, 32);
  }
  position += n;
  const unsigned groups = n >> 3;
  const unsigned rest = n & 7;
  std::uint64_t value = 0;
  if (groups > 0)
    value = __builtin_bswap64(v >> rest) >> (64 - 8 * groups);
  if (rest > 0)
    value |= (v & ((std::uint64_t{1} << rest) - 1)) << (8 * groups);
  return value;
}

/// The same layout for 64 < n <= 72 bits.
uint128 take_grouped_wide(const std::uint8_t* data, std::uint64_t& position, unsigned n) {
  uint128 value = 0;
  unsigned shift = 0;
  for (; n >= 8; n -= 8, shift += 8, position += 8)
    value |= static_cast<uint128>(peek_bits(data, position, 8)) << shift;
  if (n > 0) {
    value |= static_cast<uint128>(peek_bits(data, position, n)) << shift;
    position += n;
  }
  return value;
}

/// Exact division by a fixed divisor 1 <= d < 2^32 without a divide instruction:
/// n / d = floor(n * c / 2^96) with c = ceil(2^96 / d) for every n < 2^64, and
/// n / d = floor(n * ceil(2^64 / d) / 2^64) for every n < 2^32 (d >= 2).
struct fast_divisor {
  constexpr fast_divisor() = default;
  constexpr explicit fast_divisor(std::uint32_t divisor) : d(divisor) {
    const uint128 c = ((static_cast<uint128>(1) << 96) - 1) / divisor + 1;
    c_low = static_cast<std::uint64_t>(c);
    c_high = static_cast<std::uint64_t>(c >> 64);
    c32 = divisor >= 2 ? ~std::uint64_t{0} / divisor + 1 : 0;
  }
  [[nodiscard]] MUMMI_XTC_INLINE std::uint64_t quotient(std::uint64_t n) const {
    const uint128 low = static_cast<uint128>(n) * c_low;
    const uint128 high = static_cast<uint128>(n) * c_high + static_cast<std::uint64_t>(low >> 64);
    return static_cast<std::uint64_t>(high >> 32);
  }
  [[nodiscard]] MUMMI_XTC_INLINE std::uint32_t quotient32(std::uint32_t n) const {
    return static_cast<std::uint32_t>((static_cast<uint128>(c32) * n) >> 64);
  }
  std::uint32_t d = 1;
  std::uint64_t c_low = 0;
  std::uint64_t c_high = 0;
  std::uint64_t c32 = 0;
};

/// Splits value = (x * r1 + y) * r2 + z for a value below 2^64.
MUMMI_XTC_INLINE triplet split(std::uint64_t value, const fast_divisor& r1,
                               const fast_divisor& r2) {
  const auto xy = r2.quotient(value);
  const auto x = r1.quotient(xy);
  // x exceeds 32 bits only in corrupt data: clamp it to a value the caller rejects.
  return {static_cast<std::uint32_t>(std::min<std::uint64_t>(x, 0xffffffffu)),
          static_cast<std::uint32_t>(xy - x * r1.d), static_cast<std::uint32_t>(value - xy * r2.d)};
}

/// The same for a value below 2^32 and divisors >= 2.
MUMMI_XTC_INLINE triplet split32(std::uint32_t value, const fast_divisor& r1,
                                 const fast_divisor& r2) {
  const auto xy = r2.quotient32(value);
  const auto x = r1.quotient32(xy);
  return {x, xy - x * r1.d, value - xy * r2.d};
}

/// The same for a value below 2^72 (rare: ranges whose product exceeds 2^64). x may not fit
/// 32 bits in corrupt data: it is then clamped to a value the caller rejects.
triplet split_wide(uint128 value, std::uint32_t r1, std::uint32_t r2) {
  const uint128 xy = value / r2;
  const uint128 x = xy / r1;
  return {static_cast<std::uint32_t>(std::min<uint128>(x, 0xffffffffu)),
          static_cast<std::uint32_t>(xy - x * r1), static_cast<std::uint32_t>(value - xy * r2)};
}

constexpr auto small_divisors = [] {
  std::array<fast_divisor, small_sizes.size()> t{};
  for (std::size_t i = first_small_index; i < small_sizes.size(); ++i)
    t[i] = fast_divisor(small_sizes[i]);
  return t;
}();

MUMMI_XTC_INLINE vec3 scaled(std::int32_t x, std::int32_t y, std::int32_t z, float inverse) {
  return {static_cast<float>(x) * inverse, static_cast<float>(y) * inverse,
          static_cast<float>(z) * inverse};
}

MUMMI_XTC_INLINE std::int32_t add_wrapping(std::int32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) + b);
}

/// Ends decoding: returns false ("read more of the frame") when `partial` (a problem found
/// after reading past the bytes held, where padding stands for the rest of the frame),
/// otherwise throws.
bool stop(const std::filesystem::path& path, std::uint64_t offset, std::size_t atom, bool partial,
          const std::string& what) {
  if (partial)
    return false;
  fail(path, offset,
       "corrupt compressed coordinates at atom " + std::to_string(atom) + ": " + what);
}

/// Decodes the compressed coordinates of atoms [0, wanted) (and possibly up to 10 more) into
/// `out`, which must hold min(natoms, wanted + 10) elements. `data` holds `available` bytes of
/// the frame's compressed data followed by `decode_padding` readable bytes. Returns false when
/// those bytes end before `wanted` atoms are decoded but the frame has more.
bool decode_compressed(const frame_header& h, const std::uint8_t* data, std::size_t available,
                       std::size_t wanted, vec3* out, const std::filesystem::path& path,
                       std::uint64_t offset) {
  const bool whole = available >= h.data_bytes;
  const std::uint64_t limit = std::uint64_t{std::min<std::size_t>(available, h.data_bytes)} * 8;
  const auto r0 = h.range[0];
  const auto r1 = h.range[1];
  const auto r2 = h.range[2];
  const fast_divisor d1(r1);
  const fast_divisor d2(r2);
  // Large atoms: one packed number when every range fits 24 bits, else three plain integers.
  const bool separate = (r0 | r1 | r2) > 0xffffffu;
  const auto bits0 = static_cast<unsigned>(std::bit_width(r0));
  const auto bits1 = static_cast<unsigned>(std::bit_width(r1));
  const auto bits2 = static_cast<unsigned>(std::bit_width(r2));
  unsigned packed_bits = 0;
  if (!separate) {
    const uint128 product = static_cast<uint128>(std::uint64_t{r0} * r1) * r2;
    const auto high = static_cast<std::uint64_t>(product >> 64);
    packed_bits = high != 0
      ? 64 + static_cast<unsigned>(std::bit_width(high))
      : static_cast<unsigned>(std::bit_width(static_cast<std::uint64_t>(product)));
  }
  const auto min_x = h.min_int[0];
  const auto min_y = h.min_int[1];
  const auto min_z = h.min_int[2];
  const auto inverse = static_cast<float>(1.0 / static_cast<double>(h.precision));

  int small_index = h.small_index;
  auto smaller = static_cast<std::int32_t>(
    small_sizes[static_cast<std::size_t>(std::max(first_small_index, small_index - 1))] / 2);
  auto small_half = static_cast<std::int32_t>(small_sizes[small_index] / 2);

  std::uint64_t position = 0;
  std::uint32_t run = 0; // small atoms after a large one, times 3
  std::size_t i = 0;
  const std::size_t natoms = h.natoms;
  while (i < wanted) {
    triplet t;
    if (packed_bits != 0 && packed_bits <= 64) {
      t = split(take_grouped(data, position, packed_bits), d1, d2);
    } else if (separate) {
      t.x = static_cast<std::uint32_t>(peek_bits(data, position, bits0));
      t.y = static_cast<std::uint32_t>(peek_bits(data, position + bits0, bits1));
      t.z = static_cast<std::uint32_t>(peek_bits(data, position + bits0 + bits1, bits2));
      position += bits0 + bits1 + bits2;
    } else {
      t = split_wide(take_grouped_wide(data, position, packed_bits), r1, r2);
    }
    if (t.x >= r0 || t.y >= r1 || t.z >= r2) [[unlikely]]
      return stop(path, offset, i, !whole && position > limit,
                  "a coordinate lies outside the frame's integer range");
    std::int32_t x = add_wrapping(min_x, t.x);
    std::int32_t y = add_wrapping(min_y, t.y);
    std::int32_t z = add_wrapping(min_z, t.z);

    int size_change = 0;
    const bool flag = peek_bits(data, position, 1) != 0;
    position += 1;
    if (flag) {
      const auto code = static_cast<std::uint32_t>(peek_bits(data, position, 5));
      position += 5;
      size_change = static_cast<int>(code % 3) - 1;
      run = code - code % 3;
    }
    if (run == 0) {
      out[i++] = scaled(x, y, z, inverse);
    } else {
      const std::size_t count = run / 3;
      if (i + 1 + count > natoms) [[unlikely]]
        return stop(path, offset, i, !whole && position > limit,
                    "a run of " + std::to_string(count + 1) + " atoms goes past the frame's "
                      + std::to_string(natoms) + " atoms");
      const auto& divisor = small_divisors[small_index];
      const auto small_size = divisor.d;
      const auto half = static_cast<std::uint32_t>(small_half);
      for (std::size_t k = 0; k < count; ++k) {
        const auto n = static_cast<unsigned>(small_index);
        if (n <= 32)
          t = split32(static_cast<std::uint32_t>(take_grouped(data, position, n)), divisor,
                      divisor);
        else if (n <= 64)
          t = split(take_grouped(data, position, n), divisor, divisor);
        else
          t = split_wide(take_grouped_wide(data, position, n), small_size, small_size);
        if (t.x >= small_size) [[unlikely]]
          return stop(path, offset, i, !whole && position > limit,
                      "a small displacement lies outside its range");
        const std::int32_t sx = add_wrapping(x, t.x - half);
        const std::int32_t sy = add_wrapping(y, t.y - half);
        const std::int32_t sz = add_wrapping(z, t.z - half);
        out[i++] = scaled(sx, sy, sz, inverse);
        if (k == 0)
          out[i++] = scaled(x, y, z, inverse);
        x = sx;
        y = sy;
        z = sz;
      }
    }
    if (size_change != 0) {
      small_index += size_change;
      if (small_index < first_small_index || small_index > last_small_index) [[unlikely]]
        return stop(path, offset, i, !whole && position > limit,
                    "the small-integer index leaves " + std::to_string(first_small_index) + ".."
                      + std::to_string(last_small_index));
      if (size_change < 0) {
        small_half = smaller;
        smaller = small_index > first_small_index
          ? static_cast<std::int32_t>(small_sizes[small_index - 1] / 2)
          : 0;
      } else {
        smaller = small_half;
        small_half = static_cast<std::int32_t>(small_sizes[small_index] / 2);
      }
    }
    if (position > limit) [[unlikely]]
      return stop(path, offset, i, !whole,
                  "the " + std::to_string(h.data_bytes) + " compressed bytes end before atom "
                    + std::to_string(natoms));
  }
  return true;
}

#undef MUMMI_XTC_INLINE

// --- Files ----------------------------------------------------------------------------------

/// An owned file descriptor.
class unique_fd {
public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  ~unique_fd() {
    reset();
  }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  [[nodiscard]] int get() const noexcept {
    return fd_;
  }
  explicit operator bool() const noexcept {
    return fd_ >= 0;
  }
  void reset() noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
};

unique_fd open_file(const std::filesystem::path& path) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int error = errno;
    fail_system(path, "cannot open", error);
  }
  return fd;
}

struct file_identity {
  dev_t device = 0;
  ino_t inode = 0;
  std::uint64_t size = 0;
};

file_identity identify(int fd, const std::filesystem::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    fail_system(path, "cannot stat", error);
  }
  if (!S_ISREG(st.st_mode))
    throw io_error(path, 0, "not a regular file");
  return {st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size)};
}

/// Reads up to `n` bytes at `offset`; fewer only at the end of the file.
std::size_t read_at(int fd, void* buffer, std::size_t n, std::uint64_t offset,
                    const std::filesystem::path& path) {
  auto* p = static_cast<char*>(buffer);
  std::size_t done = 0;
  while (done < n) {
    const auto got = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      const int error = errno;
      if (error == EINTR)
        continue;
      fail_system(path, "cannot read at byte " + std::to_string(offset + done), error);
    }
    if (got == 0)
      break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

/// Makes `v` hold `n` elements. Fresh memory of a large vector is first mapped in one system
/// call (MADV_POPULATE_WRITE, Linux 5.14+; ignored where unsupported) instead of one page fault
/// per 4 KiB page, which costs as much as decoding the frame on a virtual machine.
void resize_prefaulted(std::vector<vec3>& v, std::size_t n) {
  constexpr std::size_t page = 4096;
  constexpr std::size_t worth_it = 64 * page;
  if (n > v.capacity() && n * sizeof(vec3) >= worth_it) {
    v.reserve(n);
    auto* begin = reinterpret_cast<char*>(v.data() + v.size());
    auto* end = reinterpret_cast<char*>(v.data() + n);
    const auto misalignment = reinterpret_cast<std::uintptr_t>(begin) % page;
    auto* first = begin + (misalignment == 0 ? 0 : page - misalignment);
    const auto length = (static_cast<std::size_t>(end - first) / page) * page;
    if (first < end && length > 0)
      (void)::madvise(first, length, MADV_POPULATE_WRITE);
  }
  v.resize(n);
}

void set_header_fields(xtc_frame& f, const frame_header& h, std::uint64_t offset) {
  f.step = h.step;
  f.time_ps = h.time_ps;
  f.box_nm = h.box_nm;
  f.precision = h.compressed ? h.precision : 0.0f;
  f.natoms = h.natoms;
  f.offset = offset;
}

std::size_t wanted_atoms(const frame_header& h, std::size_t leading_atoms) {
  return leading_atoms == 0 ? std::size_t{h.natoms}
                            : std::min<std::size_t>(leading_atoms, h.natoms);
}

void decode_uncompressed(const std::uint8_t* floats, std::size_t wanted, xtc_frame& f) {
  f.positions_nm.resize(wanted);
  for (std::size_t a = 0; a < wanted; ++a)
    for (std::size_t d = 0; d < 3; ++d)
      f.positions_nm[a][d] = load_float(floats + 4 * (3 * a + d));
}

/// Reads the coordinates of the frame at `offset` (whose header is `h`) from `fd` and decodes
/// the leading atoms. Only the bytes those atoms need are read (growing the read when the
/// first guess falls short). `buffer` is scratch space kept between calls; `f` is filled
/// reusing its memory.
void read_frame(int fd, const std::filesystem::path& path, const frame_header& h,
                std::uint64_t offset, std::size_t leading_atoms, std::vector<std::uint8_t>& buffer,
                xtc_frame& f) {
  set_header_fields(f, h, offset);
  const auto wanted = wanted_atoms(h, leading_atoms);
  const auto data_offset = offset + h.header_size;
  const auto truncated = [&]() {
    fail(path, offset,
         "the file ends inside this frame (it needs " + std::to_string(h.frame_size) + " bytes)");
  };
  if (!h.compressed) {
    const std::size_t n = std::size_t{12} * h.natoms;
    buffer.resize(std::max<std::size_t>(buffer.size(), n));
    if (read_at(fd, buffer.data(), n, data_offset, path) != n)
      truncated();
    decode_uncompressed(buffer.data(), wanted, f);
    return;
  }
  std::size_t want_bytes = h.data_bytes;
  if (wanted < h.natoms) {
    // Guess from the frame's mean bytes per atom, with margin.
    const double per_atom = static_cast<double>(h.data_bytes) / h.natoms;
    want_bytes = std::min<std::size_t>(
      h.data_bytes, static_cast<std::size_t>(per_atom * static_cast<double>(wanted) * 1.25) + 1024);
  }
  resize_prefaulted(f.positions_nm, std::min<std::size_t>(h.natoms, wanted + 10));
  for (;;) {
    if (buffer.size() < want_bytes + decode_padding)
      buffer.resize(want_bytes + decode_padding);
    if (read_at(fd, buffer.data(), want_bytes, data_offset, path) != want_bytes)
      truncated();
    std::memset(buffer.data() + want_bytes, 0, decode_padding);
    if (decode_compressed(h, buffer.data(), want_bytes, wanted, f.positions_nm.data(), path,
                          offset))
      break;
    want_bytes = std::min<std::size_t>(h.data_bytes, 2 * want_bytes);
  }
  f.positions_nm.resize(wanted);
}

struct indexed_frame {
  std::uint64_t offset = 0;
  frame_header header;
};

std::vector<indexed_frame> index_frames(int fd, const std::filesystem::path& path) {
  const auto size = identify(fd, path).size;
  std::vector<indexed_frame> frames;
  std::array<std::uint8_t, full_header_bytes> bytes{};
  std::uint64_t offset = 0;
  while (offset < size) {
    const auto n = read_at(fd, bytes.data(), std::min<std::uint64_t>(bytes.size(), size - offset),
                           offset, path);
    const auto h = parse_header(bytes.data(), n, path, offset);
    if (!h)
      fail(path, offset,
           "the file ends inside this frame's header (" + std::to_string(n) + " bytes)");
    if (offset + h->frame_size > size)
      fail(path, offset,
           "the file ends inside this frame (it needs " + std::to_string(h->frame_size) + " bytes, "
             + std::to_string(size - offset) + " are there)");
    if (!frames.empty() && h->natoms != frames.front().header.natoms)
      fail(path, offset,
           "the frame has " + std::to_string(h->natoms) + " atoms, the first frame "
             + std::to_string(frames.front().header.natoms));
    frames.push_back({offset, *h});
    offset += h->frame_size;
  }
  return frames;
}

} // namespace

// --- Public: in-memory decoding ---------------------------------------------------------------

xtc_frame decode_xtc_frame(std::span<const std::uint8_t> bytes, std::size_t leading_atoms) {
  const auto& name = memory_name();
  const auto h = parse_header(bytes.data(), bytes.size(), name, 0);
  if (!h || h->frame_size > bytes.size())
    fail(name, 0,
         "the frame is incomplete (" + std::to_string(bytes.size()) + " bytes"
           + (h ? ", it needs " + std::to_string(h->frame_size) + ")" : ")"));
  xtc_frame f;
  set_header_fields(f, *h, 0);
  const auto wanted = wanted_atoms(*h, leading_atoms);
  const auto* data = bytes.data() + h->header_size;
  if (!h->compressed) {
    decode_uncompressed(data, wanted, f);
    return f;
  }
  std::vector<std::uint8_t> padded(h->data_bytes + decode_padding, 0);
  std::memcpy(padded.data(), data, h->data_bytes);
  f.positions_nm.resize(std::min<std::size_t>(h->natoms, wanted + 10));
  decode_compressed(*h, padded.data(), h->data_bytes, wanted, f.positions_nm.data(), name, 0);
  f.positions_nm.resize(wanted);
  return f;
}

// --- Public: whole files ----------------------------------------------------------------------

std::vector<xtc_frame_info> index_xtc(const std::filesystem::path& path) {
  const auto fd = open_file(path);
  const auto frames = index_frames(fd.get(), path);
  std::vector<xtc_frame_info> out;
  out.reserve(frames.size());
  for (const auto& f : frames)
    out.push_back(
      {f.offset, f.header.frame_size, f.header.step, f.header.time_ps, f.header.natoms});
  return out;
}

std::size_t count_frames(const std::filesystem::path& path) {
  const auto fd = open_file(path);
  return index_frames(fd.get(), path).size();
}

std::vector<xtc_frame> read_xtc(const std::filesystem::path& path,
                                const xtc_read_options& options) {
  const auto fd = open_file(path);
  auto index = index_frames(fd.get(), path);
  if (options.drop_repeated_steps) {
    std::optional<std::int64_t> last;
    std::erase_if(index, [&last](const indexed_frame& f) {
      if (last && f.header.step <= *last)
        return true;
      last = f.header.step;
      return false;
    });
  }
  std::vector<xtc_frame> frames(index.size());
  unsigned threads
    = options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, index.size()));

  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::size_t error_frame = index.size();
  std::exception_ptr error;
  const auto work = [&]() {
    std::vector<std::uint8_t> buffer;
    while (!failed.load(std::memory_order_relaxed)) {
      const auto k = next.fetch_add(1, std::memory_order_relaxed);
      if (k >= index.size())
        return;
      try {
        read_frame(fd.get(), path, index[k].header, index[k].offset, options.leading_atoms, buffer,
                   frames[k]);
      } catch (...) {
        const std::lock_guard lock(error_mutex);
        if (k < error_frame) {
          error_frame = k;
          error = std::current_exception();
        }
        failed = true;
      }
    }
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::jthread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back(work);
  }
  if (error)
    std::rethrow_exception(error);
  return frames;
}

// --- Public: streaming reader -----------------------------------------------------------------

struct xtc_stream_reader::state {
  std::filesystem::path path;
  xtc_stream_options options;
  unique_fd fd;
  file_identity opened{};
  std::uint64_t offset = 0;
  /// True when `offset` was reached by walking frames from byte 0 of this file.
  bool offset_walked = true;
  std::optional<std::int64_t> last_step;
  std::optional<std::uint32_t> natoms;
  std::uint64_t pending = 0;
  std::uint64_t resyncs = 0;
  std::optional<std::uint64_t> size_seen;
  /// Header bytes of the last frame passed (returned or skipped), to notice a rewritten file.
  std::optional<std::uint64_t> passed_offset;
  std::array<std::uint8_t, full_header_bytes> passed_header{};
  std::size_t passed_header_size = 0;
  std::vector<std::uint8_t> buffer;
  unique_fd inotify;

  /// Opens the file if it exists, or reopens it when the path now names another file.
  /// Returns false while there is no file.
  bool open_current() {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int error = errno;
      if (error != ENOENT && error != ENOTDIR)
        fail_system(path, "cannot stat", error);
      return static_cast<bool>(fd); // removed: keep reading what is open, if anything
    }
    if (fd && st.st_dev == opened.device && st.st_ino == opened.inode)
      return true;
    unique_fd fresh(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fresh) {
      const int error = errno;
      if (error == ENOENT)
        return static_cast<bool>(fd);
      fail_system(path, "cannot open", error);
    }
    const auto id = identify(fresh.get(), path);
    const bool replaced = static_cast<bool>(fd);
    fd = std::move(fresh);
    opened = id;
    size_seen.reset();
    if (replaced)
      restart();
    return true;
  }

  void restart() {
    offset = 0;
    offset_walked = true;
    passed_offset.reset();
    ++resyncs;
  }

  bool passed_header_changed() {
    if (!passed_offset)
      return false;
    std::array<std::uint8_t, full_header_bytes> now{};
    const auto n = read_at(fd.get(), now.data(), passed_header_size, *passed_offset, path);
    return n != passed_header_size
      || std::memcmp(now.data(), passed_header.data(), passed_header_size) != 0;
  }

  void pass(std::uint64_t frame_offset, const frame_header& h,
            const std::array<std::uint8_t, full_header_bytes>& bytes) {
    passed_offset = frame_offset;
    passed_header_size = static_cast<std::size_t>(h.header_size);
    std::memcpy(passed_header.data(), bytes.data(), passed_header_size);
    offset = frame_offset + h.frame_size;
    offset_walked = true;
    natoms = h.natoms;
  }

  bool next(xtc_frame& into) {
    if (!open_current()) {
      pending = 0;
      return false;
    }
    for (;;) {
      const auto size = identify(fd.get(), path).size;
      if (size < offset) {
        restart();
        continue;
      }
      if (size_seen != size) {
        size_seen = size;
        if (passed_header_changed()) {
          restart();
          continue;
        }
      }
      pending = size - offset;
      if (pending == 0)
        return false;
      std::array<std::uint8_t, full_header_bytes> bytes{};
      const auto n = read_at(fd.get(), bytes.data(), std::min<std::uint64_t>(bytes.size(), pending),
                             offset, path);
      std::optional<frame_header> h;
      try {
        h = parse_header(bytes.data(), n, path, offset);
        if (h && natoms && h->natoms != *natoms)
          fail(path, offset,
               "the frame has " + std::to_string(h->natoms) + " atoms, the frames before it "
                 + std::to_string(*natoms));
      } catch (const io_error&) {
        if (!offset_walked) {
          restart();
          continue;
        }
        throw;
      }
      if (!h || h->frame_size > pending)
        return false;
      const auto frame_offset = offset;
      if (last_step && h->step <= *last_step) {
        pass(frame_offset, *h, bytes);
        continue;
      }
      read_frame(fd.get(), path, *h, frame_offset, options.leading_atoms, buffer, into);
      pass(frame_offset, *h, bytes);
      last_step = h->step;
      pending = size - offset;
      return true;
    }
  }

  /// Waits up to `slice` for a change of the file (inotify on its directory, which also sees
  /// the file appear or be replaced).
  void wait_for_change(std::chrono::milliseconds slice) {
    const auto deadline = std::chrono::steady_clock::now() + slice;
    if (!inotify) {
      unique_fd in(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
      auto dir = path.parent_path();
      if (dir.empty())
        dir = ".";
      if (in
          && ::inotify_add_watch(in.get(), dir.c_str(),
                                 IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO)
            >= 0)
        inotify = std::move(in);
    }
    const auto name = path.filename().string();
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline)
        return;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
      if (!inotify) {
        std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
        return;
      }
      pollfd p{inotify.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        continue;
      alignas(inotify_event) std::array<char, 4096> events;
      bool ours = false;
      for (;;) {
        const auto got = ::read(inotify.get(), events.data(), events.size());
        if (got <= 0)
          break;
        for (std::size_t at = 0; at < static_cast<std::size_t>(got);) {
          inotify_event e{};
          std::memcpy(&e, events.data() + at, sizeof e);
          const char* event_name = events.data() + at + sizeof(inotify_event);
          if (e.len == 0 || name == event_name || (e.mask & IN_Q_OVERFLOW) != 0)
            ours = true;
          at += sizeof(inotify_event) + e.len;
        }
      }
      if (ours)
        return;
    }
  }
};

xtc_stream_reader::xtc_stream_reader(std::filesystem::path path, xtc_stream_options options)
  : state_(std::make_unique<state>()) {
  state_->path = std::move(path);
  state_->options = options;
  state_->offset = options.start_offset;
  state_->offset_walked = options.start_offset == 0;
  state_->last_step = options.last_step;
}

xtc_stream_reader::~xtc_stream_reader() = default;
xtc_stream_reader::xtc_stream_reader(xtc_stream_reader&&) noexcept = default;
xtc_stream_reader& xtc_stream_reader::operator=(xtc_stream_reader&&) noexcept = default;

std::optional<xtc_frame> xtc_stream_reader::try_next() {
  xtc_frame frame;
  if (state_->next(frame))
    return frame;
  return std::nullopt;
}

bool xtc_stream_reader::try_next(xtc_frame& into) {
  return state_->next(into);
}

std::optional<xtc_frame> xtc_stream_reader::wait_next(std::chrono::milliseconds timeout,
                                                      const std::function<bool()>& cancelled) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (xtc_frame frame; state_->next(frame))
      return frame;
    if (cancelled && cancelled())
      return std::nullopt;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return std::nullopt;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    state_->wait_for_change(std::min(left, std::chrono::milliseconds(100)));
  }
}

std::uint64_t xtc_stream_reader::offset() const noexcept {
  return state_->offset;
}

std::optional<std::int64_t> xtc_stream_reader::last_step() const noexcept {
  return state_->last_step;
}

std::uint64_t xtc_stream_reader::pending_bytes() const noexcept {
  return state_->pending;
}

std::uint64_t xtc_stream_reader::resyncs() const noexcept {
  return state_->resyncs;
}

const std::filesystem::path& xtc_stream_reader::path() const noexcept {
  return state_->path;
}

} // namespace mummi::md
