#pragma once

// Helpers for tests that work with md_bridge files and processes: the processes working in a
// directory, and the check of an md::io_error that names a file and line (temp_dir and
// read_file come from temp_dir.hpp). Used by the md_bridge tests and the cli test.

#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "mummi/md_bridge/errors.hpp"
#include "temp_dir.hpp"

namespace mummi::test {

namespace detail {

/// The processes (from /proc) whose current directory passes `take`.
inline std::vector<pid_t>
processes_where(const std::function<bool(const std::filesystem::path&)>& take) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const auto name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::error_code ec2;
    const auto cwd = std::filesystem::read_symlink(e.path() / "cwd", ec2);
    if (!ec2 && take(cwd))
      out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

} // namespace detail

/// The processes whose current directory is `dir` (what is left of a run there).
inline std::vector<pid_t> processes_in(const std::filesystem::path& dir) {
  return detail::processes_where([&dir](const std::filesystem::path& cwd) {
    return cwd == dir;
  });
}

/// The processes whose current directory is `dir` or below it (its path begins with `dir`).
inline std::vector<pid_t> processes_under(const std::filesystem::path& dir) {
  return detail::processes_where([prefix = dir.string()](const std::filesystem::path& cwd) {
    return cwd.string().rfind(prefix, 0) == 0;
  });
}

/// Runs `f`, expecting an md::io_error whose line is `line` and whose message names `file`
/// and "file:line" (just "file: " for line 0) and, when given, contains `words`.
inline void expect_io_error(const std::function<void()>& f, const std::string& file,
                            std::size_t line, const std::string& words = {}) {
  try {
    f();
    ADD_FAILURE() << "no io_error thrown; expected one at " << file << ":" << line;
  } catch (const md::io_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.line(), line) << what;
    const auto place = line == 0 ? file + ": " : file + ":" + std::to_string(line) + ":";
    EXPECT_NE(what.find(place), std::string::npos) << what;
    if (!words.empty()) {
      EXPECT_NE(what.find(words), std::string::npos) << what;
    }
  }
}

} // namespace mummi::test
