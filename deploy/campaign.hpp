#pragma once

// `mummi run`: a whole campaign on the embedded default: the head (gateway, node registry,
// structure generator, workflow manager, journal) and the configured node agents as local
// processes, until the configured stopping point; `--resume DIR` continues a campaign from
// its journal.

#include <filesystem>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace mummi::deploy {

struct run_options {
  std::filesystem::path config;  ///< a new campaign from this file, or
  std::filesystem::path resume;  ///< the directory of a campaign to continue
  std::filesystem::path data_dir; ///< holds demo/
  std::string self_exe;           ///< the mummi executable, for the node agents
};

/// Runs the campaign; returns the exit code (0: it reached its stopping point).
int run_campaign(const run_options& options, std::shared_ptr<spdlog::logger> log);

} // namespace mummi::deploy
