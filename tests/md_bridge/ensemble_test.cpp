// Restrained ensembles: make_whole and the collective variable on hand-made coordinates, then
// short real runs of the demo system (GROMACS) checked frame by frame.

#include "mummi/md_bridge/ensemble.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>

#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/membrane_builder.hpp"
#include "mummi/md_bridge/xtc.hpp"

#include "../support/md_files.hpp"

namespace md = mummi::md;
namespace cpl = mummi::coupling;
namespace fs = std::filesystem;

namespace {

const fs::path demo_dir = fs::path(MUMMI_DATA_DIR) / "demo";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

float distance(const md::vec3& a, const md::vec3& b) {
  const float dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return std::sqrt(dx * dx + dy * dy + dz * dz);
}

/// A chain of `n` atoms 0.4 nm apart along `direction`, from `start`.
std::vector<md::vec3> chain(std::size_t n, md::vec3 start, md::vec3 direction) {
  std::vector<md::vec3> x;
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = 0.4f * static_cast<float>(i);
    x.push_back(
      {start[0] + k * direction[0], start[1] + k * direction[1], start[2] + k * direction[2]});
  }
  return x;
}

std::vector<md::atom_pair> chain_bonds(std::size_t n) {
  std::vector<md::atom_pair> b;
  for (std::size_t i = 0; i + 1 < n; ++i)
    b.emplace_back(i, i + 1);
  return b;
}

/// `x` with each atom put into the rectangular box (what mdrun does to broken molecules).
std::vector<md::vec3> wrapped(std::vector<md::vec3> x, const md::box_matrix& box) {
  for (auto& p : x)
    for (int d = 0; d < 3; ++d)
      p[d] -= box[d][d] * std::floor(p[d] / box[d][d]);
  return x;
}

void expect_near(const std::vector<md::vec3>& a, const std::vector<md::vec3>& b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    for (int d = 0; d < 3; ++d)
      EXPECT_NEAR(a[i][d], b[i][d], tol) << "atom " << i << " dimension " << d;
}

} // namespace

TEST(make_whole, a_chain_split_across_the_x_edge_is_joined_from_its_first_atom) {
  const auto box = md::rectangular_box(5, 5, 5);
  const auto whole = chain(6, {4.3f, 2.0f, 2.0f}, {1, 0, 0}); // 4.3 .. 6.3
  auto x = wrapped(whole, box);
  ASSERT_LT(x[5][0], 2.0f) << "the test's chain must start split";
  md::make_whole(x, chain_bonds(6), box);
  expect_near(x, whole, 1e-5f);
}

TEST(make_whole, every_direction_and_the_first_atom_decides_the_image) {
  const auto box = md::rectangular_box(4, 5, 6);
  // Diagonal chain leaving the box through the y and z edges downwards.
  const auto whole = chain(8, {1.0f, 0.5f, 0.3f}, {0.0f, -0.6f, -0.8f});
  auto x = wrapped(whole, box);
  md::make_whole(x, chain_bonds(8), box);
  expect_near(x, whole, 1e-5f);

  // Atom 0 outside the box stays where it is; the rest follow it.
  auto shifted = whole;
  for (auto& p : shifted)
    p[0] += 8; // two boxes along x
  auto y = wrapped(whole, box);
  y[0] = shifted[0];
  md::make_whole(y, chain_bonds(8), box);
  expect_near(y, shifted, 1e-5f);
}

TEST(make_whole, a_branched_molecule_with_bonds_in_any_order) {
  const auto box = md::rectangular_box(3, 3, 3);
  // A ring of four atoms with a side chain of two, around the box corner.
  const std::vector<md::vec3> whole = {{2.8f, 2.8f, 2.8f}, {3.2f, 2.8f, 2.8f}, {3.2f, 3.2f, 2.8f},
                                       {2.8f, 3.2f, 2.8f}, {3.2f, 3.2f, 3.2f}, {3.5f, 3.4f, 3.5f}};
  const std::vector<md::atom_pair> bonds = {{4, 5}, {2, 3}, {3, 0}, {1, 2}, {0, 1}, {4, 2}};
  auto x = wrapped(whole, box);
  md::make_whole(x, bonds, box);
  expect_near(x, whole, 1e-5f);
}

