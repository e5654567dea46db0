#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/topology.hpp"

#include "../support/md_files.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace fs = std::filesystem;
using namespace mummi::md;
using mummi::test::expect_io_error;
using mummi::test::temp_dir;

namespace {

void expect_topology_error(const std::string& text, const std::string& name, std::size_t line,
                           const std::string& words = {}) {
  expect_io_error(
    [&] {
      (void)parse_topology(text, name);
    },
    name, line, words);
}

const fs::path data_dir = fs::path(MD_TEST_DATA) / "files";

/// A small self-made force field and molecules, laid out like a GROMACS force-field folder.
const std::string toy_forcefield = "; toy force field\n"
                                   "#define _FF_TOY\n"
                                   "\n"
                                   "[ defaults ]\n"
                                   "; nbfunc comb-rule gen-pairs fudgeLJ fudgeQQ\n"
                                   "1  2  no  1.0  1.0\n"
                                   "\n"
                                   "[ atomtypes ]\n"
                                   "; name mass charge ptype sigma epsilon\n"
                                   "  B   72.0  0.000  A  0.47  3.5\n"
                                   "  Q   72.0  1.000  A  0.47  3.5 ; charged by its type\n"
                                   "#ifdef HEAVY\n"
                                   "  H  144.0  0.000  A  0.47  3.5\n"
                                   "#endif\n"
                                   "\n"
                                   "[ bondtypes ]\n"
                                   "  B  B  1  0.47  1250\n";

const std::string toy_water = "[ moleculetype ]\n"
                              "; molname nrexcl\n"
                              "SOL  2\n"
                              "\n"
                              "[ atoms ]\n"
                              "1  B  1  SOL  OW  1  -0.8\n"
                              "2  B  1  SOL  HW1 1   0.4\n"
                              "3  B  1  SOL  HW2 1   0.4\n"
                              "\n"
                              "#ifndef FLEXIBLE\n"
                              "[ settles ]\n"
                              "1  1  0.1  0.1633\n"
                              "\n"
                              "[ exclusions ]\n"
                              "1  2  3\n"
                              "2  1  3\n"
                              "3  1  2\n"
                              "#else\n"
                              "[ bonds ]\n"
                              "1  2  1  0.1  345000\n"
                              "1  3  1  0.1  345000\n"
                              "\n"
                              "[ angles ]\n"
                              "2  1  3  1  109.47  383\n"
                              "#endif\n";

const std::string toy_ions = "[ moleculetype ]\n"
                             "ION  1\n"
                             "[ atoms ]\n"
                             "1  Q  1  ION  ION  1\n";

/// A top file in the layout `gmx pdb2gmx` writes: its own molecule type with a conditional
/// position-restraint include inside it, water after it, restraints for the water.
const std::string toy_top = "; test system\n"
                            "#include \"toy.ff/forcefield.itp\"\n"
                            "\n"
                            ";@NOTE chain annotation\n"
                            "[ moleculetype ]\n"
                            "; name nrexcl\n"
                            "CHAIN  1\n"
                            "\n"
                            "[ atoms ]\n"
                            "1  B  1  CHN  B1  1  0.5  72.0\n"
                            "2  B  1  CHN  B2  2  0.0\n"
                            "3  B  1  CHN  B3  3 -0.5  ; tail\n"
                            "\n"
                            "[ bonds ]\n"
                            "1  2  1  0.47  1250\n"
                            "2  3  1  0.47  1250\n"
                            "\n"
                            "; Include Position restraint file\n"
                            "#ifdef POSRES\n"
                            "#include \"posre_chain.itp\"\n"
                            "#endif\n"
                            "\n"
                            "; Include water topology\n"
                            "#include \"toy.ff/water.itp\"\n"
                            "\n"
                            "#ifdef POSRES_WATER\n"
                            "[ position_restraints ]\n"
                            "1  1  1000  1000  1000\n"
                            "#endif\n"
                            "\n"
                            "#include \"toy.ff/ions.itp\"\n"
                            "\n"
                            "[ system ]\n"
                            "Toy system\n"
                            "\n"
                            "[ molecules ]\n"
                            "; name count\n"
                            "CHAIN  4\n"
                            "SOL    10\n"
                            "#ifdef WITH_IONS\n"
                            "ION    2\n"
                            "#endif\n";

const std::string toy_posre = "[ position_restraints ]\n"
                              "1  1  1000  1000  1000\n"
                              "3  1  1000  1000  1000\n";

void write_toy_files(const temp_dir& dir) {
  dir.write("toy.ff/forcefield.itp", toy_forcefield);
  dir.write("toy.ff/water.itp", toy_water);
  dir.write("toy.ff/ions.itp", toy_ions);
  dir.write("posre_chain.itp", toy_posre);
  dir.write("topol.top", toy_top);
}

} // namespace

