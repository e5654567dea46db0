#pragma once

// `mummi sample`: try a sampler on a model: encode the state-A and state-B frames, select
// latent points, decode them, and say where the decoded structures lie between the states.

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mummi/ml/sampler.hpp"

namespace mummi::deploy {

/// Sampler parameters from `--param key=value` options; throws std::invalid_argument naming a
/// malformed one.
ml::sampler_params parse_sampler_params(const std::vector<std::string>& params);

struct sample_options {
  std::filesystem::path model;   ///< default: the demo model
  std::filesystem::path frames;  ///< frame stores with state labels; default: the demo frames
  std::string sampler = "ot";
  std::vector<std::string> params; ///< key=value
  std::size_t count = 100;
  std::uint64_t seed = 1;
  /// The collective variable of a decoded structure: the distance (nm) between the centres of
  /// two groups of the protein's index file (default: the demo protein's ANCHOR and DOM2).
  std::filesystem::path index;
  std::string from_group = "ANCHOR";
  std::string to_group = "DOM2";
  std::filesystem::path out;     ///< write the decoded structures here (.gro), when given
  std::filesystem::path protein; ///< template for atom names in written structures
};

CLI::App* add_sample_command(CLI::App& app, sample_options& options);

/// Runs the command with defaults from `data_dir` (which holds demo/); returns the exit code.
int run_sample(sample_options options, const std::filesystem::path& data_dir);

} // namespace mummi::deploy
