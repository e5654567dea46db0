#pragma once

/// GROMACS `.mdp` run-parameter files: ordered `key = value` entries with their comments, keys
/// compared as GROMACS compares them (case-insensitive, '-' and '_' ignored), values kept
/// exactly. Not thread-safe for concurrent mutation; reading functions are pure.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mummi::md {

/// One line of an .mdp file: `key = value ; comment`, or a comment-only or blank line (empty
/// key).
struct mdp_entry {
  std::string key;     ///< as written; empty for a comment-only or blank line
  std::string value;   ///< trimmed; may be empty (`define =`)
  std::string comment; ///< from ';' to the end of the line, ';' included; empty when none
  friend bool operator==(const mdp_entry&, const mdp_entry&) = default;
};

/// True when GROMACS treats `a` and `b` as the same mdp key ("nstxout-compressed",
/// "nstxout_compressed" and "NSTXOUTCOMPRESSED" are one key).
bool mdp_keys_equal(std::string_view a, std::string_view b) noexcept;

/// The entries of an .mdp file in order. Keys are unique (as GROMACS compares them).
class mdp {
public:
  mdp() = default;

  /// The value of `key`, or nothing when it is not set.
  std::optional<std::string> get(std::string_view key) const;
  /// Replaces the value of `key` (keeping its place and comment; the key takes the spelling
  /// given) or appends `key = value`. Throws md_error for an empty key or one holding '=',
  /// ';' or a line break, or a value holding ';' or a line break.
  void set(std::string_view key, std::string_view value);
  /// Removes `key`; false when it was not set.
  bool erase(std::string_view key);
  /// Appends a comment line (`; text`); an empty text appends a blank line.
  void add_comment(std::string_view text);

  const std::vector<mdp_entry>& entries() const noexcept {
    return entries_;
  }
  friend bool operator==(const mdp&, const mdp&) = default;

private:
  friend mdp parse_mdp(std::string_view text, const std::filesystem::path& name);
  std::vector<mdp_entry> entries_;
};

/// Parses .mdp text; `name` is used in messages. Throws io_error ("name:line: problem") for a
/// line without '=', an empty key, or a key given twice (naming the first line too).
mdp parse_mdp(std::string_view text, const std::filesystem::path& name);
mdp read_mdp(const std::filesystem::path& path);

/// `key = value ; comment` lines, comment-only and blank lines as they were.
std::string format_mdp(const mdp& m);
void write_mdp(const mdp& m, const std::filesystem::path& path);

} // namespace mummi::md
