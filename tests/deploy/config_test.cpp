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

TEST(config, the_system_section_is_read_into_the_md_spec) {
  const std::string demo = MUMMI_DATA_DIR "/demo";
  auto c = parse_campaign_config("system:\n"
                                 "  files: [forcefield.itp, solvent.itp, lipids.itp, protein.itp]\n"
                                 "  protein: {molecule: DPR, structure: protein.gro,"
                                 " anchor_atom: 2, anchor_depth_nm: 0.5}\n"
                                 "  membrane:\n"
                                 "    box_nm: [10, 11, 14]\n"
                                 "    upper: {DPC: 0.75, DST: 0.25}\n"
                                 "    lower: {DPS: 0.5, DPC: 0.5}\n"
                                 "    asymmetry: -4\n"
                                 "    salt_molar: 0.1\n"
                                 "gromacs: {gmx: /opt/gmx/bin/gmx, threads: 4}\n"
                                 "createsims: {max_builds: 3, stage_timeout_s: 120}\n",
                                 "c.yaml", demo);
  ASSERT_TRUE(c.system.has_value());
  const auto& s = *c.system;
  ASSERT_EQ(s.includes.size(), 4u);
  EXPECT_EQ(s.includes[0], std::filesystem::path(demo) / "forcefield.itp");
  EXPECT_EQ(s.protein_molecule, "DPR");
  EXPECT_EQ(s.anchor_atom, 1u);
  EXPECT_DOUBLE_EQ(s.anchor_depth_nm, 0.5);
  EXPECT_EQ(c.protein_structure, std::filesystem::path(demo) / "protein.gro");
  EXPECT_DOUBLE_EQ(s.recipe.box_y_nm, 11);
  ASSERT_EQ(s.recipe.lower.lipids.size(), 2u);
  EXPECT_EQ(s.recipe.lower.lipids[0].lipid, "DPS"); // the file's order is kept
  EXPECT_DOUBLE_EQ(s.recipe.upper.lipids[1].amount, 0.25);
  EXPECT_EQ(s.recipe.asymmetry, -4);
  EXPECT_EQ(c.gmx, "/opt/gmx/bin/gmx");
  EXPECT_EQ(c.gmx_threads, 4u);
  EXPECT_EQ(c.max_builds, 3u);
  EXPECT_EQ(c.stage_timeout.count(), 120);
}

TEST(config, system_problems_are_all_reported) {
  auto p = problems_of("system:\n"
                       "  files: [no_such_forcefield.itp]\n"
                       "  protein: {molecule: DPR}\n"
                       "  membrane:\n"
                       "    box_nm: [10, 10]\n"
                       "    upper: {DPC: lots}\n"
                       "    thickness: 4\n");
  ASSERT_EQ(p.size(), 6u) << ::testing::PrintToString(p);
  auto has = [&p](const std::string& part) {
    for (const auto& s : p)
      if (s.find(part) != std::string::npos)
        return true;
    return false;
  };
  EXPECT_TRUE(has("c.yaml:2:11: system.files[0]: no such file: no_such_forcefield.itp"));
  EXPECT_TRUE(has("system.protein: needs molecule and structure"));
  EXPECT_TRUE(has("system.membrane.box_nm: must be [x, y, z] in nm"));
  EXPECT_TRUE(has("system.membrane.upper.DPC: must be a number"));
  EXPECT_TRUE(has("system.membrane.thickness: unknown key"));
  EXPECT_TRUE(has("system.membrane: needs the lipids of both leaflets"));
}

TEST(config, the_campaign_sections_are_read_and_their_problems_all_reported) {
  const auto c = mummi::deploy::parse_campaign_config(
    "sampler: {name: ot, seed: 7, params: {lambda_min: 0.1, weight: 0.3}}\n"
    "structure_generator: {buffer: 3, factor_extra: 1.5, batch: 5, workers: 2}\n"
    "jobs:\n  createsims: {cores: 6, gpus: 1}\n"
    "  simulation: {cores: 6, gpus: 1, length_ns: 600, frame_ps: 500, checkpoint_minutes: 15}\n"
    "  max_attempts: 5\n  backoff_ms: 250\n"
    "stop: {simulations: 10, wall_time_s: 3600}\n",
    "c.yaml");
  EXPECT_EQ(c.sampler, "ot");
  EXPECT_EQ(c.seed, 7U);
  ASSERT_EQ(c.sampler_params.size(), 2U);
  EXPECT_EQ(c.sampler_params[0], (std::pair<std::string, std::string>{"lambda_min", "0.1"}));
  EXPECT_EQ(c.buffer, 3U);
  EXPECT_EQ(c.factor_extra, 1.5);
  EXPECT_EQ(c.batch, 5U);
  EXPECT_EQ(c.validation_workers, 2U);
  EXPECT_EQ(c.createsims_cores, 6U);
  EXPECT_EQ(c.simulation_gpus, 1U);
  EXPECT_EQ(c.length_ns, 600);
  EXPECT_EQ(c.frame_ps, 500);
  EXPECT_EQ(c.checkpoint_minutes, 15);
  EXPECT_EQ(c.max_attempts, 5U);
  EXPECT_EQ(c.backoff, std::chrono::milliseconds{250});
  EXPECT_EQ(c.stop_simulations, 10U);
  EXPECT_EQ(c.wall_time, std::chrono::seconds{3600});

  const auto p = problems_of("ml: {model: no-such.ae, frames: []}\n"
                             "sampler: {name: '', params: [1, 2]}\n"
                             "structure_generator: {buffer: 0, factor_extra: 0.5, colour: red}\n"
                             "jobs:\n  createsims: {cores: 0}\n"
                             "  simulation: {length_ns: -1, frame_ps: 0}\n"
                             "  max_attempts: 0\n"
                             "stop: {simulations: x}\n");
  std::string all;
  for (const auto& x : p)
    all += x + "\n";
  for (const char* part :
       {"ml.model: no such file", "ml.frames: must be a list", "sampler.name", "sampler.params",
        "structure_generator.buffer", "structure_generator.factor_extra: must be in [1, 1000]",
        "structure_generator.colour: unknown key", "jobs.createsims.cores",
        "jobs.simulation.length_ns: must be positive", "jobs.simulation.frame_ps",
        "jobs.max_attempts", "stop.simulations"})
    EXPECT_NE(all.find(part), std::string::npos) << part << "\n" << all;
  EXPECT_EQ(p.size(), 12U) << all;
}
