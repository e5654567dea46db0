#pragma once

/// GROMACS `.gro` coordinate files: reading (fixed columns, precision deduced from the spacing
/// of the decimal points as GROMACS does, optional velocities, box line of 3 or 9 values) and
/// writing (%8.3f positions, %8.4f velocities). Functions are pure and thread-safe.

#include "mummi/md_bridge/structure.hpp"

#include <filesystem>
#include <string>
#include <string_view>

namespace mummi::md {

/// Parses the text of a `.gro` file; `name` is used in error messages only. Reads the first
/// frame; anything after its box line is ignored. Throws io_error ("name:line: problem") for a
/// wrong atom count, a short line, a non-numeric field or a missing or malformed box line.
structure parse_gro(std::string_view text, const std::filesystem::path& name);

/// Reads a `.gro` file. Throws io_error as `parse_gro` does, or when the file cannot be read.
structure read_gro(const std::filesystem::path& path);

/// The `.gro` text of `s`: positions %8.3f (nm), velocities %8.4f (nm/ps) when every atom has
/// one, residue and atom numbers modulo 100,000, a box line of 3 values for a rectangular box
/// and 9 otherwise. Throws md_error when a name is longer than 5 characters, a value does not
/// fit its column, the title has a line break, or only some atoms have velocities.
std::string format_gro(const structure& s);

/// Writes `format_gro(s)` to `path` (through a temporary file renamed into place). Throws
/// io_error naming the file for the problems `format_gro` reports and for write failures.
void write_gro(const structure& s, const std::filesystem::path& path);

} // namespace mummi::md
