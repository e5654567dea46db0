#include "mummi/md_bridge/membrane_builder.hpp"

#include "periodic.hpp"
#include "text_file.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numbers>
#include <numeric>
#include <set>
#include <sstream>

namespace mummi::md {

namespace {

std::string join_lines(const std::vector<std::string>& problems) {
  std::string s;
  for (const auto& p : problems) {
    if (!s.empty())
      s += '\n';
    s += p;
  }
  return s;
}

using detail::periodic_cell;
using detail::periodic_delta;

std::string trim(std::string_view s) {
  return std::string(detail::trim(s));
}

std::vector<std::string> split_words(std::string_view s) {
  const auto fields = detail::split_fields(s);
  return {fields.begin(), fields.end()};
}

/// A small deterministic generator (splitmix64): the same seed gives the same system with
/// any standard library, unlike std::shuffle and std::uniform_real_distribution.
class rng {
public:
  explicit rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() {
    return static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  /// Uniform in [0, n), without modulo bias.
  std::size_t below(std::size_t n) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t x;
    do
      x = next();
    while (x >= limit);
    return static_cast<std::size_t>(x % n);
  }
  template<class T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i)
      std::swap(v[i - 1], v[below(i)]);
  }

private:
  std::uint64_t state_;
};

/// Names for beads of a form without an .itp: head and linker letters as Martini names them
/// where the letter is known, tail beads as letter + position + tail letter (C1A, D2A, ...).
std::vector<std::string> made_up_names(const insane_form& f) {
  static const std::map<char, std::string> heads
    = {{'C', "NC3"}, {'E', "NH3"}, {'P', "PO4"}, {'S', "CNO"}, {'G', "GL0"}, {'O', "PO4"}};
  std::vector<std::string> names;
  std::map<std::string, int> seen;
  auto unique = [&seen](std::string n) {
    int k = seen[n]++;
    return k == 0 ? n : n.substr(0, 4) + std::to_string(k);
  };
  for (char c : f.head) {
    auto it = heads.find(c);
    names.push_back(unique(it != heads.end() ? it->second : std::string(1, c) + "H"));
  }
  for (std::size_t i = 0; i < f.link.size(); ++i)
    names.push_back(unique(f.link[i] == 'G'
                             ? "GL" + std::to_string(i + 1)
                             : std::string(1, f.link[i]) + "L" + std::to_string(i + 1)));
  for (std::size_t t = 0; t < f.tails.size(); ++t)
    for (std::size_t k = 0; k < f.tails[t].size(); ++k)
      names.push_back(
        unique(std::string(1, f.tails[t][k]) + std::to_string(k + 1) + static_cast<char>('A' + t)));
  return names;
}

/// Lipid lattice of one leaflet: n_x x n_y cells, one site per cell.
struct lattice {
  std::size_t nx = 0;
  std::size_t ny = 0;
  double cx = 0; ///< cell size, nm
  double cy = 0;
  std::size_t cell_of(double x, double y) const {
    return periodic_cell(y, cy * static_cast<double>(ny), ny) * nx
      + periodic_cell(x, cx * static_cast<double>(nx), nx);
  }
  double site_x(std::size_t c) const {
    return (static_cast<double>(c % nx) + 0.5) * cx;
  }
  double site_y(std::size_t c) const {
    return (static_cast<double>(c / nx) + 0.5) * cy;
  }
};

lattice make_lattice(double lx, double ly, double apl) {
  lattice g;
  g.nx = static_cast<std::size_t>(lx / std::sqrt(apl) + 0.5);
  g.ny = static_cast<std::size_t>(ly / std::sqrt(apl) + 0.5);
  g.cx = g.nx ? lx / static_cast<double>(g.nx) : 0;
  g.cy = g.ny ? ly / static_cast<double>(g.ny) : 0;
  return g;
}

