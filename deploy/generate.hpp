#pragma once

// `mummi generate`: run the structure generator on its own (sampler -> decoder -> vacuum
// validation) and write the validated structures; with a journal, a second run continues
// where the first stopped.

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mummi::deploy {

struct generate_options {
  std::filesystem::path model;                ///< default: the demo model
  std::vector<std::filesystem::path> frames;  ///< state-labelled frame stores; default: the demo's
  std::filesystem::path protein;              ///< the protein (.gro); default: the demo protein
  /// Empty: `ot` for a new journal (or none), the journal's own when resuming. Given when
  /// resuming: the resumed generator swaps to it (with `params`) before making structures.
  std::string sampler;
  std::vector<std::string> params;            ///< key=value
  std::uint64_t seed = 1;
  std::size_t count = 20;
  std::filesystem::path journal;              ///< campaign journal (created or resumed)
  std::filesystem::path out;                  ///< write the structures here (.gro)
  unsigned workers = 0;                       ///< validation workers; 0: one per core
  std::size_t batch = 16;
  std::string gmx = "gmx";
};

CLI::App* add_generate_command(CLI::App& app, generate_options& options);

/// Runs the command with defaults from `data_dir` (which holds demo/); returns the exit code.
int run_generate(generate_options options, const std::filesystem::path& data_dir);

} // namespace mummi::deploy
