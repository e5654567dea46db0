#pragma once

/// Exceptions thrown at the md_bridge boundary. Every message names the input (file and line,
/// or the GROMACS command) and what is wrong with it.

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace mummi::md {

/// Base of every md_bridge failure.
class md_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A file that cannot be read or written, or whose content is malformed. `what()` reads
/// "path:line: problem" (line omitted when 0).
class io_error : public md_error {
public:
  io_error(std::filesystem::path path, std::size_t line, const std::string& problem)
    : md_error(format(path, line, problem)), path_(std::move(path)), line_(line) {
  }
  const std::filesystem::path& path() const noexcept {
    return path_;
  }
  /// 1-based line of the problem; 0 when it concerns the whole file.
  std::size_t line() const noexcept {
    return line_;
  }

private:
  static std::string format(const std::filesystem::path& path, std::size_t line,
                            const std::string& problem) {
    auto s = path.string();
    if (line > 0)
      s += ":" + std::to_string(line);
    return s + ": " + problem;
  }
  std::filesystem::path path_;
  std::size_t line_;
};

} // namespace mummi::md
