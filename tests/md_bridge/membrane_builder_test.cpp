#include "mummi/md_bridge/membrane_builder.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

namespace md = mummi::md;

namespace {

/// The demo lipids' forms (data/demo/lipids.itp) and bead names.
std::vector<md::lipid_template> demo_templates() {
  auto dpc = md::parse_insane_form("alhead=C P, allink=G G, altail=CDCC CCCC, alname=DPC", "t", 1);
  auto dps = md::parse_insane_form("alhead=S P, allink=G G, altail=CDCC CCCC, alname=DPS, "
                                   "charge=-1.0",
                                   "t", 2);
  auto dst = md::parse_insane_form("alhead=, allink=, altail=NRRRCC, alname=DST", "t", 3);
  return {md::make_lipid_template(dpc, {}), md::make_lipid_template(dps, {}),
          md::make_lipid_template(dst, {})};
}

/// The demo protein's shape: an apolar tail (anchor: atom 0) under a 4x4x4 block.
md::protein_placement small_protein(double x, double y) {
  md::protein_placement p;
  p.molecule_name = "DPR";
  p.charge = 2;
  for (int i = 0; i < 4; ++i)
    p.coordinates.atoms.push_back(
      {1, "TAIL", "T" + std::to_string(4 - i), {0, 0, 0.47f * static_cast<float>(i)}, {}});
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i)
        p.coordinates.atoms.push_back(
          {2,
           "DOM",
           "BB",
           {0.47f * static_cast<float>(i), 0.47f * static_cast<float>(j),
            2.0f + 0.47f * static_cast<float>(k)},
           {}});
  p.anchor_atom = 0;
  p.x_nm = x;
  p.y_nm = y;
  p.depth_nm = 0.3;
  return p;
}

struct census {
  std::map<std::string, std::size_t> upper, lower;
  std::size_t solvent = 0, cations = 0, anions = 0;
};

/// Checks the invariants every built system must keep and counts what it holds.
census check_invariants(const md::membrane_recipe& r, const md::built_membrane& m,
                        const std::vector<md::lipid_template>& templates) {
  std::map<std::string, const md::lipid_template*> by_name;
  for (const auto& t : templates)
    by_name[t.name] = &t;
  census c;
  const auto& atoms = m.coordinates.atoms;
  const double mid = m.membrane_mid_z_nm;
  std::size_t at = 0, total = 0;
  double charge = 0;
  for (const auto& block : m.molecules) {
    std::size_t size = 1;
    if (r.protein && block.name == r.protein->molecule_name) {
      size = r.protein->coordinates.atoms.size();
      charge += r.protein->charge;
    } else if (auto it = by_name.find(block.name); it != by_name.end()) {
      size = it->second->bead_names.size();
      charge += it->second->charge * static_cast<double>(block.count);
      for (std::size_t k = 0; k < block.count; ++k) {
        // A lipid's first bead (its head) tells the leaflet; every bead of it stays there.
        const bool upper = atoms[at + k * size].position_nm[2] > mid;
        for (std::size_t b = 0; b < size; ++b) {
          const auto z = atoms[at + k * size + b].position_nm[2];
          EXPECT_EQ(upper, z > mid) << block.name << " bead " << b;
          EXPECT_EQ(atoms[at + k * size + b].residue_name, block.name);
        }
        ++(upper ? c.upper : c.lower)[block.name];
      }
    } else if (block.name == r.solvent) {
      c.solvent += block.count;
    } else if (block.name == r.cation) {
      c.cations += block.count;
      charge += static_cast<double>(block.count);
    } else if (block.name == r.anion) {
      c.anions += block.count;
      charge -= static_cast<double>(block.count);
    } else {
      ADD_FAILURE() << "unexpected molecule " << block.name;
    }
    at += size * block.count;
    total += size * block.count;
  }
  EXPECT_EQ(total, atoms.size()) << "atom count equals what [ molecules ] says";
  EXPECT_NEAR(charge, 0.0, 1e-6) << "the system is neutral";
  EXPECT_EQ(c.solvent, m.solvent_beads);
  EXPECT_EQ(c.cations, m.cations);
  EXPECT_EQ(c.anions, m.anions);
  // No solvent in the membrane core; everything inside the box in x and y.
  for (std::size_t i = m.solute_atoms; i < atoms.size(); ++i)
    EXPECT_GE(std::abs(atoms[i].position_nm[2] - mid), r.solvent_exclusion_nm) << "atom " << i;
  for (std::size_t i = r.protein ? r.protein->coordinates.atoms.size() : 0; i < atoms.size(); ++i) {
    EXPECT_GE(atoms[i].position_nm[0], 0);
    EXPECT_LT(atoms[i].position_nm[0], r.box_x_nm);
    EXPECT_GE(atoms[i].position_nm[1], 0);
    EXPECT_LT(atoms[i].position_nm[1], r.box_y_nm);
  }
  return c;
}

