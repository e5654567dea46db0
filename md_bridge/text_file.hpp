#pragma once

/// Private helpers shared by the GROMACS file readers and writers of md_bridge (.gro, .itp/.top,
/// .mdp, .ndx): whole-file reading and writing, line splitting and number parsing without
/// iostreams. Not installed; only md_bridge sources include it.

#include "mummi/md_bridge/errors.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace mummi::md::detail {

/// Reads a whole file. Throws io_error naming the file when it cannot be opened or read.
inline std::string read_text_file(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    throw io_error(path, 0, std::string("cannot open for reading: ") + std::strerror(errno));
  std::string text;
  char buffer[1 << 16];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
    text.append(buffer, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed)
    throw io_error(path, 0, "read error");
  return text;
}

/// Writes `text` to `path` through a temporary file in the same directory renamed into place,
/// so a reader never sees a half-written file. Throws io_error naming the file on failure.
inline void write_text_file(const std::filesystem::path& path, std::string_view text) {
  static std::atomic<unsigned> counter{0};
  auto tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr)
    throw io_error(path, 0, std::string("cannot open for writing: ") + std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw io_error(path, 0, "write error (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw io_error(path, 0, "cannot rename the temporary file into place: " + ec.message());
  }
}

/// Writes the text `format()` returns to `path` as write_text_file does. An md_error from
/// `format` (a value the file format cannot hold) becomes an io_error naming `path`; nothing
/// is written then.
template<class Format>
void write_formatted(const std::filesystem::path& path, Format&& format) {
  std::string text;
  try {
    text = std::forward<Format>(format)();
  } catch (const io_error&) {
    throw;
  } catch (const md_error& e) {
    throw io_error(path, 0, e.what());
  }
  write_text_file(path, text);
}

/// Splits text into lines; "\r\n" endings lose their '\r'. A final line without a newline
/// counts; the empty text after a final newline does not.
class line_reader {
public:
  explicit line_reader(std::string_view text) : text_(text) {}
  /// The next line, or nothing at the end. `number()` then gives its 1-based number.
  std::optional<std::string_view> next() {
    if (pos_ >= text_.size())
      return std::nullopt;
    auto end = text_.find('\n', pos_);
    if (end == std::string_view::npos)
      end = text_.size();
    auto line = text_.substr(pos_, end - pos_);
    pos_ = end + 1;
    ++number_;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    return line;
  }
  std::size_t number() const noexcept {
    return number_;
  }
  /// True when every line has been read.
  bool at_end() const noexcept {
    return pos_ >= text_.size();
  }

private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
};

inline bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

/// Whitespace-separated fields of `s`.
inline std::vector<std::string_view> split_fields(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i]))
      ++i;
    const auto start = i;
    while (i < s.size() && !is_space(s[i]))
      ++i;
    if (i > start)
      out.push_back(s.substr(start, i - start));
  }
  return out;
}

/// Parses the whole of `s` (surrounding blanks allowed) as an integer.
template<class Int>
std::optional<Int> parse_integer(std::string_view s) noexcept {
  s = trim(s);
  if (!s.empty() && s.front() == '+')
    s.remove_prefix(1);
  Int value{};
  const auto* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc{} || ptr != end)
    return std::nullopt;
  return value;
}

/// Parses the whole of `s` (surrounding blanks allowed) as a floating-point number; accepts
/// the Fortran-style exponent 'd' some force-field files use.
template<class Real>
std::optional<Real> parse_real(std::string_view s) noexcept {
  s = trim(s);
  if (!s.empty() && s.front() == '+')
    s.remove_prefix(1);
  if (s.empty())
    return std::nullopt;
  Real value{};
  const auto* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (ec == std::errc{} && ptr == end)
    return value;
  if (s.find_first_of("dD") != std::string_view::npos && s.size() < 64) {
    std::string copy(s);
    for (auto& c : copy)
      if (c == 'd' || c == 'D')
        c = 'e';
    const auto [p2, e2] = std::from_chars(copy.data(), copy.data() + copy.size(), value);
    if (e2 == std::errc{} && p2 == copy.data() + copy.size())
      return value;
  }
  return std::nullopt;
}

/// GROMACS name comparison (mdp keys, section names): case-insensitive, and '-' and '_' are
/// skipped, so "nstxout-compressed", "nstxout_compressed" and "NSTXOUTCOMPRESSED" are equal.
inline bool gromacs_names_equal(std::string_view a, std::string_view b) noexcept {
  const auto upper = [](char c) {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
  };
  std::size_t i = 0;
  std::size_t j = 0;
  for (;;) {
    while (i < a.size() && (a[i] == '-' || a[i] == '_'))
      ++i;
    while (j < b.size() && (b[j] == '-' || b[j] == '_'))
      ++j;
    if (i == a.size() || j == b.size())
      return i == a.size() && j == b.size();
    if (upper(a[i]) != upper(b[j]))
      return false;
    ++i;
    ++j;
  }
}

/// Shortest text that reads back as exactly `value`.
inline std::string shortest(double value) {
  char buffer[32];
  const auto [ptr, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc{} ? std::string(buffer, ptr) : std::to_string(value);
}

} // namespace mummi::md::detail
