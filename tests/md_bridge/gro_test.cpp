#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/gro.hpp"

#include "../support/md_files.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using namespace mummi::md;
using mummi::test::expect_io_error;
using mummi::test::temp_dir;

namespace {

void expect_gro_error(const std::string& text, const std::string& name, std::size_t line,
                      const std::string& words = {}) {
  expect_io_error(
    [&] {
      (void)parse_gro(text, name);
    },
    name, line, words);
}

structure sample_structure(std::size_t n, bool velocities, bool triclinic) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> pos(-5.0f, 95.0f);
  std::uniform_real_distribution<float> vel(-2.0f, 2.0f);
  structure s;
  s.title = "sample t= 1.000";
  for (std::size_t i = 0; i < n; ++i) {
    atom a;
    a.residue_number = static_cast<std::int32_t>(i / 3 + 1);
    a.residue_name = i % 2 == 0 ? "POPC" : "W";
    a.atom_name = i % 3 == 0 ? "NC3" : "C1A";
    a.position_nm = {pos(rng), pos(rng), pos(rng)};
    if (velocities)
      a.velocity_nm_ps = vec3{vel(rng), vel(rng), vel(rng)};
    s.atoms.push_back(a);
  }
  s.box_nm = triclinic ? box_matrix{vec3{5.0f, 0, 0}, vec3{1.5f, 4.8f, 0}, vec3{-1.25f, 2.0f, 6.5f}}
                       : rectangular_box(20.0f, 20.5f, 15.25f);
  return s;
}

void expect_near(const structure& a, const structure& b, float position_tolerance,
                 float velocity_tolerance) {
  ASSERT_EQ(a.atoms.size(), b.atoms.size());
  EXPECT_EQ(a.title, b.title);
  for (std::size_t i = 0; i < a.atoms.size(); ++i) {
    const auto& x = a.atoms[i];
    const auto& y = b.atoms[i];
    ASSERT_EQ(x.residue_number % 100000, y.residue_number) << "atom " << i + 1;
    ASSERT_EQ(x.residue_name, y.residue_name) << "atom " << i + 1;
    ASSERT_EQ(x.atom_name, y.atom_name) << "atom " << i + 1;
    for (int k = 0; k < 3; ++k)
      ASSERT_NEAR(x.position_nm[k], y.position_nm[k], position_tolerance) << "atom " << i + 1;
    ASSERT_EQ(x.velocity_nm_ps.has_value(), y.velocity_nm_ps.has_value());
    if (x.velocity_nm_ps) {
      for (int k = 0; k < 3; ++k)
        ASSERT_NEAR((*x.velocity_nm_ps)[k], (*y.velocity_nm_ps)[k], velocity_tolerance);
    }
  }
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(a.box_nm[r][c], b.box_nm[r][c], 5e-6f);
}

} // namespace

TEST(gro, writes_gromacs_columns) {
  structure s;
  s.title = "two beads";
  atom a;
  a.residue_number = 7;
  a.residue_name = "POPC";
  a.atom_name = "NC3";
  a.position_nm = {1.0f, -2.5f, 12.3456f};
  a.velocity_nm_ps = vec3{0.1f, -0.25f, 1.5f};
  s.atoms.push_back(a);
  a.atom_name = "PO4";
  a.position_nm = {0.0f, 0.001f, 999.0f};
  a.velocity_nm_ps = vec3{0, 0, 0};
  s.atoms.push_back(a);
  s.box_nm = rectangular_box(10.0f, 11.0f, 12.5f);
  const auto text = format_gro(s);
  EXPECT_EQ(text,
            "two beads\n"
            "    2\n"
            "    7POPC   NC3    1   1.000  -2.500  12.346  0.1000 -0.2500  1.5000\n"
            "    7POPC   PO4    2   0.000   0.001 999.000  0.0000  0.0000  0.0000\n"
            "  10.00000  11.00000  12.50000\n");
}