/// Each leaflet holds its target composition within one lipid.
void check_composition(const md::leaflet_recipe& want,
                       const std::map<std::string, std::size_t>& got,
                       const std::vector<md::molecule_block>& reported) {
  std::size_t total = 0;
  for (const auto& [name, n] : got)
    total += n;
  std::size_t reported_total = 0;
  for (const auto& b : reported) {
    EXPECT_EQ(b.count, got.count(b.name) ? got.at(b.name) : 0) << b.name;
    reported_total += b.count;
  }
  EXPECT_EQ(reported_total, total);
  for (const auto& c : want.lipids) {
    const double target = want.exact_counts ? c.amount : c.amount * static_cast<double>(total);
    const double have = got.count(c.lipid) ? static_cast<double>(got.at(c.lipid)) : 0.0;
    EXPECT_LE(std::abs(have - target), want.exact_counts ? 0.0 : 1.0) << c.lipid;
  }
}

md::membrane_recipe asymmetric_recipe() {
  md::membrane_recipe r;
  r.box_x_nm = 12;
  r.box_y_nm = 10;
  r.box_z_nm = 11;
  r.upper.lipids = {{"DPC", 0.6}, {"DST", 0.4}};
  r.lower.lipids = {{"DPC", 0.45}, {"DPS", 0.35}, {"DST", 0.2}};
  r.asymmetry = 7;
  r.seed = 42;
  return r;
}

} // namespace

TEST(membrane_builder, templates_follow_the_insane_form) {
  auto t = demo_templates();
  ASSERT_EQ(t[0].bead_names.size(), 12u);
  EXPECT_EQ(t[0].bead_names[0], "NC3");
  EXPECT_EQ(t[0].bead_names[1], "PO4");
  EXPECT_EQ(t[0].bead_names[5], "D2A");
  EXPECT_EQ(t[0].bead_names[11], "C4B");
  // Head highest, lowest tail bead at half the leaflet gap (0.15 nm), tails side by side.
  EXPECT_FLOAT_EQ(t[0].offsets_nm[0][2], 0.3f * 6.5f);
  EXPECT_FLOAT_EQ(t[0].offsets_nm[7][2], 0.15f);
  EXPECT_FLOAT_EQ(t[0].offsets_nm[11][2], 0.15f);
  EXPECT_NE(t[0].offsets_nm[7][0], t[0].offsets_nm[11][0]);
  EXPECT_DOUBLE_EQ(t[1].charge, -1.0);
  EXPECT_THROW(
    md::make_lipid_template(md::parse_insane_form("alname=X, altail=CC", "f", 1), {"A", "B", "C"}),
    md::recipe_error);
}