TEST(make_whole, triclinic_box_shifts_by_whole_box_vectors) {
  // b leans along x: crossing the y edge moves an atom by (1.5, 6, 0).
  md::box_matrix box{md::vec3{6, 0, 0}, md::vec3{1.5f, 6, 0}, md::vec3{0, 0, 6}};
  const std::vector<md::vec3> whole = {{3.0f, 5.8f, 1.0f}, {3.1f, 6.2f, 1.0f}, {3.2f, 6.6f, 1.0f}};
  auto x = whole;
  for (std::size_t i = 1; i < x.size(); ++i) { // the image one b below
    x[i][0] -= 1.5f;
    x[i][1] -= 6.0f;
  }
  md::make_whole(x, chain_bonds(3), box);
  expect_near(x, whole, 1e-5f);
}

TEST(make_whole, bad_molecules_and_boxes_are_refused_with_the_reason) {
  const auto box = md::rectangular_box(5, 5, 5);
  auto x = chain(4, {1, 1, 1}, {1, 0, 0});
  try {
    md::make_whole(x, std::vector<md::atom_pair>{{0, 1}, {2, 3}}, box);
    FAIL() << "a molecule in two pieces was made whole";
  } catch (const md::md_error& e) {
    EXPECT_TRUE(contains(e.what(), "2 atoms are bonded to atom 1 by no chain of bonds (atoms 3, 4"))
      << e.what();
  }
  try {
    md::make_whole(x, std::vector<md::atom_pair>{{0, 1}, {1, 2}, {2, 7}}, box);
    FAIL();
  } catch (const md::md_error& e) {
    EXPECT_TRUE(contains(e.what(), "bond 3 (atoms 3 8)")) << e.what();
  }
  const auto walk = md::plan_whole_walk(3, chain_bonds(3));
  EXPECT_THROW(md::make_whole(x, walk, box), md::md_error); // 4 positions, 3 atoms
  try {
    md::make_whole(x, chain_bonds(4), md::rectangular_box(5, 0, 5));
    FAIL();
  } catch (const md::md_error& e) {
    EXPECT_TRUE(contains(e.what(), "no periodic edge along y")) << e.what();
  }
}

TEST(domain_height, membrane_split_by_the_z_boundary_and_signed_heights) {
  const auto box = md::rectangular_box(4, 4, 10);
  // Membrane beads around z = 0 (half of them wrapped to the top), mean -0.05 nm.
  std::vector<md::vec3> x = {{0, 0, 9.8f}, {1, 0, 0.2f}, {2, 0, 9.7f}, {3, 0, 0.1f}};
  x.push_back({1, 1, 3.0f}); // domain above
  x.push_back({1, 2, 3.3f});
  x.push_back({1, 1, 8.0f}); // a bead below the membrane
  md::cv_groups g;
  g.membrane = {0, 1, 2, 3};
  g.domain = {4, 5};
  EXPECT_NEAR(md::domain_height_nm(x, box, g), 3.15 + 0.05, 1e-5);
  g.domain = {6};
  EXPECT_NEAR(md::domain_height_nm(x, box, g), -2.0 + 0.05, 1e-5);
  // A domain split by the boundary itself, below a membrane at z = 2.
  std::vector<md::vec3> y = {{0, 0, 1.9f}, {1, 0, 2.1f}, {1, 1, 9.9f}, {1, 2, 0.3f}};
  g.membrane = {0, 1};
  g.domain = {2, 3};
  EXPECT_NEAR(md::domain_height_nm(y, box, g), 0.1 - 2.0, 1e-5);

  g.domain = {};
  EXPECT_THROW(md::domain_height_nm(x, box, g), md::md_error);
  g.domain = {7};
  try {
    md::domain_height_nm(x, box, g);
    FAIL();
  } catch (const md::md_error& e) {
    EXPECT_TRUE(contains(e.what(), "domain group holds atom 8 of a structure of 7 atoms"))
      << e.what();
  }
}

