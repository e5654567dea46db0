#pragma once

// Test helpers with no dependency on mummi's libraries: a temporary directory owned by one
// object, whole-file reading, and the check of an error that names a path (store_error,
// model_error).

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

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
  std::filesystem::path operator/(const std::string& name) const {
    return path_ / name;
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

/// Runs `f`, expecting an `Error` (with a `path()`) for `path` whose message starts with
/// "path: " and contains every one of `words`.
template <class Error>
void expect_path_error(const std::function<void()>& f, const std::filesystem::path& path,
                       const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "no error thrown for " << path;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.path(), path) << what;
    EXPECT_EQ(what.rfind(path.string() + ": ", 0), 0U) << what;
    for (const auto& w : words)
      EXPECT_NE(what.find(w), std::string::npos) << "missing '" << w << "' in: " << what;
  }
}

} // namespace mummi::test
