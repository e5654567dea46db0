#pragma once

/// Coordinates of a molecular system as a `.gro` file holds them.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mummi::md {

using vec3 = std::array<float, 3>;

struct atom {
  std::int32_t residue_number = 1; ///< as written (wraps at 100,000 in .gro files)
  std::string residue_name;        ///< at most 5 characters in .gro files
  std::string atom_name;           ///< at most 5 characters in .gro files
  vec3 position_nm{};
  std::optional<vec3> velocity_nm_ps;
};

/// Box vectors as rows: a = box_nm[0], b = box_nm[1], c = box_nm[2] (GROMACS convention:
/// a along x, b in the xy plane).
using box_matrix = std::array<vec3, 3>;

inline box_matrix rectangular_box(float x_nm, float y_nm, float z_nm) {
  return {vec3{x_nm, 0, 0}, vec3{0, y_nm, 0}, vec3{0, 0, z_nm}};
}

struct structure {
  std::string title;
  std::vector<atom> atoms;
  box_matrix box_nm{};
};

} // namespace mummi::md
