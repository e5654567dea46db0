#include "config.hpp"

#include <gtest/gtest.h>

using mummi::deploy::config_error;
using mummi::deploy::parse_campaign_config;

namespace {

std::vector<std::string> problems_of(const std::string& yaml) {
  try {
    parse_campaign_config(yaml, "c.yaml");
  } catch (const config_error& e) {
    return e.problems();
  }
  return {};
}

} // namespace

TEST(config, empty_file_means_every_default) {
  auto c = parse_campaign_config("", "c.yaml");
  EXPECT_EQ(c.name, "demo");
  EXPECT_EQ(c.local_nodes, 2u);
  EXPECT_EQ(c.missed_heartbeats, 3u);
}

TEST(config, values_are_read) {
  auto c = parse_campaign_config("campaign: {name: ras, dir: /tmp/ras}\n"
                                 "head: {bind: 'tcp://0.0.0.0:5555', heartbeat_ms: 250,"
                                 " missed_heartbeats: 4, grace_s: 90}\n"
                                 "nodes: {local: 3}\n",
                                 "c.yaml");
  EXPECT_EQ(c.name, "ras");
  EXPECT_EQ(c.dir, "/tmp/ras");
  EXPECT_EQ(c.head_bind, "tcp://0.0.0.0:5555");
  EXPECT_EQ(c.heartbeat_period.count(), 250);
  EXPECT_EQ(c.missed_heartbeats, 4u);
  EXPECT_EQ(c.head_grace.count(), 90000);
  EXPECT_EQ(c.local_nodes, 3u);
}

TEST(config, every_problem_is_reported_at_once_with_file_line_and_key) {
  auto p = problems_of("campaign:\n"
                       "  name: x\n"
                       "  colour: blue\n"
                       "head:\n"
                       "  heartbeat_ms: two\n"
                       "  bind: udp://x\n"
                       "nodes:\n"
                       "  local: 0\n"
                       "extra: 1\n");
  ASSERT_EQ(p.size(), 5u) << ::testing::PrintToString(p);
  EXPECT_EQ(p[0], "c.yaml:3:3: campaign.colour: unknown key (known here: dir, name)");
  EXPECT_NE(p[1].find("c.yaml:5:17: head.heartbeat_ms: must be a non-negative integer, got 'two'"),
            std::string::npos)
    << p[1];
  EXPECT_NE(p[2].find("head.bind: must be a tcp:// or ipc:// endpoint"), std::string::npos) << p[2];
  EXPECT_NE(p[3].find("nodes.local: must be at least 1, got '0'"), std::string::npos) << p[3];
  EXPECT_NE(p[4].find("extra: unknown key"), std::string::npos) << p[4];
}

TEST(config, root_problems_stop_early_but_still_name_the_key) {
  auto p = problems_of("campaing: {name: x}\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("c.yaml:1:1: campaing: unknown key"), std::string::npos) << p[0];
}

TEST(config, a_section_must_be_a_mapping) {
  auto p = problems_of("head: 5\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("head: must be a mapping"), std::string::npos) << p[0];
}

TEST(config, broken_yaml_names_the_place) {
  auto p = problems_of("campaign: {name: x\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("c.yaml:"), std::string::npos);
  EXPECT_NE(p[0].find("not valid YAML"), std::string::npos) << p[0];
}

TEST(config, negative_numbers_are_refused) {
  auto p = problems_of("nodes: {local: -2}\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("nodes.local"), std::string::npos) << p[0];
}

TEST(config, missing_file_is_a_config_error) {
  EXPECT_THROW(mummi::deploy::load_campaign_config("/nonexistent/campaign.yaml"), config_error);
}