TEST(topology, reads_molecule_types_from_file_and_includes) {
  temp_dir dir;
  write_toy_files(dir);
  const auto top = read_topology(dir.path() / "topol.top");
  ASSERT_EQ(top.molecule_types.size(), 3u);
  EXPECT_EQ(top.molecule_types[0].name, "CHAIN");
  EXPECT_EQ(top.molecule_types[1].name, "SOL");
  EXPECT_EQ(top.molecule_types[2].name, "ION");
  EXPECT_EQ(top.system_name, "Toy system");
  ASSERT_EQ(top.molecules.size(), 3u);
  EXPECT_EQ(top.molecules[2].name, "ION");
  EXPECT_EQ(top.molecules[2].cond, (condition{{"WITH_IONS", true}}));
  EXPECT_TRUE(top.defines.count("_FF_TOY"));

  const auto* chain = find_molecule_type(top, "CHAIN");
  ASSERT_NE(chain, nullptr);
  EXPECT_EQ(chain->annotations, std::vector<std::string>{";@NOTE chain annotation"});
  ASSERT_EQ(chain->atoms.size(), 3u);
  EXPECT_EQ(chain->atoms[0].mass_u, 72.0);
  EXPECT_FALSE(chain->atoms[1].mass_u.has_value());
  EXPECT_EQ(chain->atoms[2].charge_e, -0.5);
  EXPECT_EQ(chain->atoms[2].comment, "tail");
  EXPECT_EQ(chain->bonds.size(), 2u);
  // POSRES is not defined: the include is not read but kept in the molecule type.
  EXPECT_TRUE(chain->position_restraints.empty());
  ASSERT_EQ(chain->extra_lines.size(), 1u);
  EXPECT_EQ(chain->extra_lines[0].text, "#include \"posre_chain.itp\"");
  EXPECT_EQ(chain->extra_lines[0].cond, (condition{{"POSRES", true}}));

  const auto* sol = find_molecule_type(top, "SOL");
  ASSERT_NE(sol, nullptr);
  const condition rigid{{"FLEXIBLE", false}};
  const condition flexible{{"FLEXIBLE", true}};
  ASSERT_EQ(sol->other_interactions.at("settles").size(), 1u);
  EXPECT_EQ(sol->other_interactions.at("settles")[0].cond, rigid);
  EXPECT_EQ(sol->other_interactions.at("settles")[0].parameters,
            (std::vector<std::string>{"0.1", "0.1633"}));
  ASSERT_EQ(sol->exclusions.size(), 3u);
  EXPECT_EQ(sol->exclusions[2].atoms, (std::vector<std::int32_t>{3, 1, 2}));
  EXPECT_FALSE(sol->exclusions[2].function.has_value());
  ASSERT_EQ(sol->bonds.size(), 2u);
  EXPECT_EQ(sol->bonds[0].cond, flexible);
  EXPECT_EQ(sol->bonds[0].function, 1);
  ASSERT_EQ(sol->angles.size(), 1u);
  EXPECT_EQ(sol->angles[0].cond, flexible);
  // Restraints written in the top file after the water include belong to the water, under
  // POSRES_WATER.
  ASSERT_EQ(sol->position_restraints.size(), 1u);
  EXPECT_EQ(sol->position_restraints[0].cond, (condition{{"POSRES_WATER", true}}));

  EXPECT_EQ(atom_count(top), 4u * 3u + 10u * 3u);
  EXPECT_NEAR(net_charge(top), 0.0, 1e-9);
  ASSERT_EQ(top.parameter_sections.size(), 3u);
  EXPECT_EQ(top.parameter_sections[1].name, "atomtypes");
  EXPECT_EQ(top.parameter_sections[1].source, dir.path() / "toy.ff/forcefield.itp");
}