/// Cells of one leaflet taken by the protein: cells within half a cell (plus the fudge) of a
/// protein bead in the leaflet's slab, and every cell on the way from the protein's centre
/// to a taken cell, so that no lipid ends up inside the protein.
std::vector<bool> protein_cells(const lattice& g, const std::vector<vec3>& beads, double mid_z,
                                double slab, double fudge, bool upper, double lx, double ly) {
  std::vector<bool> taken(g.nx * g.ny, false);
  std::vector<vec3> in_slab;
  for (const auto& b : beads) {
    double dz = b[2] - mid_z;
    if (upper ? (dz >= 0 && dz < slab) : (dz < 0 && dz > -slab))
      in_slab.push_back(b);
  }
  if (in_slab.empty())
    return taken;
  const double reach = 0.5 * std::max(g.cx, g.cy) + fudge;
  // Centre of the beads in the slab, as a periodic mean around the first bead.
  double sx = 0, sy = 0;
  for (const auto& b : in_slab) {
    sx += periodic_delta(b[0] - in_slab[0][0], lx);
    sy += periodic_delta(b[1] - in_slab[0][1], ly);
  }
  const double centre_x = in_slab[0][0] + sx / static_cast<double>(in_slab.size());
  const double centre_y = in_slab[0][1] + sy / static_cast<double>(in_slab.size());
  for (std::size_t c = 0; c < taken.size(); ++c) {
    for (const auto& b : in_slab) {
      double dx = periodic_delta(g.site_x(c) - b[0], lx);
      double dy = periodic_delta(g.site_y(c) - b[1], ly);
      if (dx * dx + dy * dy < reach * reach) {
        taken[c] = true;
        break;
      }
    }
  }
  auto direct = taken;
  const double step = 0.25 * std::min(g.cx, g.cy);
  for (std::size_t c = 0; c < direct.size(); ++c) {
    if (!direct[c])
      continue;
    double dx = periodic_delta(g.site_x(c) - centre_x, lx);
    double dy = periodic_delta(g.site_y(c) - centre_y, ly);
    double len = std::hypot(dx, dy);
    for (double s = 0; s < len; s += step)
      taken[g.cell_of(centre_x + dx * s / len, centre_y + dy * s / len)] = true;
  }
  return taken;
}

/// Molecules per species for `sites` free sites: exact counts, or fractions rounded so that
/// they add up to the sites (largest remainders first; ties go to the earlier species).
std::vector<std::size_t> species_counts(const leaflet_recipe& r, std::size_t sites) {
  std::vector<std::size_t> counts;
  if (r.exact_counts) {
    for (const auto& c : r.lipids)
      counts.push_back(static_cast<std::size_t>(std::llround(c.amount)));
    return counts;
  }
  std::vector<double> rest;
  std::size_t total = 0;
  for (const auto& c : r.lipids) {
    double want = c.amount * static_cast<double>(sites);
    counts.push_back(static_cast<std::size_t>(std::floor(want)));
    rest.push_back(want - std::floor(want));
    total += counts.back();
  }
  std::vector<std::size_t> order(counts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&rest](std::size_t a, std::size_t b) {
    return rest[a] > rest[b];
  });
  for (std::size_t k = 0; total < sites && k < order.size(); ++k, ++total)
    ++counts[order[k]];
  return counts;
}

void check_leaflet(const char* which, const leaflet_recipe& r,
                   const std::map<std::string, const lipid_template*>& by_name,
                   std::vector<std::string>& problems) {
  std::string w = std::string(which) + " leaflet: ";
  if (r.lipids.empty())
    problems.push_back(w + "no lipids given");
  if (!(r.area_per_lipid_nm2 > 0.05 && r.area_per_lipid_nm2 < 10))
    problems.push_back(w + "area per lipid " + std::to_string(r.area_per_lipid_nm2)
                       + " nm^2 is outside (0.05, 10)");
  double sum = 0;
  std::set<std::string> seen;
  for (const auto& c : r.lipids) {
    if (!by_name.count(c.lipid))
      problems.push_back(w + "unknown lipid '" + c.lipid
                         + "' (no template of that name; check the lipid templates or .itp files)");
    if (!seen.insert(c.lipid).second)
      problems.push_back(w + "lipid '" + c.lipid + "' listed twice");
    if (!(c.amount >= 0) || !std::isfinite(c.amount))
      problems.push_back(w + "lipid '" + c.lipid + "' has a negative or invalid amount");
    else if (r.exact_counts && c.amount != std::floor(c.amount))
      problems.push_back(w + "lipid '" + c.lipid + "' count " + std::to_string(c.amount)
                         + " is not a whole number");
    else if (r.exact_counts && c.amount > 1e7)
      problems.push_back(w + "lipid '" + c.lipid + "' count " + std::to_string(c.amount)
                         + " is beyond any membrane (more than 10 million)");
    sum += c.amount;
  }
  if (!r.exact_counts && !r.lipids.empty() && std::abs(sum - 1.0) > 1e-3) {
    std::ostringstream s;
    s << w << "fractions sum to " << sum << ", not 1";
    problems.push_back(s.str());
  }
}

} // namespace