namespace {

md::ensemble_spec demo_spec() {
  md::ensemble_spec s;
  s.protein_molecule = "DPR";
  s.protein_groups = md::read_ndx(demo_dir / "protein.ndx");
  s.domain_group = "DOM2";
  s.membrane_molecules = {"DPC", "DPS", "DST"};
  s.force_constant_kj_mol_nm2 = 1000;
  s.run_ps = 20;
  s.frame_ps = 2;
  s.discard_ps = 10;
  return s;
}
md::mdrun_options two_threads() {
  md::mdrun_options o;
  o.threads = 2;
  return o;
}

/// The demo system as the membrane builder makes it, before any GROMACS run: enough for the
/// checks made before a run.
md::createsims_result built_demo_system(const fs::path& dir) {
  const auto spec = md::demo_system(demo_dir);
  md::topology includes;
  for (const auto& f : spec.includes)
    md::add_include(includes, fs::absolute(f).string());
  const auto molecules = md::parse_topology(md::format_top(includes), dir / "molecules.top");
  auto recipe = spec.recipe;
  md::protein_placement p;
  p.coordinates = md::read_gro(demo_dir / "protein.gro");
  p.molecule_name = "DPR";
  p.charge = 4;
  p.x_nm = recipe.box_x_nm / 2;
  p.y_nm = recipe.box_y_nm / 2;
  p.depth_nm = 0.3;
  recipe.protein = p;
  const auto built = md::build_membrane(recipe, md::lipid_templates_from(molecules));
  md::createsims_result r;
  r.structure = dir / "system.gro";
  md::write_gro(built.coordinates, r.structure);
  auto top = includes;
  for (const auto& b : built.molecules)
    top.molecules.push_back({b.name, static_cast<std::int64_t>(b.count), {}});
  r.topology = dir / "topol.top";
  md::write_top(top, r.topology);
  md::index_file index;
  std::vector<std::int32_t> rest, solvent;
  for (std::size_t i = 1; i <= built.coordinates.atoms.size(); ++i)
    (i <= built.solute_atoms ? rest : solvent).push_back(static_cast<std::int32_t>(i));
  index.add_group("Rest", std::move(rest));
  index.add_group("Solvent", std::move(solvent));
  r.index = dir / "index.ndx";
  md::write_ndx(index, r.index);
  return r;
}

/// One createsims system shared by the run tests (it takes most of their time).
class ensemble_run : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<mummi::test::temp_dir>("mummi-ensemble-test");
    const auto spec = md::demo_system(demo_dir);
    md::mdrun_options o;
    o.threads = 2;
    system_ = std::make_unique<md::createsims_result>(
      md::run_createsims(spec, md::default_protocol(), md::read_gro(demo_dir / "protein.gro"),
                         dir_->path() / "createsims", 5, md::gmx_config{}, o));
  }
  static void TearDownTestSuite() {
    system_.reset();
    dir_.reset();
  }

  /// The lipid beads and DOM2 of the demo system, found without the library's helpers: the
  /// protein is the first molecule; lipids follow it up to the first water.
  static md::cv_groups independent_groups(const md::structure& s) {
    md::cv_groups g;
    for (std::size_t a = 79; a < 127; ++a)
      g.domain.push_back(a);
    for (std::size_t a = 127; a < s.atoms.size() && s.atoms[a].residue_name != "W"; ++a)
      g.membrane.push_back(a);
    return g;
  }

  static inline std::unique_ptr<mummi::test::temp_dir> dir_;
  static inline std::unique_ptr<md::createsims_result> system_;
};

/// Largest distance between bonded atoms of the demo protein in a frame.
float longest_bond(std::span<const float> frame, const std::vector<md::atom_pair>& bonds) {
  float longest = 0;
  for (const auto& [a, b] : bonds) {
    const md::vec3 pa{frame[3 * a], frame[3 * a + 1], frame[3 * a + 2]};
    const md::vec3 pb{frame[3 * b], frame[3 * b + 1], frame[3 * b + 2]};
    longest = std::max(longest, distance(pa, pb));
  }
  return longest;
}

} // namespace

