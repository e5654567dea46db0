#pragma once

/// GROMACS `.ndx` index files: ordered, named groups of 1-based atom numbers.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mummi::md {

struct index_group {
  std::string name;
  std::vector<std::int32_t> atoms; ///< 1-based atom numbers, in file order
  friend bool operator==(const index_group&, const index_group&) = default;
};

struct index_file {
  std::vector<index_group> groups;

  /// The first group named `name` (exact match), or nullptr.
  const index_group* find(std::string_view name) const;
  /// Appends a group. Throws md_error when a group of that name exists, when the name is empty
  /// or holds '[', ']' or a line break, or when an atom number is below 1.
  index_group& add_group(std::string name, std::vector<std::int32_t> atoms);
  friend bool operator==(const index_file&, const index_file&) = default;
};

/// Parses .ndx text; `name` is used in messages. Throws io_error ("name:line: problem") for a
/// non-numeric entry, an atom number below 1, numbers before any `[ group ]`, or a malformed
/// group header. Groups of the same name are kept (GROMACS uses the first).
index_file parse_ndx(std::string_view text, const std::filesystem::path& name);
index_file read_ndx(const std::filesystem::path& path);

/// `[ name ]` lines followed by the atom numbers, 15 per line.
std::string format_ndx(const index_file& f);
void write_ndx(const index_file& f, const std::filesystem::path& path);

} // namespace mummi::md