recipe_error::recipe_error(std::vector<std::string> problems)
  : md_error(join_lines(problems)), problems_(std::move(problems)) {}

std::size_t insane_form::bead_count() const {
  std::size_t n = head.size() + link.size();
  for (const auto& t : tails)
    n += t.size();
  return n;
}

insane_form parse_insane_form(std::string_view text, const std::filesystem::path& file,
                              std::size_t line) {
  insane_form f;
  bool have_name = false, have_tail = false;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    auto item = trim(text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos));
    pos = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    if (item.empty())
      continue;
    auto eq = item.find('=');
    if (eq == std::string::npos)
      throw io_error(file, line, "expected key=value in lipid form, got '" + item + "'");
    auto key = trim(std::string_view(item).substr(0, eq));
    auto value = trim(std::string_view(item).substr(eq + 1));
    auto letters = [&](const std::string& v) {
      std::vector<char> out;
      for (const auto& w : split_words(v)) {
        if (w.size() != 1)
          throw io_error(file, line,
                         key + ": beads are single letters separated by spaces, got '" + w + "'");
        out.push_back(w[0]);
      }
      return out;
    };
    if (key == "alname") {
      f.name = value;
      have_name = !value.empty();
    } else if (key == "alhead") {
      f.head = letters(value);
    } else if (key == "allink") {
      f.link = letters(value);
    } else if (key == "altail") {
      f.tails = split_words(value);
      have_tail = !f.tails.empty();
    } else if (key == "charge") {
      char* end = nullptr;
      f.charge = std::strtod(value.c_str(), &end);
      if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(f.charge))
        throw io_error(file, line, "charge '" + value + "' is not a number");
    } else {
      // Martini files carry more keys (alhint, ...); they do not affect the geometry.
    }
  }
  if (!have_name)
    throw io_error(file, line, "lipid form without alname=");
  if (!have_tail)
    throw io_error(file, line, "lipid '" + f.name + "' has no altail= beads");
  return f;
}

lipid_template make_lipid_template(const insane_form& form, std::vector<std::string> bead_names,
                                   double bead_spacing_nm, double leaflet_gap) {
  if (bead_names.empty())
    bead_names = made_up_names(form);
  if (bead_names.size() != form.bead_count())
    throw recipe_error({"lipid '" + form.name + "': its form has "
                        + std::to_string(form.bead_count()) + " beads but its molecule has "
                        + std::to_string(bead_names.size()) + " atoms"});
  lipid_template t;
  t.name = form.name;
  t.charge = form.charge;
  t.bead_names = std::move(bead_names);
  const std::size_t columns = std::max<std::size_t>({form.tails.size(), form.link.size(), 1});
  std::size_t longest = 0;
  for (const auto& tail : form.tails)
    longest = std::max(longest, tail.size());
  auto column_x = [columns](std::size_t c) {
    return 0.5 * (static_cast<double>(c) - 0.5 * static_cast<double>(columns - 1));
  };
  auto z_of = [&](double level) {
    return (leaflet_gap / 2 + level) * bead_spacing_nm;
  };
  const std::size_t link_rows = form.link.empty() ? 0 : (form.link.size() - 1) / columns + 1;
  const auto top_level = static_cast<double>(longest + link_rows);
  for (std::size_t h = 0; h < form.head.size(); ++h)
    t.offsets_nm.push_back(
      {0.f, 0.f,
       static_cast<float>(z_of(top_level + static_cast<double>(form.head.size() - h) - 1))});
  for (std::size_t m = 0; m < form.link.size(); ++m)
    t.offsets_nm.push_back(
      {static_cast<float>(column_x(m % columns)), 0.f,
       static_cast<float>(z_of(static_cast<double>(longest + link_rows - 1 - m / columns)))});
  for (std::size_t c = 0; c < form.tails.size(); ++c)
    for (std::size_t k = 0; k < form.tails[c].size(); ++k)
      t.offsets_nm.push_back({static_cast<float>(column_x(c)), 0.f,
                              static_cast<float>(z_of(static_cast<double>(longest - 1 - k)))});
  return t;
}