TEST(membrane_builder, malformed_forms_name_file_and_line) {
  try {
    md::parse_insane_form("alname=X, altail=CC, charge=minus", "lipids.dat", 7);
    FAIL();
  } catch (const md::io_error& e) {
    EXPECT_NE(std::string(e.what()).find("lipids.dat:7:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("charge"), std::string::npos) << e.what();
  }
  EXPECT_THROW(md::parse_insane_form("alhead=C P, altail=CCCC", "f", 1), md::io_error);
  EXPECT_THROW(md::parse_insane_form("alname=X, altail=CC, alhead=CP", "f", 1), md::io_error);
}

TEST(membrane_builder, symmetric_single_lipid_bilayer) {
  auto templates = demo_templates();
  md::membrane_recipe r;
  r.box_x_nm = r.box_y_nm = 8;
  r.box_z_nm = 10;
  r.upper.lipids = r.lower.lipids = {{"DPC", 1.0}};
  auto m = md::build_membrane(r, templates);
  auto c = check_invariants(r, m, templates);
  // 8 nm / sqrt(0.6 nm^2) rounds to 10 sites per row.
  EXPECT_EQ(c.upper["DPC"], 100u);
  EXPECT_EQ(c.lower["DPC"], 100u);
  EXPECT_EQ(c.cations, c.anions);
  // 0.15 M of 4 x solvent waters, insane's formula.
  const double waters = 4.0 * static_cast<double>(c.solvent + c.cations + c.anions);
  EXPECT_EQ(c.anions, static_cast<std::size_t>(0.5 + 0.5 * 0.15 * waters / 27.85));
}

TEST(membrane_builder, asymmetric_multi_component_leaflets) {
  auto templates = demo_templates();
  auto r = asymmetric_recipe();
  auto m = md::build_membrane(r, templates);
  auto c = check_invariants(r, m, templates);
  check_composition(r.upper, c.upper, m.upper);
  check_composition(r.lower, c.lower, m.lower);
  std::size_t upper = 0, lower = 0;
  for (auto& [n, k] : c.upper)
    upper += k;
  for (auto& [n, k] : c.lower)
    lower += k;
  // 15 x 13 sites per leaflet; the asymmetry takes 7 from the upper one.
  EXPECT_EQ(lower, 15u * 13u);
  EXPECT_EQ(upper, 15u * 13u - 7u);
  // The anionic lipids are neutralised by extra cations.
  EXPECT_EQ(c.cations - c.anions, c.lower["DPS"]);
}

TEST(membrane_builder, exact_counts_and_other_box_sizes) {
  auto templates = demo_templates();
  for (double edge : {6.0, 9.5, 14.0}) {
    md::membrane_recipe r;
    r.box_x_nm = edge;
    r.box_y_nm = edge * 1.2;
    r.box_z_nm = 9;
    r.salt_molar = 0.3;
    const double sites_hint = std::floor(edge / std::sqrt(0.6) + 0.5);
    r.upper.exact_counts = true;
    r.upper.lipids = {{"DPC", std::floor(sites_hint * 2)}, {"DST", std::floor(sites_hint)}};
    r.lower.area_per_lipid_nm2 = 0.7;
    r.lower.lipids = {{"DPS", 0.25}, {"DPC", 0.75}};
    auto m = md::build_membrane(r, templates);
    auto c = check_invariants(r, m, templates);
    check_composition(r.upper, c.upper, m.upper);
    check_composition(r.lower, c.lower, m.lower);
  }
}

TEST(membrane_builder, protein_gets_its_place_and_no_lipid_inside_it) {
  auto templates = demo_templates();
  auto r = asymmetric_recipe();
  r.protein = small_protein(3.0, 4.0);
  auto m = md::build_membrane(r, templates);
  auto c = check_invariants(r, m, templates);
  check_composition(r.upper, c.upper, m.upper);
  const auto& atoms = m.coordinates.atoms;
  const auto& anchor = atoms[0].position_nm;
  EXPECT_NEAR(anchor[0], 3.0, 1e-5);
  EXPECT_NEAR(anchor[1], 4.0, 1e-5);
  EXPECT_NEAR(anchor[2], m.membrane_mid_z_nm + 0.3, 1e-5);
  // The protein took upper-leaflet sites; no lipid bead sits within 0.3 nm of a protein bead.
  std::size_t upper = 0;
  for (auto& [n, k] : c.upper)
    upper += k;
  EXPECT_LT(upper, 15u * 13u - 7u);
  const std::size_t np = r.protein->coordinates.atoms.size();
  for (std::size_t i = np; i < m.solute_atoms; ++i)
    for (std::size_t j = 0; j < np; ++j) {
      double d2 = 0;
      for (int k = 0; k < 3; ++k) {
        double d = atoms[i].position_nm[k] - atoms[j].position_nm[k];
        d2 += d * d;
      }
      EXPECT_GT(d2, 0.3 * 0.3) << "lipid atom " << i << " vs protein atom " << j;
    }
}

TEST(membrane_builder, deterministic_for_a_seed) {
  auto templates = demo_templates();
  auto r = asymmetric_recipe();
  r.protein = small_protein(6.0, 5.0);
  auto a = md::build_membrane(r, templates);
  auto b = md::build_membrane(r, templates);
  ASSERT_EQ(a.coordinates.atoms.size(), b.coordinates.atoms.size());
  for (std::size_t i = 0; i < a.coordinates.atoms.size(); ++i) {
    ASSERT_EQ(a.coordinates.atoms[i].position_nm, b.coordinates.atoms[i].position_nm) << i;
    ASSERT_EQ(a.coordinates.atoms[i].atom_name, b.coordinates.atoms[i].atom_name) << i;
  }
  r.seed = 43;
  auto c = md::build_membrane(r, templates);
  bool differs = c.coordinates.atoms.size() != a.coordinates.atoms.size();
  for (std::size_t i = 0; !differs && i < a.coordinates.atoms.size(); ++i)
    differs = a.coordinates.atoms[i].position_nm != c.coordinates.atoms[i].position_nm;
  EXPECT_TRUE(differs) << "another seed gives another system";
}

TEST(membrane_builder, bad_recipes_list_every_problem) {
  auto templates = demo_templates();
  auto r = asymmetric_recipe();
  r.upper.lipids = {{"DPC", 0.5}, {"DST", 0.4}};
  r.lower.lipids = {{"DPC", 0.5}, {"POPX", 0.5}};
  r.box_z_nm = 3;
  try {
    md::build_membrane(r, templates);
    FAIL() << "a bad recipe was accepted";
  } catch (const md::recipe_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.problems().size(), 3u) << what;
    EXPECT_NE(what.find("upper leaflet: fractions sum to 0.9, not 1"), std::string::npos) << what;
    EXPECT_NE(what.find("unknown lipid 'POPX'"), std::string::npos) << what;
    EXPECT_NE(what.find("z edge 3"), std::string::npos) << what;
  }
  auto tiny = asymmetric_recipe();
  tiny.box_x_nm = 1.2;
  EXPECT_THROW(md::build_membrane(tiny, templates), md::recipe_error);
  auto crowded = asymmetric_recipe();
  crowded.upper.exact_counts = true;
  crowded.upper.lipids = {{"DPC", 500}};
  try {
    md::build_membrane(crowded, templates);
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_NE(std::string(e.what()).find("500 lipids asked for"), std::string::npos) << e.what();
  }
  auto huge = asymmetric_recipe();
  huge.upper.exact_counts = true;
  huge.upper.lipids = {{"DPC", 1e20}, {"DST", 1e20}};
  try {
    md::build_membrane(huge, templates);
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_NE(std::string(e.what()).find("beyond any membrane"), std::string::npos) << e.what();
  }
  auto emptied = asymmetric_recipe();
  emptied.asymmetry = -1000;
  try {
    md::build_membrane(emptied, templates);
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_NE(std::string(e.what()).find("removes every site"), std::string::npos) << e.what();
  }
  auto twice = templates;
  twice.push_back(templates[0]);
  try {
    md::build_membrane(asymmetric_recipe(), twice);
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_NE(std::string(e.what()).find("lipid 'DPC' has two templates"), std::string::npos)
      << e.what();
  }
  auto wide = asymmetric_recipe();
  wide.protein = small_protein(1, 1);
  wide.box_x_nm = 2.5;
  try {
    md::build_membrane(wide, templates);
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_NE(std::string(e.what()).find("would meet its periodic image"), std::string::npos)
      << e.what();
  }
  auto tall = asymmetric_recipe();
  tall.protein = small_protein(1, 1);
  tall.protein->depth_nm = 4.5;
  try {
    md::build_membrane(tall, templates);
    FAIL();
  } catch (const md::recipe_error& e) {
    EXPECT_NE(std::string(e.what()).find("too small for protein 'DPR'"), std::string::npos)
      << e.what();
  }
}