TEST(topology, defines_select_includes_and_counted_lines) {
  temp_dir dir;
  write_toy_files(dir);
  topology_options options;
  options.defines = {"POSRES", "-DWITH_IONS -DFLEXIBLE=1"};
  const auto top = read_topology(dir.path() / "topol.top", options);
  EXPECT_TRUE(top.defines.count("FLEXIBLE"));
  EXPECT_TRUE(top.defines.count("WITH_IONS"));
  const auto* chain = find_molecule_type(top, "CHAIN");
  ASSERT_NE(chain, nullptr);
  // The include was read and merged, its lines under the POSRES condition.
  ASSERT_EQ(chain->position_restraints.size(), 2u);
  EXPECT_EQ(chain->position_restraints[1].atoms, std::vector<std::int32_t>{3});
  EXPECT_EQ(chain->position_restraints[1].cond, (condition{{"POSRES", true}}));
  EXPECT_TRUE(chain->extra_lines.empty());
  // The ions count now: 2 ions of charge +1 taken from their atom type.
  EXPECT_EQ(atom_count(top), 4u * 3u + 10u * 3u + 2u);
  EXPECT_NEAR(net_charge(top), 2.0, 1e-9);
  // Written back, the restraints are inline under #ifdef POSRES and no include remains.
  const auto text = format_top(top);
  EXPECT_EQ(text.find("posre_chain.itp"), std::string::npos) << text;
  EXPECT_NE(text.find("#ifdef POSRES\n\n[ position_restraints ]\n"), std::string::npos) << text;
  const auto again = parse_topology(text, dir.path() / "topol.top", options);
  EXPECT_EQ(again, top);
}

TEST(topology, top_round_trip_reproduces_conditions_and_includes) {
  temp_dir dir;
  write_toy_files(dir);
  const auto top = read_topology(dir.path() / "topol.top");
  const auto text = format_top(top);
  // The includes and comments of the file stay as written, in order.
  const auto ff = text.find("#include \"toy.ff/forcefield.itp\"");
  const auto chain = text.find("[ moleculetype ]\n; name  nrexcl\nCHAIN  1\n");
  const auto posre = text.find("#ifdef POSRES\n#include \"posre_chain.itp\"\n#endif\n");
  const auto water = text.find("; Include water topology\n#include \"toy.ff/water.itp\"\n");
  const auto restraints
    = text.find("#ifdef POSRES_WATER\n[ position_restraints ]\n1  1  1000  1000  1000\n#endif\n");
  const auto molecules = text.find("[ molecules ]");
  const auto ions = text.find("#ifdef WITH_IONS\nION");
  ASSERT_NE(ff, std::string::npos) << text;
  ASSERT_NE(chain, std::string::npos) << text;
  ASSERT_NE(posre, std::string::npos) << text;
  ASSERT_NE(water, std::string::npos) << text;
  ASSERT_NE(restraints, std::string::npos) << text;
  ASSERT_NE(molecules, std::string::npos) << text;
  ASSERT_NE(ions, std::string::npos) << text;
  EXPECT_LT(ff, chain);
  EXPECT_LT(chain, posre);
  EXPECT_LT(posre, water);
  EXPECT_LT(water, restraints);
  EXPECT_LT(restraints, molecules);
  EXPECT_LT(molecules, ions);
  EXPECT_NE(text.find(";@NOTE chain annotation\n[ moleculetype ]"), std::string::npos);

  // Reading the written text gives the same model, and writing it again the same text.
  write_top(top, dir.path() / "written.top");
  auto again = read_topology(dir.path() / "written.top");
  for (auto& m : again.molecule_types)
    if (m.source == dir.path() / "written.top")
      m.source = dir.path() / "topol.top";
  again.path = top.path;
  EXPECT_EQ(again, top);
  EXPECT_EQ(format_top(again), text);
}