TEST(gro, round_trip_with_velocities_and_triclinic_box) {
  const auto s = sample_structure(1000, true, true);
  const auto text = format_gro(s);
  const auto back = parse_gro(text, "round.gro");
  expect_near(s, back, 0.0005f, 0.00005f);
  EXPECT_EQ(format_gro(back), text);
  // 9 box values on the last line.
  const auto last = text.substr(text.rfind('\n', text.size() - 2) + 1);
  std::istringstream in(last);
  int values = 0;
  double v = 0;
  while (in >> v)
    ++values;
  EXPECT_EQ(values, 9);
}

TEST(gro, round_trip_through_a_file) {
  temp_dir dir;
  const auto s = sample_structure(50, false, false);
  const auto path = dir.path() / "conf.gro";
  write_gro(s, path);
  const auto back = read_gro(path);
  expect_near(s, back, 0.0005f, 0.0f);
  EXPECT_FALSE(back.atoms.front().velocity_nm_ps.has_value());
  // Only the file itself is left: the temporary it was written through is gone.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 1);
}

TEST(gro, deduces_precision_from_decimal_points) {
  // %10.5f positions and %10.6f velocities, as `gmx editconf -ndec 5` writes them.
  const std::string text
    = "high precision\n"
      "    2\n"
      "    1SOL     OW    1   1.23456  -0.00001  10.50000  0.123456 -1.000000  0.000001\n"
      "    1SOL    HW1    2   1.33456   0.10001   9.50000  0.223456  1.000000 -0.000001\n"
      "   3.00000   3.00000   3.00000\n";
  const auto s = parse_gro(text, "precise.gro");
  ASSERT_EQ(s.atoms.size(), 2u);
  EXPECT_FLOAT_EQ(s.atoms[0].position_nm[0], 1.23456f);
  EXPECT_FLOAT_EQ(s.atoms[0].position_nm[1], -0.00001f);
  EXPECT_FLOAT_EQ(s.atoms[1].position_nm[2], 9.5f);
  ASSERT_TRUE(s.atoms[0].velocity_nm_ps.has_value());
  EXPECT_FLOAT_EQ((*s.atoms[0].velocity_nm_ps)[0], 0.123456f);
  EXPECT_FLOAT_EQ((*s.atoms[1].velocity_nm_ps)[2], -0.000001f);
  EXPECT_EQ(s.atoms[1].atom_name, "HW1");
  EXPECT_EQ(s.atoms[1].residue_name, "SOL");
  EXPECT_FLOAT_EQ(s.box_nm[2][2], 3.0f);
}

TEST(gro, wraps_numbers_modulo_100000) {
  structure s;
  s.title = "wrap";
  s.atoms.resize(100001);
  for (std::size_t i = 0; i < s.atoms.size(); ++i) {
    s.atoms[i].residue_number = static_cast<std::int32_t>(i + 1);
    s.atoms[i].residue_name = "W";
    s.atoms[i].atom_name = "W";
  }
  s.box_nm = rectangular_box(1, 1, 1);
  const auto text = format_gro(s);
  std::istringstream in(text);
  std::string line;
  for (int i = 0; i < 2 + 99999; ++i)
    std::getline(in, line);
  EXPECT_EQ(line.substr(0, 20), "99999W        W99999");
  std::getline(in, line); // atom 100000
  EXPECT_EQ(line.substr(0, 20), "    0W        W    0");
  std::getline(in, line); // atom 100001
  EXPECT_EQ(line.substr(0, 20), "    1W        W    1");
  const auto back = parse_gro(text, "wrap.gro");
  EXPECT_EQ(back.atoms[100000].residue_number, 1);
  EXPECT_EQ(back.atoms.size(), 100001u);
}