TEST_F(ensemble_run, continuing_from_createsims_gives_labelled_frames_after_the_discard_time) {
  auto spec = demo_spec();
  spec.name = "state_a";
  spec.reference_nm = 3.0;
  spec.label = cpl::state_a;
  spec.source = 7;
  const auto r = md::run_ensemble(*system_, md::default_protocol(), spec, dir_->path() / "a",
                                  md::gmx_config{}, two_threads());
  ASSERT_EQ(md::expected_frames(spec), 5u);
  ASSERT_EQ(r.frames.frames(), 5u);
  EXPECT_EQ(r.frames.atoms, 127u);
  EXPECT_EQ(r.frames.positions_nm.size(), 5u * 127 * 3);
  for (std::size_t i = 0; i < 5; ++i) {
    const auto& m = r.frames.meta[i];
    EXPECT_EQ(m.step, static_cast<std::int64_t>(600 + 100 * i)); // 12 ps .. 20 ps at 20 fs
    EXPECT_DOUBLE_EQ(m.time_ps, 12.0 + 2.0 * static_cast<double>(i));
    EXPECT_EQ(m.label, cpl::state_a);
    EXPECT_EQ(m.source, 7);
  }
  ASSERT_EQ(r.cv_nm.size(), 5u);
  for (double cv : r.cv_nm)
    EXPECT_NEAR(cv, 3.0, 0.4) << "held near its reference";
  // Continued from the equilibration's checkpoint: no velocities drawn.
  const auto mdp_text = mummi::test::read_file(dir_->path() / "a" / "state_a.mdp");
  EXPECT_TRUE(contains(mdp_text, "continuation")) << mdp_text;
  EXPECT_FALSE(contains(mdp_text, "gen-seed")) << mdp_text;
  // Only the protein is in the trajectory.
  EXPECT_EQ(md::index_xtc(r.trajectory).front().natoms, 127u);
  EXPECT_GT(r.ns_per_day, 0);
}

TEST_F(ensemble_run, a_split_protein_pulled_away_comes_back_whole_with_the_cv_gromacs_sees) {
  // Start from the equilibrated system moved by half a box along x, each atom put back into
  // the box: the protein starts split across the x edge. No checkpoint with it: velocities are
  // drawn from the seed.
  auto start = md::read_gro(system_->structure);
  const float lx = start.box_nm[0][0];
  for (auto& a : start.atoms) {
    a.position_nm[0] += lx / 2;
    if (a.position_nm[0] >= lx)
      a.position_nm[0] -= lx;
  }
  auto shifted = *system_;
  shifted.structure = dir_->path() / "shifted.gro";
  md::write_gro(start, shifted.structure);

  auto spec = demo_spec();
  spec.name = "state_b";
  spec.reference_nm = 4.5;
  spec.label = cpl::state_b;
  spec.source = 1;
  spec.seed = 3;
  const auto r = md::run_ensemble(shifted, md::default_protocol(), spec, dir_->path() / "b",
                                  md::gmx_config{}, two_threads());
  ASSERT_EQ(r.frames.frames(), 5u);
  const auto mdp_text = mummi::test::read_file(dir_->path() / "b" / "state_b.mdp");
  EXPECT_TRUE(contains(mdp_text, "gen-seed")) << mdp_text;

  const auto protein = md::read_itp(demo_dir / "protein.itp");
  std::vector<md::atom_pair> bonds;
  for (const auto& b : protein.bonds)
    bonds.emplace_back(b.atoms[0] - 1, b.atoms[1] - 1);
  ASSERT_GT(bonds.size(), 126u);
  for (std::size_t i = 0; i < r.frames.frames(); ++i) {
    EXPECT_LT(longest_bond(r.frames.frame(i), bonds), 1.0f) << "frame " << i << " is not whole";
    EXPECT_EQ(r.frames.meta[i].label, cpl::state_b);
  }
  // mdrun itself wrote the protein broken: the frames were made whole here.
  float raw_longest = 0;
  for (const auto& f : md::read_xtc(r.trajectory)) {
    std::vector<float> flat;
    for (const auto& p : f.positions_nm)
      flat.insert(flat.end(), p.begin(), p.end());
    raw_longest = std::max(raw_longest, longest_bond(flat, bonds));
  }
  EXPECT_GT(raw_longest, 2.0f) << "the run did not split the protein: this test proves nothing";

  // The CV of the final structure: the library's helper, an independent computation here, and
  // the pull coordinate GROMACS reported at the same (last) step.
  const auto last = md::read_gro(r.final_structure);
  const auto groups = independent_groups(last);
  double dom2 = 0, membrane = 0;
  for (auto a : groups.domain)
    dom2 += last.atoms[a].position_nm[2];
  for (auto a : groups.membrane)
    membrane += last.atoms[a].position_nm[2];
  const double expected = dom2 / static_cast<double>(groups.domain.size())
    - membrane / static_cast<double>(groups.membrane.size());
  const auto top = md::read_topology(system_->topology);
  const auto located = md::locate_protein(top, "DPR", md::read_ndx(demo_dir / "protein.ndx"),
                                          "DOM2", {"DPC", "DPS", "DST"});
  EXPECT_EQ(located.cv.domain, groups.domain);
  EXPECT_EQ(located.cv.membrane, groups.membrane);
  EXPECT_NEAR(md::domain_height_nm(last, located.cv), expected, 1e-4);
  EXPECT_NEAR(md::domain_height_nm(last, located.cv), r.cv_nm.back(), 5e-3);
  EXPECT_GT(r.cv_nm.back(), 3.6) << "pulled up from about 3 nm towards 4.5 nm";
}

