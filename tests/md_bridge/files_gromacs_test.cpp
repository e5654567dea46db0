// Checks of the GROMACS file readers and writers against GROMACS itself: `gmx grompp` accepts
// what they write, `gmx editconf` reads our .gro, and the force fields GROMACS ships parse.

#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/mdp.hpp"
#include "mummi/md_bridge/ndx.hpp"
#include "mummi/md_bridge/topology.hpp"

#include "../support/md_files.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace fs = std::filesystem;
using namespace mummi::md;
using mummi::test::read_file;
using mummi::test::temp_dir;

namespace {

const fs::path share_dir = "/usr/share/gromacs/top";

/// Runs `gmx <arguments>` in `dir` with its output in dir/<log>; returns the exit code.
int run_gmx(const fs::path& dir, const std::string& arguments, const std::string& log) {
  const auto command = "cd '" + dir.string() + "' && GMX_MAXBACKUP=-1 gmx -quiet " + arguments
    + " > '" + log + "' 2>&1 < /dev/null";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// 10 molecules of a 3-bead chain with a toy force field, written with the topology API.
topology chain_topology() {
  topology t;
  t.preamble.push_back({"; 10 three-bead chains, written by files_gromacs_test", {}, {}});
  add_parameter_section(t, "defaults",
                        {"; nbfunc comb-rule gen-pairs fudgeLJ fudgeQQ", "1  2  no  1.0  1.0"});
  add_parameter_section(t, "atomtypes",
                        {"; name mass charge ptype sigma epsilon", "B  72.0  0.000  A  0.47  3.5",
                         "Q  72.0  0.000  A  0.47  3.5"});
  molecule_type m;
  m.name = "CHN";
  m.nrexcl = 1;
  m.annotations = {";@INSANE alhead=C, altail=CC, alname=CHN, charge=0.0"};
  m.atoms.push_back({1, "Q", 1, "CHN", "B1", 1, 1.0, std::nullopt, {}, {}, "head"});
  m.atoms.push_back({2, "B", 1, "CHN", "B2", 2, 0.0, 72.0, {}, {}, {}});
  m.atoms.push_back({3, "Q", 1, "CHN", "B3", 3, -1.0, std::nullopt, {}, {}, {}});
  const condition flexible{{"FLEXIBLE", true}};
  const condition rigid{{"FLEXIBLE", false}};
  m.bonds.push_back({{1, 2}, 1, {"0.47", "1250"}, {}, "backbone"});
  m.bonds.push_back({{2, 3}, 1, {"0.47", "1250"}, flexible, {}});
  m.constraints.push_back({{2, 3}, 1, {"0.47"}, rigid, {}});
  m.angles.push_back({{1, 2, 3}, 2, {"180.0", "25.0"}, {}, {}});
  m.position_restraints.push_back({{1}, 1, {"1000", "1000", "1000"}, {{"POSRES", true}}, {}});
  t.molecule_types.push_back(m);
  t.system_name = "Ten chains";
  t.molecules.push_back({"CHN", 10, {}});
  return t;
}

structure chain_structure() {
  structure s;
  s.title = "Ten chains";
  for (int i = 0; i < 10; ++i)
    for (int k = 0; k < 3; ++k) {
      atom a;
      a.residue_number = i + 1;
      a.residue_name = "CHN";
      a.atom_name = "B" + std::to_string(k + 1);
      a.position_nm = {1.0f + 0.47f * static_cast<float>(k), 0.5f + static_cast<float>(i % 5),
                       1.0f + 2.0f * static_cast<float>(i / 5)};
      a.velocity_nm_ps = vec3{0.01f * static_cast<float>(k), -0.02f, 0.0f};
      s.atoms.push_back(a);
    }
  s.box_nm = rectangular_box(5.0f, 5.0f, 5.0f);
  return s;
}

mdp minimal_mdp(const std::string& define) {
  mdp m;
  m.add_comment("energy minimisation of the toy chains, written by files_gromacs_test");
  m.set("integrator", "steep");
  m.set("nsteps", "10");
  m.set("emtol", "10");
  // Spellings GROMACS treats as the same keys.
  m.set("Cutoff_Scheme", "Verlet");
  m.set("nstlist", "10");
  m.set("coulombtype", "reaction-field");
  m.set("rcoulomb", "1.1");
  m.set("epsilon-r", "15");
  m.set("vdw_modifier", "Potential-shift-verlet");
  m.set("rvdw", "1.1");
  m.set("pbc", "xyz");
  m.set("define", define);
  return m;
}

} // namespace

TEST(files_gromacs, grompp_accepts_written_topology_structure_and_mdp) {
  temp_dir dir;
  const auto top = chain_topology();
  const auto conf = chain_structure();
  ASSERT_EQ(atom_count(top), conf.atoms.size());
  EXPECT_NEAR(net_charge(top), 0.0, 1e-12);
  write_top(top, dir.path() / "topol.top");
  write_gro(conf, dir.path() / "conf.gro");
  index_file ndx;
  std::vector<std::int32_t> all(conf.atoms.size());
  for (std::size_t i = 0; i < all.size(); ++i)
    all[i] = static_cast<std::int32_t>(i + 1);
  ndx.add_group("Chains", all);
  write_ndx(ndx, dir.path() / "index.ndx");

  // Plain, with position restraints, and with flexible bonds instead of the constraint.
  const char* defines[] = {"", "-DPOSRES", "-DFLEXIBLE -DPOSRES"};
  for (const char* define : defines) {
    write_mdp(minimal_mdp(define), dir.path() / "em.mdp");
    const int rc = run_gmx(dir.path(),
                           "grompp -f em.mdp -c conf.gro -r conf.gro -p topol.top -n index.ndx "
                           "-o em.tpr -po mdout.mdp -maxwarn 0",
                           "grompp.log");
    EXPECT_EQ(rc, 0) << "define = '" << define << "'\n"
                     << format_top(top) << "\n--- grompp.log:\n"
                     << read_file(dir.path() / "grompp.log");
    EXPECT_TRUE(fs::exists(dir.path() / "em.tpr"));
    // grompp wrote our spelling of the keys back in its own.
    const auto mdout = read_mdp(dir.path() / "mdout.mdp");
    EXPECT_EQ(mdout.get("cutoff-scheme"), "Verlet");
    EXPECT_EQ(mdout.get("epsilon_r"), "15");
    EXPECT_EQ(mdout.get("define"), define);
    fs::remove(dir.path() / "em.tpr");
  }

  // Our reader gives back what was written.
  auto back = read_topology(dir.path() / "topol.top");
  ASSERT_EQ(back.molecule_types.size(), 1u);
  auto m = back.molecule_types[0];
  m.source.clear();
  EXPECT_EQ(m, top.molecule_types[0]);
  EXPECT_EQ(atom_count(back), 30u);
}

TEST(files_gromacs, grompp_rejects_a_wrong_atom_count) {
  // The same check with one molecule too many must fail: the test above can fail.
  temp_dir dir;
  auto top = chain_topology();
  top.molecules[0].count = 11;
  write_top(top, dir.path() / "topol.top");
  write_gro(chain_structure(), dir.path() / "conf.gro");
  write_mdp(minimal_mdp(""), dir.path() / "em.mdp");
  const int rc = run_gmx(dir.path(),
                         "grompp -f em.mdp -c conf.gro -p topol.top -o em.tpr -po mdout.mdp "
                         "-maxwarn 0",
                         "grompp.log");
  EXPECT_NE(rc, 0);
  EXPECT_NE(read_file(dir.path() / "grompp.log").find("does not match"), std::string::npos)
    << read_file(dir.path() / "grompp.log");
}

TEST(files_gromacs, editconf_reads_our_gro_and_we_read_its_output) {
  temp_dir dir;
  auto s = chain_structure();
  s.box_nm = box_matrix{vec3{5.0f, 0, 0}, vec3{1.0f, 4.5f, 0}, vec3{0.5f, -0.75f, 4.0f}};
  write_gro(s, dir.path() / "in.gro");
  ASSERT_EQ(run_gmx(dir.path(), "editconf -f in.gro -o out.gro", "editconf.log"), 0)
    << read_file(dir.path() / "editconf.log");
  const auto back = read_gro(dir.path() / "out.gro");
  ASSERT_EQ(back.atoms.size(), s.atoms.size());
  for (std::size_t i = 0; i < s.atoms.size(); ++i) {
    EXPECT_EQ(back.atoms[i].atom_name, s.atoms[i].atom_name);
    EXPECT_EQ(back.atoms[i].residue_number, s.atoms[i].residue_number);
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(back.atoms[i].position_nm[k], s.atoms[i].position_nm[k], 0.0011f);
      ASSERT_TRUE(back.atoms[i].velocity_nm_ps.has_value());
      EXPECT_NEAR((*back.atoms[i].velocity_nm_ps)[k], (*s.atoms[i].velocity_nm_ps)[k], 1e-4f);
    }
  }
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(back.box_nm[r][c], s.box_nm[r][c], 1e-4f) << r << "," << c;
}

