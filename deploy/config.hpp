#pragma once

// The campaign configuration file (YAML): parsed once here into per-module config structs.
// Every problem in a file is reported at once; unknown keys are errors. docs/config.md lists
// every key with its default and unit.

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mummi/md_bridge/createsims.hpp"

namespace mummi::deploy {

/// A configuration that cannot be used; `problems` holds every one found, each naming the
/// file, line and key ("campaign.yaml:4:10: nodes.count: must be at least 1, got 0").
class config_error : public std::runtime_error {
public:
  explicit config_error(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const noexcept {
    return problems_;
  }

private:
  std::vector<std::string> problems_;
};

struct campaign_config {
  std::string name = "demo";
  std::filesystem::path dir = "runs/demo"; ///< campaign directory, relative to the working dir
  // head
  std::string head_bind = "tcp://127.0.0.1:*";
  std::chrono::milliseconds heartbeat_period{500};
  unsigned missed_heartbeats = 3;
  std::chrono::milliseconds head_grace{60000}; ///< nodes wait this long for a lost head
  // nodes
  unsigned local_nodes = 2; ///< node agents started on this machine by `mummi run`
  // system: the physical system; absent = the demo system of data/demo
  std::optional<md::system_spec> system;
  std::filesystem::path protein_structure; ///< starting protein (.gro); empty = the system's own
  // gromacs
  std::string gmx = "gmx";    ///< the GROMACS binary (any path: users bring their own build)
  unsigned gmx_threads = 0;   ///< threads per mdrun; 0 = every core of the machine
  // createsims
  unsigned max_builds = 10;
  std::chrono::seconds stage_timeout{3600};
  // ml: the model and the state-labelled frames the sampler works between (empty: the demo's)
  std::filesystem::path model;
  std::vector<std::filesystem::path> frames;
  // sampler
  std::string sampler = "ot_feedback";
  std::vector<std::pair<std::string, std::string>> sampler_params;
  std::uint64_t seed = 1;
  // structure generator
  unsigned buffer = 4;        ///< validated structures kept ready (x factor_extra)
  double factor_extra = 2;
  unsigned batch = 8;
  unsigned validation_workers = 0; ///< 0: one per core
  // jobs
  unsigned createsims_cores = 1, createsims_gpus = 0;
  unsigned simulation_cores = 1, simulation_gpus = 0;
  double length_ns = 0.2;          ///< simulation length (the paper: 600 ns)
  double frame_ps = 10;            ///< between stored frames
  double checkpoint_minutes = 1;
  unsigned max_attempts = 3;
  std::chrono::milliseconds backoff{1000};
  // stop: whichever comes first (0: not used)
  unsigned stop_simulations = 4;
  std::chrono::seconds wall_time{0};
};

/// Parses YAML text; `source` names it in errors. Throws config_error.
/// Relative paths in the text are taken from `base_dir`.
campaign_config parse_campaign_config(const std::string& yaml, const std::string& source,
                                      const std::filesystem::path& base_dir = {});

/// Reads and parses a file. Throws config_error (also for a missing or unreadable file).
campaign_config load_campaign_config(const std::filesystem::path& file);

} // namespace mummi::deploy
