#pragma once

/// Reusing one grompp output (.tpr) for many structures of the same topology and box: the
/// coordinates are the only part of a .tpr that depends on the structure, stored as one
/// contiguous array of big-endian floats (doubles for a double-precision GROMACS). A template
/// is only made when patching provably reproduces grompp's own output for a structure it has
/// not seen, so a GROMACS whose file layout differs simply falls back to grompp.
/// Internal to the validator.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mummi::md::detail {

/// The coordinates of a .gro text exactly as grompp reads them (each field parsed as a
/// double, then stored as a float), x y z per atom; nothing when the text is not in the
/// fixed 8-column layout written by mummi and mdrun.
std::optional<std::vector<double>> gro_coordinates(std::string_view gro_text);

class tpr_template {
public:
  /// `reference`: grompp's output for coordinates `xyz`; `same_input`: grompp's output for
  /// the same input again (the bytes that differ are not part of the physics: grompp writes
  /// some unset memory); `check`: grompp's output for other coordinates `check_xyz`. Nothing
  /// when the coordinates cannot be found exactly once, or when patching `reference` with
  /// `check_xyz` does not give `check`.
  static std::optional<tpr_template> make(std::string reference, std::string_view same_input,
                                          std::span<const double> xyz, std::string_view check,
                                          std::span<const double> check_xyz);

  /// The .tpr for coordinates `xyz` (as many as the template's). Throws std::invalid_argument
  /// on a count mismatch.
  std::string with_coordinates(std::span<const double> xyz) const;
  /// Coordinates it holds (3 per atom).
  std::size_t values() const noexcept {
    return values_;
  }

private:
  tpr_template() = default;
  std::string bytes_;
  std::size_t offset_ = 0;
  std::size_t values_ = 0;
  bool double_precision_ = false;
};

} // namespace mummi::md::detail