TEST(gro, rejects_what_does_not_fit) {
  auto s = sample_structure(3, false, false);
  s.atoms[1].atom_name = "TOOLONG";
  EXPECT_THROW(format_gro(s), md_error);
  temp_dir dir;
  expect_io_error(
    [&] {
      write_gro(s, dir.path() / "x.gro");
    },
    (dir.path() / "x.gro").string(), 0);
  s = sample_structure(3, false, false);
  s.atoms[2].residue_name = "POPCXX";
  EXPECT_THROW(format_gro(s), md_error);
  s = sample_structure(3, false, false);
  s.atoms[0].position_nm[0] = 12345.0f;
  EXPECT_THROW(format_gro(s), md_error);
  s = sample_structure(3, false, false);
  s.atoms[0].position_nm[2] = std::nanf("");
  EXPECT_THROW(format_gro(s), md_error);
  s = sample_structure(3, true, false);
  s.atoms[2].velocity_nm_ps.reset();
  EXPECT_THROW(format_gro(s), md_error);
  s = sample_structure(3, false, false);
  s.title = "two\nlines";
  EXPECT_THROW(format_gro(s), md_error);
}

TEST(gro, errors_name_file_and_line) {
  const std::string good_atom = "    1W        W    1   1.000   2.000   3.000\n";
  const std::string box = "   3.00000   3.00000   3.00000\n";
  // Declared count larger than the atoms present: the box line is read as an atom.
  expect_gro_error("t\n3\n" + good_atom + good_atom + box, "count.gro", 5, "wrong atom count");
  // Declared count larger than the lines present.
  expect_gro_error("t\n5\n" + good_atom + good_atom + box, "eof.gro", 5, "wrong atom count");
  expect_gro_error("t\n5\n" + good_atom + good_atom, "eof2.gro", 4, "wrong atom count");
  expect_gro_error("t\n5\n", "empty.gro", 3, "wrong atom count");
  // Declared count smaller: the third atom line is read as the box.
  expect_gro_error("t\n2\n" + good_atom + good_atom + good_atom + box, "few.gro", 5, "too small");
  // A short line.
  expect_gro_error("t\n2\n" + good_atom + "    1W        W    2   1.000   2.000\n" + box,
                   "short.gro", 4, "short line");
  // A non-numeric coordinate.
  expect_gro_error("t\n2\n" + good_atom + "    1W        W    2   1.000   abcde   3.000\n" + box,
                   "nan.gro", 4, "position y");
  // A non-numeric residue number.
  expect_gro_error("t\n1\n    xW        W    1   1.000   2.000   3.000\n" + box, "res.gro", 3,
                   "residue number");
  // Missing box.
  expect_gro_error("t\n2\n" + good_atom + good_atom, "nobox.gro", 5, "missing box");
  // A box with 4 values.
  expect_gro_error("t\n1\n" + good_atom + "1 2 3 4\n", "box4.gro", 4, "3 or 9");
  // Atom count that is not a number.
  expect_gro_error("t\nabc\n", "n.gro", 2, "atom count");
  // Uneven decimal points.
  expect_gro_error("t\n1\n    1W        W    1   1.000  2.000   3.000\n" + box, "uneven.gro", 3,
                   "evenly spaced");
  // A half-written velocity triplet.
  expect_gro_error("t\n1\n    1W        W    1   1.000   2.000   3.000  0.1000\n" + box, "vel.gro",
                   3, "velocity y");
  // Reading a file that does not exist names it.
  expect_io_error(
    [] {
      (void)read_gro("/nonexistent/dir/none.gro");
    },
    "/nonexistent/dir/none.gro", 0, "cannot open");
}

TEST(gro, fast_enough_for_fifty_thousand_atoms) {
  const auto s = sample_structure(50000, true, false);
  const auto t0 = std::chrono::steady_clock::now();
  const auto text = format_gro(s);
  const auto t1 = std::chrono::steady_clock::now();
  const auto back = parse_gro(text, "big.gro");
  const auto t2 = std::chrono::steady_clock::now();
  const auto ms = [](auto d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  std::printf("50,000 atoms with velocities: format %.1f ms, parse %.1f ms\n", ms(t1 - t0),
              ms(t2 - t1));
  ASSERT_EQ(back.atoms.size(), 50000u);
  // Generous bounds (a shared 2-core machine): a per-field iostream or quadratic code fails.
  EXPECT_LT(ms(t1 - t0), 1000.0);
  EXPECT_LT(ms(t2 - t1), 1000.0);
}
