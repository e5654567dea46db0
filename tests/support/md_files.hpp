#pragma once

// Helpers for tests that work with files and processes: a temporary directory owned by one
// object, whole-file reading, the processes working in a directory, and the check of an
// md::io_error that names a file and line. Used by the md_bridge tests and the cli test.

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

namespace mummi::test {

/// Whether a temp_dir outlives a failed test, for a look at what the test left there.
enum class keep_on_failure : bool { no, yes };

/// A fresh directory `<system temp>/<prefix>-XXXXXX` (mkdtemp), removed with its content when
/// the object goes; with keep_on_failure::yes it stays when the running test has failed.
/// Neither copied nor moved: one object owns the directory.
class temp_dir {
public:
  /// Named after the running test: `mummi-<suite>-<test>-XXXXXX`.
  explicit temp_dir(keep_on_failure keep = keep_on_failure::no) : temp_dir(test_prefix(), keep) {}
  explicit temp_dir(const std::string& prefix, keep_on_failure keep = keep_on_failure::no)
    : keep_(keep) {
    auto pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    if (keep_ == keep_on_failure::yes && ::testing::Test::HasFailure())
      return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  const std::filesystem::path& path() const noexcept {
    return path_;
  }

  /// Writes `text` to the file `name` under the directory (making its folders); returns its
  /// path.
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }

private:
  static std::string test_prefix() {
    std::string prefix = "mummi";
    if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
      prefix += std::string("-") + info->test_suite_name() + "-" + info->name();
    for (auto& c : prefix)
      if (c == '/')
        c = '_';
    return prefix;
  }

  std::filesystem::path path_;
  keep_on_failure keep_;
};

/// The whole content of a file; empty when it cannot be read.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

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