std::vector<lipid_template> read_lipid_templates(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    throw io_error(path, 0, "cannot open lipid templates file");
  std::vector<lipid_template> out;
  std::set<std::string> names;
  std::string text;
  for (std::size_t line = 1; std::getline(in, text); ++line) {
    auto body = trim(text.substr(0, text.find('#')));
    if (body.empty())
      continue;
    auto form = parse_insane_form(body, path, line);
    if (!names.insert(form.name).second)
      throw io_error(path, line, "lipid '" + form.name + "' defined twice");
    out.push_back(make_lipid_template(form, {}));
  }
  return out;
}

built_membrane build_membrane(const membrane_recipe& r,
                              const std::vector<lipid_template>& templates) {
  std::vector<std::string> problems;
  std::map<std::string, const lipid_template*> by_name;
  for (const auto& t : templates)
    if (!by_name.emplace(t.name, &t).second)
      problems.push_back("lipid '" + t.name
                         + "' has two templates (from a molecule file's "
                           ";@INSANE line and a templates file?): keep one");

  const double lx = r.box_x_nm, ly = r.box_y_nm, lz = r.box_z_nm;
  if (!(lx > 0 && ly > 0 && lz > 0 && std::isfinite(lx + ly + lz)))
    problems.push_back("box: every edge must be a positive number of nm");
  else if (lx * ly * lz > 1e7)
    problems.push_back("box: " + std::to_string(lx * ly * lz)
                       + " nm^3 is beyond what can be built (10^7 nm^3 at most; edges are in nm)");
  if (!(r.kick_nm >= 0 && r.kick_nm < 1) || !(r.solvent_exclusion_nm >= 0)
      || !(r.solvent_clearance_nm >= 0 && r.solvent_clearance_nm < 2))
    problems.push_back("kick, solvent exclusion and clearance must be small non-negative nm");
  check_leaflet("upper", r.upper, by_name, problems);
  check_leaflet("lower", r.lower, by_name, problems);
  if (r.salt_molar < 0 || !std::isfinite(r.salt_molar))
    problems.push_back("salt concentration must be >= 0 M");
  if (!(r.solvent_grid_nm > 0.1))
    problems.push_back("solvent grid must be > 0.1 nm");
  if (r.waters_per_bead < 1)
    problems.push_back("waters per solvent bead must be >= 1");

  // Height of the bilayer: the tallest lipid used on each side.
  double half_thickness = 0;
  for (const auto* leaflet : {&r.upper, &r.lower})
    for (const auto& c : leaflet->lipids)
      if (auto it = by_name.find(c.lipid); it != by_name.end())
        for (const auto& o : it->second->offsets_nm)
          half_thickness = std::max(half_thickness, static_cast<double>(o[2]));
  const double mid_z = lz / 2;
  if (lz > 0 && lz < 2 * (half_thickness + 1.0))
    problems.push_back("box: z edge " + std::to_string(lz) + " nm is too small for a bilayer "
                       + std::to_string(2 * half_thickness)
                       + " nm thick with 1 nm of solvent on each side");

  if (!problems.empty())
    throw recipe_error(std::move(problems));
  lattice up = make_lattice(lx, ly, r.upper.area_per_lipid_nm2);
  lattice lo = make_lattice(lx, ly, r.lower.area_per_lipid_nm2);
  if (up.nx < 3 || up.ny < 3 || lo.nx < 3 || lo.ny < 3)
    problems.push_back("box: x/y edges are too small: fewer than 3 lipids per row");
  const auto asym = static_cast<std::size_t>(std::abs(static_cast<long long>(r.asymmetry)));
  if (asym >= (r.asymmetry > 0 ? up.nx * up.ny : lo.nx * lo.ny))
    problems.push_back("asymmetry " + std::to_string(r.asymmetry)
                       + " removes every site of its leaflet");

  std::vector<vec3> protein_beads;
  if (r.protein) {
    const auto& p = *r.protein;
    if (p.coordinates.atoms.empty())
      problems.push_back("protein '" + p.molecule_name + "': no atoms");
    else if (p.anchor_atom >= p.coordinates.atoms.size())
      problems.push_back("protein '" + p.molecule_name + "': anchor atom "
                         + std::to_string(p.anchor_atom + 1) + " is beyond its "
                         + std::to_string(p.coordinates.atoms.size()) + " atoms");
    else if (!std::isfinite(p.depth_nm + p.x_nm + p.y_nm))
      problems.push_back("protein '" + p.molecule_name + "': its position must be finite");
    else {
      const auto& a = p.coordinates.atoms[p.anchor_atom].position_nm;
      const double shift[3] = {p.x_nm - a[0], p.y_nm - a[1], mid_z + p.depth_nm - a[2]};
      vec3 lo_v{1e30f, 1e30f, 1e30f}, hi_v{-1e30f, -1e30f, -1e30f};
      for (const auto& at : p.coordinates.atoms) {
        vec3 v{static_cast<float>(at.position_nm[0] + shift[0]),
               static_cast<float>(at.position_nm[1] + shift[1]),
               static_cast<float>(at.position_nm[2] + shift[2])};
        for (int k = 0; k < 3; ++k) {
          lo_v[k] = std::min(lo_v[k], v[k]);
          hi_v[k] = std::max(hi_v[k], v[k]);
        }
        protein_beads.push_back(v);
      }
      const float zmin = lo_v[2], zmax = hi_v[2];
      // Closer than the 1.1 nm cut-off to its own periodic image, the protein meets itself.
      if (hi_v[0] - lo_v[0] > lx - 1.2 || hi_v[1] - lo_v[1] > ly - 1.2)
        problems.push_back("box: x/y edges " + std::to_string(lx) + " x " + std::to_string(ly)
                           + " nm are too small for protein '" + p.molecule_name + "' ("
                           + std::to_string(hi_v[0] - lo_v[0]) + " x "
                           + std::to_string(hi_v[1] - lo_v[1])
                           + " nm wide; it would meet its periodic image)");
      if (lz > 0 && (zmin < 0 || zmax > lz))
        problems.push_back("box: z edge " + std::to_string(lz) + " nm is too small for protein '"
                           + p.molecule_name + "' placed at depth " + std::to_string(p.depth_nm)
                           + " nm (it spans z " + std::to_string(zmin) + " to "
                           + std::to_string(zmax) + " nm)");
    }
  }
  if (!problems.empty())
    throw recipe_error(std::move(problems));

  rng random(r.seed);
  built_membrane out;
  out.membrane_mid_z_nm = mid_z;
  auto& atoms = out.coordinates.atoms;
  out.coordinates.title = "mummi membrane";
  out.coordinates.box_nm
    = rectangular_box(static_cast<float>(lx), static_cast<float>(ly), static_cast<float>(lz));
  std::int32_t residue = 0;
  if (r.protein) {
    const auto& p = *r.protein;
    std::int32_t last = INT32_MIN;
    for (std::size_t i = 0; i < protein_beads.size(); ++i) {
      auto a = p.coordinates.atoms[i];
      if (a.residue_number != last) {
        last = a.residue_number;
        ++residue;
      }
      a.residue_number = residue;
      a.position_nm = protein_beads[i];
      a.velocity_nm_ps.reset();
      atoms.push_back(std::move(a));
    }
    out.molecules.push_back({p.molecule_name, 1});
    out.solute_charge += p.charge;
  }

  auto place_leaflet = [&](const leaflet_recipe& lr, const lattice& g, bool upper,
                           std::vector<molecule_block>& per_species) {
    auto taken = protein_cells(g, protein_beads, mid_z, r.protein ? r.protein->slab_nm : 0,
                               r.protein ? r.protein->overlap_fudge_nm : 0, upper, lx, ly);
    std::vector<std::size_t> sites;
    for (std::size_t c = 0; c < taken.size(); ++c)
      if (!taken[c])
        sites.push_back(c);
    random.shuffle(sites);
    const int remove = upper ? std::max(r.asymmetry, 0) : std::max(-r.asymmetry, 0);
    if (static_cast<std::size_t>(remove) >= sites.size())
      throw recipe_error({"asymmetry " + std::to_string(r.asymmetry)
                          + " removes every free site of the " + (upper ? "upper" : "lower")
                          + " leaflet"});
    sites.resize(sites.size() - static_cast<std::size_t>(remove));
    auto counts = species_counts(lr, sites.size());
    std::size_t wanted = std::accumulate(counts.begin(), counts.end(), std::size_t{0});
    if (wanted > sites.size())
      throw recipe_error({std::string(upper ? "upper" : "lower")
                          + " leaflet: " + std::to_string(wanted) + " lipids asked for but only "
                          + std::to_string(sites.size()) + " sites are free"});
    std::size_t next = 0;
    for (std::size_t s = 0; s < lr.lipids.size(); ++s) {
      const auto& t = *by_name.at(lr.lipids[s].lipid);
      per_species.push_back({t.name, counts[s]});
      if (counts[s] > 0)
        out.molecules.push_back({t.name, counts[s]});
      out.solute_charge += t.charge * static_cast<double>(counts[s]);
      for (std::size_t k = 0; k < counts[s]; ++k) {
        const std::size_t c = sites[next++];
        const double angle = 2 * std::numbers::pi * random.uniform();
        const double ca = std::cos(angle), sa = std::sin(angle);
        const double x0 = g.site_x(c) + r.kick_nm * (2 * random.uniform() - 1);
        const double y0 = g.site_y(c) + r.kick_nm * (2 * random.uniform() - 1);
        ++residue;
        for (std::size_t b = 0; b < t.offsets_nm.size(); ++b) {
          const auto& o = t.offsets_nm[b];
          double x = x0 + ca * o[0] - sa * o[1];
          double y = y0 + sa * o[0] + ca * o[1];
          double z = mid_z + (upper ? o[2] : -o[2]);
          x -= lx * std::floor(x / lx);
          y -= ly * std::floor(y / ly);
          atoms.push_back(
            {residue, t.name, t.bead_names[b],
             vec3{static_cast<float>(x), static_cast<float>(y), static_cast<float>(z)},
             std::nullopt});
        }
      }
    }
  };
  place_leaflet(r.upper, up, true, out.upper);
  place_leaflet(r.lower, lo, false, out.lower);
  out.solute_atoms = atoms.size();

  // Solvent on a grid, away from the mid-plane and from every solute bead (a cell list with
  // cells at least the clearance wide finds the nearby beads).
  const double clear = r.solvent_clearance_nm;
  const auto ncx = std::max<std::size_t>(1, static_cast<std::size_t>(lx / std::max(clear, 0.1)));
  const auto ncy = std::max<std::size_t>(1, static_cast<std::size_t>(ly / std::max(clear, 0.1)));
  const auto ncz = std::max<std::size_t>(1, static_cast<std::size_t>(lz / std::max(clear, 0.1)));
  std::vector<std::vector<std::uint32_t>> cells(ncx * ncy * ncz);
  for (std::size_t i = 0; i < atoms.size(); ++i) {
    const auto& p = atoms[i].position_nm;
    cells[(periodic_cell(p[2], lz, ncz) * ncy + periodic_cell(p[1], ly, ncy)) * ncx
          + periodic_cell(p[0], lx, ncx)]
      .push_back(static_cast<std::uint32_t>(i));
  }
  auto near_solute = [&](double x, double y, double z) {
    const auto ix = static_cast<long long>(periodic_cell(x, lx, ncx));
    const auto iy = static_cast<long long>(periodic_cell(y, ly, ncy));
    const auto iz = static_cast<long long>(periodic_cell(z, lz, ncz));
    for (long long dz = -1; dz <= 1; ++dz)
      for (long long dy = -1; dy <= 1; ++dy)
        for (long long dx = -1; dx <= 1; ++dx) {
          using detail::wrap_index;
          for (auto j : cells[(wrap_index(iz + dz, ncz) * ncy + wrap_index(iy + dy, ncy)) * ncx
                              + wrap_index(ix + dx, ncx)]) {
            const auto& p = atoms[j].position_nm;
            double ddx = periodic_delta(p[0] - x, lx), ddy = periodic_delta(p[1] - y, ly),
                   ddz = periodic_delta(p[2] - z, lz);
            if (ddx * ddx + ddy * ddy + ddz * ddz < clear * clear)
              return true;
          }
        }
    return false;
  };
  const auto gx = static_cast<std::size_t>(lx / r.solvent_grid_nm + 0.5);
  const auto gy = static_cast<std::size_t>(ly / r.solvent_grid_nm + 0.5);
  const auto gz = static_cast<std::size_t>(lz / r.solvent_grid_nm + 0.5);
  const double sx = lx / static_cast<double>(gx), sy = ly / static_cast<double>(gy),
               sz = lz / static_cast<double>(gz);
  std::vector<vec3> solvent;
  for (std::size_t k = 0; k < gz; ++k) {
    const double z = (static_cast<double>(k) + 0.5) * sz;
    if (std::abs(z - mid_z) < r.solvent_exclusion_nm)
      continue;
    for (std::size_t j = 0; j < gy; ++j)
      for (std::size_t i = 0; i < gx; ++i) {
        double x = (static_cast<double>(i) + 0.5) * sx + r.kick_nm * (2 * random.uniform() - 1);
        double y = (static_cast<double>(j) + 0.5) * sy + r.kick_nm * (2 * random.uniform() - 1);
        double zz = z + r.kick_nm * (2 * random.uniform() - 1);
        if (std::abs(zz - mid_z) < r.solvent_exclusion_nm || near_solute(x, y, zz))
          continue;
        x -= lx * std::floor(x / lx);
        y -= ly * std::floor(y / ly);
        solvent.push_back({static_cast<float>(x), static_cast<float>(y), static_cast<float>(zz)});
      }
  }

  // Ions for neutrality and salt (insane's rule), replacing randomly chosen solvent beads.
  const double q_exact = out.solute_charge;
  const auto q = static_cast<long long>(std::llround(q_exact));
  if (std::abs(q_exact - static_cast<double>(q)) > 1e-3)
    throw recipe_error({"net charge of protein and lipids is " + std::to_string(q_exact)
                        + ", not a whole number: check the lipid templates' charges"});
  const double waters
    = static_cast<double>(r.waters_per_bead) * static_cast<double>(solvent.size());
  const long long salt_term = static_cast<long long>(
    0.5 + 0.5 * (r.salt_molar * waters / (27.7 + r.salt_molar) + static_cast<double>(q)));
  const long long n_anion = std::max({0LL, q, salt_term});
  const long long n_cation = n_anion - q;
  if (static_cast<std::size_t>(n_anion + n_cation) > solvent.size())
    throw recipe_error({"box: only " + std::to_string(solvent.size())
                        + " solvent beads fit, too few for " + std::to_string(n_cation + n_anion)
                        + " ions"});
  std::vector<std::size_t> order(solvent.size());
  std::iota(order.begin(), order.end(), 0);
  random.shuffle(order);
  std::vector<char> kind(solvent.size(), 0); // 0 solvent, 1 cation, 2 anion
  for (long long i = 0; i < n_cation; ++i)
    kind[order[static_cast<std::size_t>(i)]] = 1;
  for (long long i = 0; i < n_anion; ++i)
    kind[order[static_cast<std::size_t>(n_cation + i)]] = 2;
  for (char want : {0, 1, 2}) {
    const std::string& name = want == 0 ? r.solvent : want == 1 ? r.cation : r.anion;
    std::size_t n = 0;
    for (std::size_t i = 0; i < solvent.size(); ++i)
      if (kind[i] == want) {
        atoms.push_back({++residue, name, name, solvent[i], std::nullopt});
        ++n;
      }
    if (n > 0)
      out.molecules.push_back({name, n});
  }
  out.solvent_beads = solvent.size() - static_cast<std::size_t>(n_cation + n_anion);
  out.cations = static_cast<std::size_t>(n_cation);
  out.anions = static_cast<std::size_t>(n_anion);
  return out;
}

} // namespace mummi::md
