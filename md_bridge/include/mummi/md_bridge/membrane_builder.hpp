#pragma once

/// The membrane builder (createsims' first step): a protein placed in a lipid bilayer of
/// given composition, solvated and neutralised, in the spirit of the `insane` tool (the facts
/// it follows are listed in docs/md_bridge.md). Deterministic for a seed. Pure computation:
/// no files are read or written here, no GROMACS is run.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/structure.hpp"

namespace mummi::md {

/// A recipe or template that cannot be used; `what()` lists every problem found, one per line.
class recipe_error : public md_error {
public:
  explicit recipe_error(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const noexcept {
    return problems_;
  }

private:
  std::vector<std::string> problems_;
};

/// A lipid in insane's head / linker / tail form: `alhead=C P, allink=G G, altail=CDCC CCCC,
/// alname=POPC, charge=0.0`. Each letter is one bead; tails are separated by spaces and
/// stand side by side as columns.
struct insane_form {
  std::string name;
  std::vector<char> head;           ///< from the top down
  std::vector<char> link;           ///< one per tail column, left to right
  std::vector<std::string> tails;   ///< each from the linker down
  double charge = 0;

  std::size_t bead_count() const;
};

/// Parses the text after `;@INSANE` (or a line of a templates file). Throws io_error naming
/// `file` and `line` on a malformed or incomplete form.
insane_form parse_insane_form(std::string_view text, const std::filesystem::path& file,
                              std::size_t line);

/// Where the beads of one lipid go, relative to its lattice site in the upper leaflet.
struct lipid_template {
  std::string name;
  std::vector<std::string> bead_names;
  /// x and y in the membrane plane, z above the bilayer mid-plane (nm); the lower leaflet
  /// mirrors z.
  std::vector<vec3> offsets_nm;
  double charge = 0;
};

/// Geometry from insane's form: tail beads stand in columns 0.5 nm apart, 0.3 nm per level
/// (`bead_spacing_nm`), the lowest tail bead at half a `leaflet_gap`; linker beads sit one
/// level above the longest tail, head beads above them, centred. `bead_names` are the
/// molecule's atom names in order (from its .itp); empty means names are made up from the
/// letters. Throws recipe_error if the name count does not match the form.
lipid_template make_lipid_template(const insane_form& form, std::vector<std::string> bead_names,
                                   double bead_spacing_nm = 0.3, double leaflet_gap = 1.0);

/// Reads a templates file: one insane form per line, `#` starts a comment. Throws io_error
/// naming the file and line.
std::vector<lipid_template> read_lipid_templates(const std::filesystem::path& path);

/// One leaflet's composition: per lipid either a fraction of the leaflet's sites (fractions
/// must sum to 1) or, with `exact_counts`, the number of molecules.
struct leaflet_recipe {
  struct component {
    std::string lipid;
    double amount = 0;
  };
  std::vector<component> lipids;
  bool exact_counts = false;
  double area_per_lipid_nm2 = 0.60;
};

/// A protein inserted into the membrane: its coordinates are translated so that atom
/// `anchor_atom` (0-based) lands at (`x_nm`, `y_nm`) and `depth_nm` above the mid-plane
/// (negative: below). Lipid sites under the protein, within `slab_nm` of the mid-plane, are
/// left empty.
struct protein_placement {
  structure coordinates;
  std::string molecule_name;
  double charge = 0;
  std::size_t anchor_atom = 0;
  double x_nm = 0;
  double y_nm = 0;
  double depth_nm = 0;
  double slab_nm = 2.4;
  double overlap_fudge_nm = 0.1;
};

struct membrane_recipe {
  double box_x_nm = 20;
  double box_y_nm = 20;
  double box_z_nm = 15;
  leaflet_recipe upper;
  leaflet_recipe lower;
  /// Sites removed from the upper leaflet (positive) or the lower one (negative), as insane's
  /// -asym.
  int asymmetry = 0;
  std::optional<protein_placement> protein;
  double salt_molar = 0.15;
  std::string solvent = "W";
  std::string cation = "NA";
  std::string anion = "CL";
  /// Water molecules one solvent bead stands for (ion counts follow from it).
  int waters_per_bead = 4;
  double solvent_grid_nm = 0.5;
  /// No solvent closer than this to the mid-plane.
  double solvent_exclusion_nm = 1.5;
  /// No solvent closer than this to a lipid or protein bead.
  double solvent_clearance_nm = 0.35;
  double kick_nm = 0.1;
  std::uint64_t seed = 1;
};

/// A consecutive run of identical molecules, in output order (a [ molecules ] line).
struct molecule_block {
  std::string name;
  std::size_t count = 0;
};

struct built_membrane {
  structure coordinates;                ///< protein, upper lipids, lower lipids, W, NA, CL
  std::vector<molecule_block> molecules;
  std::size_t solute_atoms = 0;         ///< atoms 1..solute_atoms are the "Rest" group
  std::vector<molecule_block> upper;    ///< lipids per species in the upper leaflet
  std::vector<molecule_block> lower;
  std::size_t solvent_beads = 0;
  std::size_t cations = 0;
  std::size_t anions = 0;
  double solute_charge = 0;             ///< protein + lipids, before ions
  double membrane_mid_z_nm = 0;
};

/// Builds the system. Every problem with the recipe (composition, unknown lipid, box too
/// small, protein outside the box) is reported at once in one recipe_error.
built_membrane build_membrane(const membrane_recipe& recipe,
                              const std::vector<lipid_template>& templates);

} // namespace mummi::md