TEST(files_gromacs, oplsaa_forcefield_parses_and_round_trips) {
  const auto path = share_dir / "oplsaa.ff/forcefield.itp";
  ASSERT_TRUE(fs::exists(path)) << path << " missing: is the `gromacs` package installed?";
  const auto t = read_topology(path);
  EXPECT_TRUE(t.defines.count("_FF_OPLSAA"));
  EXPECT_TRUE(t.molecule_types.empty());
  std::size_t atomtypes = 0;
  std::size_t heavy_h = 0;
  std::set<std::string> names;
  for (const auto& s : t.parameter_sections) {
    names.insert(s.name);
    if (s.name == "atomtypes")
      atomtypes += s.lines.size();
    for (const auto& line : s.lines)
      if (line.cond == condition{{"HEAVY_H", true}})
        ++heavy_h;
  }
  EXPECT_GT(atomtypes, 800u);
  EXPECT_GT(heavy_h, 10u);
  for (const auto* n :
       {"defaults", "atomtypes", "bondtypes", "constrainttypes", "angletypes", "dihedraltypes"})
    EXPECT_TRUE(names.count(n)) << n;
  // The file's own text comes back unchanged.
  EXPECT_EQ(format_top(t), read_file(path));
  // ffbonded.itp holds #ifdef HEAVY_H ... #else ... #endif and #define lines.
  const auto bonded = read_topology(share_dir / "oplsaa.ff/ffbonded.itp");
  EXPECT_EQ(parse_topology(format_top(bonded), share_dir / "oplsaa.ff/ffbonded.itp"), bonded);
}