TEST(topology, itp_round_trip_reproduces_ifdef_blocks) {
  temp_dir dir;
  write_toy_files(dir);
  const auto top = read_topology(dir.path() / "toy.ff/water.itp");
  const auto* sol = find_molecule_type(top, "SOL");
  ASSERT_NE(sol, nullptr);
  const auto text = format_itp(*sol);
  EXPECT_NE(text.find("#ifdef FLEXIBLE\n\n[ bonds ]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("#else\n\n[ settles ]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[ exclusions ]"), std::string::npos) << text;
  EXPECT_NE(text.find("#endif\n"), std::string::npos) << text;
  auto back = parse_itp(text, dir.path() / "toy.ff/water.itp");
  EXPECT_EQ(back, *sol);
  write_itp(*sol, dir.path() / "sol.itp");
  auto from_file = read_itp(dir.path() / "sol.itp");
  from_file.source = sol->source;
  EXPECT_EQ(from_file, *sol);
}

TEST(topology, martini_style_lipids_keep_annotations_and_conditions) {
  const auto path = data_dir / "toy_lipids.itp";
  const auto top = read_topology(path);
  ASSERT_EQ(top.molecule_types.size(), 2u);
  const auto& popc = top.molecule_types[0];
  const auto& chol = top.molecule_types[1];
  EXPECT_EQ(popc.name, "POPC");
  ASSERT_EQ(popc.annotations.size(), 3u);
  EXPECT_EQ(popc.annotations[0],
            ";@INSANE alhead=C P, allink=G G, altail=CDCC CCCC, alname=POPC, charge=0.0");
  EXPECT_EQ(popc.annotations[1], ";@RESNTEST POP==POPC if: atoms[0]==NC3 and atoms[4]==GL2");
  EXPECT_EQ(popc.atoms.size(), 12u);
  EXPECT_EQ(popc.bonds.size(), 11u);
  EXPECT_EQ(popc.bonds[0].comment, "head");
  EXPECT_EQ(popc.angles.size(), 8u);
  ASSERT_EQ(popc.position_restraints.size(), 1u);
  EXPECT_EQ(popc.position_restraints[0].cond, (condition{{"POSRES", true}}));
  EXPECT_EQ(popc.position_restraints[0].parameters.back(), "POSRES_FC");
  ASSERT_EQ(popc.extra_lines.size(), 1u);
  EXPECT_EQ(popc.extra_lines[0].text, "#define POSRES_FC 1000.00");
  EXPECT_EQ(popc.extra_lines[0].cond, (condition{{"POSRES", true}, {"POSRES_FC", false}}));

  EXPECT_EQ(chol.name, "CHOL");
  ASSERT_EQ(chol.annotations.size(), 2u);
  EXPECT_EQ(chol.annotations[0], ";@INSANE alhead=C, altail=CC, alname=CHOL, charge=0.0");
  EXPECT_EQ(chol.annotations[1], ";@LATE annotation written after the sterol's content");
  ASSERT_EQ(chol.constraints.size(), 3u);
  EXPECT_EQ(chol.constraints[0].cond, (condition{{"FLEXIBLE", false}}));
  ASSERT_EQ(chol.bonds.size(), 5u);
  EXPECT_EQ(chol.bonds[0].cond, (condition{{"FLEXIBLE", true}}));
  EXPECT_TRUE(chol.bonds[4].cond.empty());
  ASSERT_EQ(chol.other_interactions.at("virtual_sites3").size(), 1u);
  EXPECT_EQ(chol.other_interactions.at("virtual_sites3")[0].atoms,
            (std::vector<std::int32_t>{6, 1, 2, 3}));
  EXPECT_EQ(chol.atoms[0].mass_u, 77.22);

  for (const auto* m : {&popc, &chol}) {
    const auto text = format_itp(*m);
    auto back = parse_itp(text, path);
    EXPECT_EQ(back, *m) << text;
  }
  const auto chol_text = format_itp(chol);
  EXPECT_NE(chol_text.find("[ bonds ]\n#ifdef FLEXIBLE\n"), std::string::npos) << chol_text;
  EXPECT_NE(chol_text.find("#ifndef FLEXIBLE\n\n[ constraints ]\n"), std::string::npos)
    << chol_text;
  // The macro is defined before the restraint that uses it.
  const auto popc_text = format_itp(popc);
  EXPECT_LT(popc_text.find("#define POSRES_FC"), popc_text.rfind("POSRES_FC\n"));

  // The whole file round-trips as a topology too.
  const auto again = parse_topology(format_top(top), path);
  EXPECT_EQ(again, top);
}

TEST(topology, topology_built_in_code) {
  topology t;
  add_parameter_section(t, "defaults", {"1  2  no  1.0  1.0"});
  add_parameter_section(t, "atomtypes", {"B  72.0  0.0  A  0.47  3.5"});
  add_include(t, "extra.itp", {{"EXTRA", true}});
  molecule_type m;
  m.name = "DIMER";
  m.atoms.push_back({1, "B", 1, "DIM", "A", 1, 0.25, std::nullopt, {}, {}, {}});
  m.atoms.push_back({2, "B", 1, "DIM", "B", 2, std::nullopt, std::nullopt, {}, {}, {}});
  m.bonds.push_back({{1, 2}, 1, {"0.47", "1250"}, {}, {}});
  t.molecule_types.push_back(m);
  t.system_name = "dimers";
  t.molecules.push_back({"DIMER", 7, {}});
  EXPECT_EQ(atom_count(t), 14u);
  EXPECT_DOUBLE_EQ(net_charge(t), 7 * 0.25);
  const auto text = format_top(t);
  EXPECT_NE(text.find("[ defaults ]\n1  2  no  1.0  1.0\n[ atomtypes ]\n"), std::string::npos)
    << text;
  EXPECT_NE(text.find("#ifdef EXTRA\n#include \"extra.itp\"\n#endif\n"), std::string::npos) << text;
  EXPECT_NE(text.find("DIMER            7\n"), std::string::npos) << text;

  t.molecules.push_back({"NOPE", 1, {}});
  expect_io_error(
    [&] {
      (void)atom_count(t);
    },
    "", 0, "'NOPE'");
  t.molecules.back().cond = {{"NEVER", true}};
  EXPECT_EQ(atom_count(t), 14u); // a line whose condition fails is not counted

  m.atoms[0].atom_name = "has space";
  EXPECT_THROW(format_itp(m), md_error);
}

TEST(topology, errors_name_file_and_line) {
  const std::string head = "[ moleculetype ]\nM 1\n[ atoms ]\n1 B 1 R A 1 0.0\n2 B 1 R B 1 0.0\n";
  expect_topology_error(head + "[ bondz ]\n", "a.itp", 6, "unknown section");
  expect_topology_error("[ moleculetype ]\nM\n", "b.itp", 2, "2 fields");
  expect_topology_error(head + "3 B 1 R\n", "c.itp", 6, "fields");
  expect_topology_error(head + "[ bonds ]\n1\n", "d.itp", 7, "fields");
  expect_topology_error(head + "[ bonds ]\n1 2 1 0.4 100\n1 3 1 0.4 100\n", "e.itp", 8,
                        "out of range");
  expect_topology_error(head + "[ exclusions ]\n1 0\n", "e2.itp", 7, "out of range");
  expect_topology_error(head + "3 B 1 R C 1 abc\n", "f.itp", 6, "charge");
  expect_topology_error(head + "[ bonds ]\nx 2 1\n", "g.itp", 7, "not an integer");
  expect_topology_error(head + "4 B 1 R C 1 0.0\n", "h.itp", 6, "out of sequence");
  expect_topology_error(head + "\n#ifdef POSRES\n[ bonds ]\n1 2 1\n", "i.itp", 7,
                        "unterminated #ifdef POSRES");
  expect_topology_error(head + "#else\n", "j.itp", 6, "#else without");
  expect_topology_error(head + "#ifdef A\n#endif\n#endif\n", "k.itp", 8, "#endif without");
  expect_topology_error(head + "#ifdef A\n#else\n#else\n#endif\n", "k2.itp", 8, "second #else");
  expect_topology_error(head + "#if A\n", "l.itp", 6, "unsupported preprocessor directive");
  expect_topology_error(head + "[ system ]\nS\n[ molecules ]\nX 3\nM 1\n", "m.top", 9,
                        "before any [ moleculetype ]");
  expect_topology_error(head + "[ molecules ]\nM 1 2\n", "m2.top", 7, "2 fields");
  expect_topology_error(head + "[ molecules ]\nM -1\n", "m3.top", 7, "count");
  expect_topology_error(head + head, "n.itp", 7, "already defined");
  expect_topology_error("[ bonds ]\n1 2 1\n", "o.itp", 1, "outside a molecule type");
  expect_topology_error("[ atoms\n", "q.itp", 1, "']'");
  expect_topology_error(head + "[ moleculetype ]\n; no name\n[ atoms ]\n", "s.itp", 6,
                        "without its line");
  expect_topology_error(head + "\n[ moleculetype ]\n", "t.itp", 7, "without its line");
  expect_topology_error("[ moleculetype ]\n#ifdef X\nM 1\n#endif\n", "u.itp", 3, "not supported");
  expect_io_error(
    [&] {
      parse_itp(head + head.substr(0, 17) + "N 1\n", "r.itp");
    },
    "r.itp", 0, "exactly one");
}

TEST(topology, include_errors_name_the_including_file) {
  temp_dir dir;
  const auto top = dir.write("sys.top", "; x\n\n#include \"missing.itp\"\n");
  expect_io_error(
    [&] {
      read_topology(top);
    },
    top.string(), 3, "missing.itp");

  // An error inside an included file names that file and its line.
  dir.write("sub/bad.itp", "[ moleculetype ]\nM 1\n[ atomz ]\n");
  const auto outer = dir.write("outer.top", "#include \"sub/bad.itp\"\n");
  expect_io_error(
    [&] {
      read_topology(outer);
    },
    (dir.path() / "sub/bad.itp").string(), 3, "unknown section");

  // A cycle a -> b -> a.
  dir.write("a.itp", "; a\n#include \"b.itp\"\n");
  const auto b = dir.write("b.itp", "; b\n\n#include \"a.itp\"\n");
  expect_io_error(
    [&] {
      read_topology(dir.path() / "a.itp");
    },
    b.string(), 3, "include cycle");

  // An include under a failing condition is not looked for.
  const auto guarded = dir.write("guarded.top", "#ifdef NEVER\n#include \"missing.itp\"\n#endif\n");
  EXPECT_NO_THROW(read_topology(guarded));
  topology_options never;
  never.defines = {"NEVER"};
  expect_io_error(
    [&] {
      read_topology(guarded, never);
    },
    guarded.string(), 2, "missing.itp");
}

TEST(topology, include_search_order) {
  temp_dir dir;
  dir.write("local/ff.itp", "[ moleculetype ]\nLOCAL 1\n");
  dir.write("extra/ff.itp", "[ moleculetype ]\nEXTRA 1\n");
  dir.write("extra/only_extra.itp", "[ moleculetype ]\nONLY 1\n");
  dir.write("share/shared.itp", "[ moleculetype ]\nSHARED 1\n");
  const auto top = dir.write("local/sys.top",
                             "#include \"ff.itp\"\n#include \"only_extra.itp\"\n"
                             "#include <shared.itp>\n");
  topology_options options;
  options.include_dirs = {dir.path() / "extra"};
  options.share_dir = dir.path() / "share";
  const auto t = read_topology(top, options);
  ASSERT_EQ(t.molecule_types.size(), 3u);
  EXPECT_EQ(t.molecule_types[0].name, "LOCAL"); // the including file's directory first
  EXPECT_EQ(t.molecule_types[1].name, "ONLY");
  EXPECT_EQ(t.molecule_types[2].name, "SHARED");
  EXPECT_EQ(t.molecule_types[2].source, dir.path() / "share/shared.itp");
}

TEST(topology, nested_conditions_and_file_defines) {
  const std::string text = "#define A\n"
                           "[ moleculetype ]\nM 1\n[ atoms ]\n"
                           "1 B 1 R A 1 0.0\n"
                           "#ifdef A\n"
                           "2 B 1 R B 1 0.0\n"
                           "#ifndef C\n"
                           "3 B 1 R C 1 0.0\n"
                           "#else\n"
                           "3 B 1 R D 1 0.0\n"
                           "#endif\n"
                           "#endif\n"
                           "[ bonds ]\n"
                           "#ifdef A\n#ifndef C\n1 3 1\n#endif\n#endif\n"
                           "[ system ]\nS\n[ molecules ]\nM 2\n";
  const auto t = parse_topology(text, "nested.top");
  const auto& m = t.molecule_types.at(0);
  ASSERT_EQ(m.atoms.size(), 4u);
  EXPECT_EQ(m.atoms[2].cond, (condition{{"A", true}, {"C", false}}));
  EXPECT_EQ(m.atoms[3].cond, (condition{{"A", true}, {"C", true}}));
  EXPECT_EQ(atom_count(t), 2u * 3u); // A defined in the file, C not
  topology_options with_c;
  with_c.defines = {"C"};
  EXPECT_EQ(atom_count(parse_topology(text, "nested.top", with_c)), 2u * 3u);
  EXPECT_EQ(parse_topology(format_top(t), "nested.top"), t);
  EXPECT_EQ(parse_itp(format_itp(m), "nested.top"), m);
}

TEST(topology, alternative_atom_blocks_each_number_from_one) {
  const std::string text = "**** a banner before any section, as some force fields have ****\n"
                           "[ moleculetype ]\nSOL 2\n[ atoms ]\n"
                           "#ifndef HEAVY_H\n"
                           "1 OW 1 SOL OW 1 -0.82 15.9994\n"
                           "2 H 1 SOL HW1 1 0.41 1.008\n"
                           "3 H 1 SOL HW2 1 0.41 1.008\n"
                           "#else\n"
                           "1 OW 1 SOL OW 1 -0.82 9.9514\n"
                           "2 H 1 SOL HW1 1 0.41 4.032\n"
                           "3 H 1 SOL HW2 1 0.41 4.032\n"
                           "#endif\n"
                           "[ settles ]\n1 1 0.1 0.1633\n"
                           "[ system ]\nW\n[ molecules ]\nSOL 5\n";
  const auto t = parse_topology(text, "spc.top");
  ASSERT_EQ(t.molecule_types.at(0).atoms.size(), 6u);
  EXPECT_EQ(atom_count(t), 15u);
  topology_options heavy;
  heavy.defines = {"HEAVY_H"};
  const auto h = parse_topology(text, "spc.top", heavy);
  EXPECT_EQ(atom_count(h), 15u);
  EXPECT_EQ(h.molecule_types.at(0).atoms[3].mass_u, 9.9514);
  EXPECT_EQ(t.preamble.at(0).text,
            "**** a banner before any section, as some force fields have ****");
  EXPECT_EQ(parse_topology(format_top(t), "spc.top"), t);
  // An index beyond the atoms that can exist together is still out of range.
  expect_io_error(
    [&] {
      parse_topology(text
                       + "[ moleculetype ]\nX 1\n[ atoms ]\n1 A 1 X A 1\n"
                         "#ifdef B\n2 A 1 X A 1\n#else\n2 A 1 X A 1\n#endif\n"
                         "[ bonds ]\n1 3 1\n",
                     "x.top");
    },
    "x.top", 30, "out of range");
}

TEST(topology, directives_inside_a_molecule_type_stay_with_it) {
  const std::string text = "[ moleculetype ]\n#define BOND_K 1250\nM 1\n[ atoms ]\n"
                           "1 B 1 R A 1 0.0\n2 B 1 R B 1 0.0\n[ bonds ]\n1 2 1 0.47 BOND_K\n"
                           "#ifdef NEVER\n#include \"absent.itp\"\n#endif\n";
  const auto m = parse_itp(text, "m.itp");
  ASSERT_EQ(m.extra_lines.size(), 2u);
  EXPECT_EQ(m.extra_lines[0].text, "#define BOND_K 1250");
  EXPECT_EQ(m.extra_lines[1].text, "#include \"absent.itp\"");
  EXPECT_EQ(m.extra_lines[1].cond, (condition{{"NEVER", true}}));
  const auto written = format_itp(m);
  EXPECT_LT(written.find("#define BOND_K"), written.find("BOND_K\n"));
  EXPECT_EQ(parse_itp(written, "m.itp"), m);
}
