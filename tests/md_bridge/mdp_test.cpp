#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/mdp.hpp"

#include "../support/md_files.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace fs = std::filesystem;
using namespace mummi::md;
using mummi::test::expect_io_error;

namespace {

void expect_mdp_error(const std::string& text, const std::string& name, std::size_t line,
                      const std::string& words = {}) {
  expect_io_error(
    [&] {
      (void)parse_mdp(text, name);
    },
    name, line, words);
}

const std::string production = "; Martini production run\n"
                               "\n"
                               "integrator               = md\n"
                               "dt                       = 0.02   ; ps\n"
                               "nsteps                   = -1\n"
                               "nstxout-compressed       = 25000\n"
                               "define                   =\n"
                               "tc-grps                  = Solvent Rest\n"
                               "; pressure\n"
                               "Pcoupltype               = semiisotropic\n";

} // namespace

TEST(mdp, keys_compare_as_gromacs_compares_them) {
  EXPECT_TRUE(mdp_keys_equal("nstxout-compressed", "nstxout_compressed"));
  EXPECT_TRUE(mdp_keys_equal("nstxout-compressed", "NSTXOUTCOMPRESSED"));
  EXPECT_TRUE(mdp_keys_equal("tc_grps", "tc-grps"));
  EXPECT_FALSE(mdp_keys_equal("nstxout", "nstxout-compressed"));
  EXPECT_FALSE(mdp_keys_equal("nstlist", "nstlis"));
}

TEST(mdp, get_set_erase) {
  const auto m = parse_mdp(production, "prod.mdp");
  EXPECT_EQ(m.get("integrator"), "md");
  EXPECT_EQ(m.get("nstxout_compressed"), "25000");
  EXPECT_EQ(m.get("pcoupltype"), "semiisotropic");
  EXPECT_EQ(m.get("tc_grps"), "Solvent Rest"); // values keep their case
  EXPECT_EQ(m.get("define"), "");
  EXPECT_EQ(m.get("dt"), "0.02");
  EXPECT_FALSE(m.get("tcoupl").has_value());

  auto n = m;
  n.set("NSTEPS", "5000");
  EXPECT_EQ(n.get("nsteps"), "5000");
  EXPECT_EQ(n.entries().size(), m.entries().size()); // replaced in place
  EXPECT_EQ(n.entries()[4].key, "NSTEPS");
  n.set("tcoupl", "v-rescale");
  EXPECT_EQ(n.entries().back().key, "tcoupl");
  EXPECT_EQ(n.get("tcoupl"), "v-rescale");
  EXPECT_TRUE(n.erase("nstxout_compressed"));
  EXPECT_FALSE(n.erase("nstxout_compressed"));
  EXPECT_FALSE(n.get("nstxout-compressed").has_value());
  EXPECT_THROW(n.set("", "1"), md_error);
  EXPECT_THROW(n.set("a=b", "1"), md_error);
  EXPECT_THROW(n.set("nsteps", "1 ; comment"), md_error);
}

TEST(mdp, round_trip_keeps_order_and_comments) {
  const auto m = parse_mdp(production, "prod.mdp");
  const auto text = format_mdp(m);
  EXPECT_NE(text.find("; Martini production run\n\nintegrator"), std::string::npos) << text;
  EXPECT_NE(text.find("dt"), std::string::npos);
  EXPECT_NE(text.find("= 0.02 ; ps\n"), std::string::npos) << text;
  EXPECT_NE(text.find("; pressure\nPcoupltype"), std::string::npos) << text;
  EXPECT_EQ(parse_mdp(text, "again.mdp"), m);
  EXPECT_EQ(format_mdp(parse_mdp(text, "again.mdp")), text);

  const mummi::test::temp_dir dir;
  const auto path = dir.path() / "run.mdp";
  mdp built;
  built.add_comment("written by the test");
  built.set("integrator", "steep");
  built.add_comment("");
  built.set("emtol", "100");
  write_mdp(built, path);
  EXPECT_EQ(read_mdp(path), built);
}

TEST(mdp, errors_name_file_and_line) {
  expect_mdp_error("integrator = md\n; fine\nnsteps 100\n", "a.mdp", 3, "no '='");
  expect_mdp_error("integrator = md\n\n = 5\n", "b.mdp", 3, "empty key");
  expect_mdp_error("nstxout-compressed = 10\ndt = 1\nnstxout_compressed = 5\n", "c.mdp", 3,
                   "line 1");
  expect_mdp_error("ref t = 300\n", "d.mdp", 1);
  expect_io_error(
    [] {
      read_mdp("/nonexistent/x.mdp");
    },
    "/nonexistent/x.mdp", 0);
}