TEST(files_gromacs, shipped_molecule_files_round_trip) {
  // Every molecule .itp of every force field GROMACS ships: parse, write, parse again.
  std::size_t files = 0;
  std::size_t molecules = 0;
  for (const auto& ff : fs::directory_iterator(share_dir)) {
    if (ff.path().extension() != ".ff")
      continue;
    EXPECT_NO_THROW(read_topology(ff.path() / "forcefield.itp")) << ff.path();
    for (const auto& entry : fs::directory_iterator(ff.path())) {
      const auto name = entry.path().filename().string();
      if (entry.path().extension() != ".itp" || name.rfind("ff", 0) == 0
          || name == "forcefield.itp")
        continue;
      try {
        const auto t = read_topology(entry.path());
        ++files;
        for (const auto& m : t.molecule_types) {
          ++molecules;
          EXPECT_EQ(parse_itp(format_itp(m), m.source), m) << entry.path() << " " << m.name;
        }
        EXPECT_EQ(parse_topology(format_top(t), entry.path()), t) << entry.path();
      } catch (const io_error& e) {
        ADD_FAILURE() << e.what();
      }
    }
  }
  std::printf("%zu molecule files, %zu molecule types round-tripped\n", files, molecules);
  EXPECT_GT(files, 50u);
  EXPECT_GT(molecules, 100u);
}

TEST(files_gromacs, pdb2gmx_style_topology_counts) {
  // A system topology in the layout pdb2gmx writes, on the shipped OPLS-AA files.
  temp_dir dir;
  std::ofstream(dir.path() / "system.top") << "#include \"oplsaa.ff/forcefield.itp\"\n"
                                              "#include \"oplsaa.ff/ethanol.itp\"\n"
                                              "#include \"oplsaa.ff/tip3p.itp\"\n"
                                              "#ifdef POSRES_WATER\n"
                                              "[ position_restraints ]\n"
                                              "1  1  1000  1000  1000\n"
                                              "#endif\n"
                                              "#include \"oplsaa.ff/ions.itp\"\n"
                                              "\n[ system ]\nEthanol in water\n\n"
                                              "[ molecules ]\nETH 2\nSOL 100\nNA 3\nCL 2\n";
  const auto t = read_topology(dir.path() / "system.top");
  const auto* eth = find_molecule_type(t, "ETH");
  ASSERT_NE(eth, nullptr);
  EXPECT_EQ(atom_count(t), 2 * eth->atoms.size() + 300u + 5u);
  EXPECT_NEAR(net_charge(t), 1.0, 1e-9);
  const auto* sol = find_molecule_type(t, "SOL");
  ASSERT_NE(sol, nullptr);
  EXPECT_EQ(sol->position_restraints.size(), 1u);
  EXPECT_NE(format_top(t).find("#ifdef POSRES_WATER\n[ position_restraints ]\n"),
            std::string::npos);
  EXPECT_EQ(parse_topology(format_top(t), dir.path() / "system.top"), t);
}