TEST(ensemble_inputs, bad_inputs_are_refused_before_any_run_with_every_problem_named) {
  mummi::test::temp_dir tmp;
  const auto system = built_demo_system(tmp.path());
  auto spec = demo_spec();
  spec.reference_nm = 3.0;
  spec.domain_group = "DOM9";
  spec.run_ps = 10;
  spec.discard_ps = 12;
  spec.frame_ps = 0.03;
  const auto dir = tmp.path() / "bad";
  try {
    md::run_ensemble(system, md::default_protocol(), spec, dir, md::gmx_config{}, two_threads());
    FAIL() << "a spec with a missing group and impossible times was run";
  } catch (const md::md_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "no group 'DOM9' (they are: ANCHOR, DOM1, LINKER, DOM2)")) << what;
    EXPECT_TRUE(contains(what, "discard time 12 ps is not shorter than the run (10 ps)")) << what;
    EXPECT_TRUE(contains(what, "frame interval 0.03 ps is not a multiple of the time step 0.02 ps"))
      << what;
  }
  EXPECT_FALSE(fs::exists(dir / "ensemble.tpr"));

  spec = demo_spec();
  spec.reference_nm = 3.0;
  spec.run_ps = 10;
  spec.frame_ps = 4;
  spec.discard_ps = 9; // frames at 4 and 8 ps: none after 9 ps
  try {
    md::run_ensemble(system, md::default_protocol(), spec, dir, md::gmx_config{}, two_threads());
    FAIL();
  } catch (const md::md_error& e) {
    EXPECT_TRUE(contains(e.what(), "zero frames wanted")) << e.what();
  }

  spec = demo_spec();
  spec.reference_nm = 9.0; // the box is about 13 nm high
  spec.protein_molecule = "KRAS";
  spec.membrane_molecules = {"POPC"};
  try {
    md::run_ensemble(system, md::default_protocol(), spec, dir, md::gmx_config{}, two_threads());
    FAIL();
  } catch (const md::md_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, "reference 9 nm is beyond 0.49 of")) << what;
    EXPECT_TRUE(contains(what, "the protein molecule 'KRAS' is not in the system's [ molecules ]"))
      << what;
    EXPECT_TRUE(contains(what, "none of the membrane molecules (POPC)")) << what;
  }
}
