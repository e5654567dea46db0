#pragma once

// `mummi train`: train a round of the autoencoder on frame stores, or fine-tune one into the
// next round.

#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mummi/ml/autoencoder.hpp"

namespace mummi::deploy {

struct train_options {
  std::vector<std::filesystem::path> frames;  ///< frame stores (.h5)
  std::filesystem::path out;                  ///< model file to write (refused if it exists)
  std::filesystem::path from;                 ///< fine-tune this round (empty: a new model)
  ml::architecture arch;                      ///< beads come from the frames
  bool align = true;
  ml::training_options training;
  std::string device = "auto";
};

/// Registers the subcommand's options into `options` (which must outlive parsing).
CLI::App* add_train_command(CLI::App& app, train_options& options);

/// Trains as `options` says, shows progress on stderr (a bar on a terminal, log lines
/// otherwise) and prints a summary; returns the exit code.
int run_train(const train_options& options);

/// Trains (or fine-tunes) and writes the model; the library call behind `mummi train` and
/// `mummi demo-data`. `progress` receives each epoch.
ml::training_report train_model(const coupling::frame_block& frames, const train_options& options,
                                const ml::progress_callback& progress);

/// A progress callback writing to stderr: a bar when stderr is a terminal, else one line per
/// improved or tenth epoch.
ml::progress_callback stderr_progress();

} // namespace mummi::deploy
