#include "mummi/md_bridge/errors.hpp"
#include "mummi/md_bridge/ndx.hpp"

#include "../support/md_files.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using namespace mummi::md;
using mummi::test::expect_io_error;

namespace {

void expect_ndx_error(const std::string& text, const std::string& name, std::size_t line,
                      const std::string& words = {}) {
  expect_io_error(
    [&] {
      (void)parse_ndx(text, name);
    },
    name, line, words);
}

} // namespace

TEST(ndx, writes_fifteen_numbers_per_line_and_reads_back) {
  index_file f;
  std::vector<std::int32_t> solvent(40);
  std::iota(solvent.begin(), solvent.end(), 1001);
  f.add_group("Solvent", solvent);
  f.add_group("Rest", {1, 2, 3});
  f.add_group("Empty", {});
  const auto text = format_ndx(f);
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "[ Solvent ]");
  for (const auto expected : {15, 15, 10}) {
    std::getline(in, line);
    std::istringstream numbers(line);
    int count = 0;
    int v = 0;
    while (numbers >> v)
      ++count;
    EXPECT_EQ(count, expected) << line;
  }
  std::getline(in, line);
  EXPECT_EQ(line, "[ Rest ]");
  std::getline(in, line);
  EXPECT_EQ(line, "   1    2    3");
  EXPECT_EQ(parse_ndx(text, "x.ndx"), f);
  ASSERT_NE(f.find("Rest"), nullptr);
  EXPECT_EQ(f.find("Rest")->atoms.size(), 3u);
  EXPECT_EQ(f.find("rest"), nullptr);
  EXPECT_THROW(f.add_group("Rest", {4}), md_error);
  EXPECT_THROW(f.add_group("Bad", {0}), md_error);
  EXPECT_THROW(f.add_group("a]b", {1}), md_error);

  const mummi::test::temp_dir dir;
  write_ndx(f, dir.path() / "index.ndx");
  EXPECT_EQ(read_ndx(dir.path() / "index.ndx"), f);
}

TEST(ndx, reads_gromacs_layout) {
  const auto f
    = parse_ndx("[ System ]\n   1    2    3\n\n[ Protein ]\n4 5\n6\n[ System ]\n9\n", "g.ndx");
  ASSERT_EQ(f.groups.size(), 3u);
  EXPECT_EQ(f.groups[1].name, "Protein");
  EXPECT_EQ(f.groups[1].atoms, (std::vector<std::int32_t>{4, 5, 6}));
  EXPECT_EQ(f.find("System")->atoms.size(), 3u); // the first of that name
}

TEST(ndx, errors_name_file_and_line) {
  expect_ndx_error("[ A ]\n1 2\n3 x4\n", "a.ndx", 3, "x4");
  expect_ndx_error("\n1 2\n[ A ]\n", "b.ndx", 2, "before any");
  expect_ndx_error("[ A ]\n1 0\n", "c.ndx", 2, "below 1");
  expect_ndx_error("[ A ]\n1\n[ B\n", "d.ndx", 3, "']'");
  expect_ndx_error("[  ]\n", "e.ndx", 1, "empty group name");
  expect_io_error(
    [] {
      read_ndx("/nonexistent/i.ndx");
    },
    "/nonexistent/i.ndx", 0);
}
