#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace mummi::deploy {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out = "invalid configuration:";
  for (const auto& s : v)
    out += "\n  " + s;
  return out;
}

/// Walks a YAML document, collecting every problem instead of stopping at the first.
class reader {
public:
  explicit reader(std::string source) : source_(std::move(source)) {}

  void problem(const YAML::Node& at, const std::string& path, const std::string& what) {
    std::ostringstream os;
    os << source_;
    std::pair<int, int> where{-1, -1};
    if (at.IsDefined() && at.Mark().line >= 0) {
      where = {at.Mark().line, at.Mark().column};
      os << ':' << where.first + 1 << ':' << where.second + 1;
    }
    os << ": " << path << ": " << what;
    problems_.emplace_back(where, os.str());
  }

  /// `node` must be a map (or absent); every key must be one of `known`.
  bool section(const YAML::Node& node, const std::string& path, std::set<std::string> known) {
    if (!node.IsDefined() || node.IsNull())
      return false;
    if (!node.IsMap()) {
      problem(node, path, "must be a mapping of keys to values");
      return false;
    }
    for (const auto& kv : node) {
      auto key = kv.first.as<std::string>("");
      if (!known.contains(key)) {
        std::string list;
        for (const auto& k : known)
          list += (list.empty() ? "" : ", ") + k;
        problem(kv.first, path.empty() ? key : path + "." + key,
                "unknown key (known here: " + list + ")");
      }
    }
    return true;
  }

  template<class T>
  void read(const YAML::Node& map, const std::string& path, const char* key, T& out,
            const std::function<std::string(const T&)>& check = {}) {
    auto node = map[key];
    auto full = path.empty() ? std::string{key} : path + "." + key;
    if (!node.IsDefined() || node.IsNull())
      return; // keep the default
    T value;
    try {
      if (!node.IsScalar())
        throw YAML::Exception(node.Mark(), "");
      value = node.as<T>();
    } catch (const YAML::Exception&) {
      problem(node, full,
              std::string{"must be "} + type_name<T>() + ", got '" + text_of(node) + "'");
      return;
    }
    if (check) {
      if (auto p = check(value); !p.empty()) {
        problem(node, full, p + ", got '" + text_of(node) + "'");
        return;
      }
    }
    out = std::move(value);
  }

  /// Every problem, in the order they appear in the file.
  std::vector<std::string> problems() const {
    auto sorted = problems_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
      return a.first < b.first;
    });
    std::vector<std::string> out;
    for (auto& p : sorted)
      out.push_back(std::move(p.second));
    return out;
  }

private:
  template<class T>
  static const char* type_name() {
    if constexpr (std::is_same_v<T, std::string>)
      return "a string";
    else if constexpr (std::is_same_v<T, bool>)
      return "true or false";
    else if constexpr (std::is_unsigned_v<T>)
      return "a non-negative integer";
    else if constexpr (std::is_integral_v<T>)
      return "an integer";
    else
      return "a number";
  }
  static std::string text_of(const YAML::Node& n) {
    if (n.IsScalar())
      return n.Scalar();
    std::ostringstream os;
    os << n;
    return os.str();
  }

  std::string source_;
  std::vector<std::pair<std::pair<int, int>, std::string>> problems_;
};

std::function<std::string(const unsigned&)> at_least(unsigned lo) {
  return [lo](const unsigned& v) {
    return v < lo ? "must be at least " + std::to_string(lo) : std::string{};
  };
}

std::function<std::string(const std::string&)> endpoint_check() {
  return [](const std::string& v) {
    for (const char* scheme : {"tcp://", "ipc://"})
      if (v.rfind(scheme, 0) == 0)
        return std::string{};
    return std::string{"must be a tcp:// or ipc:// endpoint"};
  };
}

std::function<std::string(const std::string&)> not_empty() {
  return [](const std::string& v) {
    return v.empty() ? std::string{"must not be empty"} : std::string{};
  };
}

std::function<std::string(const double&)> positive() {
  return [](const double& v) {
    return v > 0 && std::isfinite(v) ? std::string{} : std::string{"must be a positive number"};
  };
}

/// A path of the file, relative to the configuration file's directory unless absolute.
std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path{p};
  return path.is_absolute() || base.empty() ? path : base / path;
}

/// `upper: {DPC: 0.7, DST: 0.3}`: lipid name -> fraction (or count), in the file's order.
void read_leaflet(reader& r, const YAML::Node& m, const std::string& path,
                  md::leaflet_recipe& out) {
  auto node = m[path.substr(path.rfind('.') + 1)];
  if (!node.IsDefined() || node.IsNull())
    return;
  if (!node.IsMap() || node.size() == 0) {
    r.problem(node, path, "must map lipid names to fractions (or counts), e.g. {POPC: 1.0}");
    return;
  }
  out.lipids.clear();
  for (const auto& kv : node) {
    auto name = kv.first.as<std::string>("");
    double amount = 0;
    try {
      amount = kv.second.as<double>();
    } catch (const YAML::Exception&) {
      r.problem(kv.second, path + "." + name, "must be a number");
      continue;
    }
    out.lipids.push_back({name, amount});
  }
}

md::system_spec read_system(reader& r, const YAML::Node& s, const std::filesystem::path& base,
                            std::filesystem::path& protein_structure) {
  md::system_spec spec;
  auto files = s["files"];
  if (!files.IsDefined() || !files.IsSequence() || files.size() == 0)
    r.problem(files.IsDefined() ? files : s, "system.files",
              "must list the force-field file first, then every molecule file");
  else
    for (std::size_t i = 0; i < files.size(); ++i) {
      auto path = resolve(base, files[i].as<std::string>(""));
      if (!std::filesystem::is_regular_file(path))
        r.problem(files[i], "system.files[" + std::to_string(i) + "]",
                  "no such file: " + path.string());
      spec.includes.push_back(std::move(path));
    }
  std::string templates;
  r.read<std::string>(s, "system", "lipid_templates", templates);
  if (!templates.empty()) {
    spec.lipid_templates = resolve(base, templates);
    if (!std::filesystem::is_regular_file(spec.lipid_templates))
      r.problem(s["lipid_templates"], "system.lipid_templates",
                "no such file: " + spec.lipid_templates.string());
  }
  if (auto p = s["protein"];
      r.section(p, "system.protein", {"molecule", "structure", "anchor_atom", "anchor_depth_nm"})) {
    r.read<std::string>(p, "system.protein", "molecule", spec.protein_molecule, not_empty());
    std::string structure;
    r.read<std::string>(p, "system.protein", "structure", structure, not_empty());
    if (!structure.empty()) {
      protein_structure = resolve(base, structure);
      if (!std::filesystem::is_regular_file(protein_structure))
        r.problem(p["structure"], "system.protein.structure",
                  "no such file: " + protein_structure.string());
    }
    unsigned anchor = 1;
    r.read<unsigned>(p, "system.protein", "anchor_atom", anchor, at_least(1));
    spec.anchor_atom = anchor - 1;
    r.read<double>(
      p, "system.protein", "anchor_depth_nm", spec.anchor_depth_nm, [](const double& v) {
        return std::isfinite(v) && std::abs(v) < 100 ? std::string{}
                                                     : std::string{"must be a finite nm value"};
      });
  }
  if (spec.protein_molecule.empty() || protein_structure.empty())
    r.problem(s, "system.protein", "needs molecule and structure");
  auto& rec = spec.recipe;
  if (auto m = s["membrane"];
      r.section(m, "system.membrane",
                {"box_nm", "upper", "lower", "exact_counts", "area_per_lipid_nm2", "asymmetry",
                 "salt_molar", "solvent", "cation", "anion", "seed"})) {
    if (auto box = m["box_nm"]; box.IsDefined()) {
      if (!box.IsSequence() || box.size() != 3)
        r.problem(box, "system.membrane.box_nm", "must be [x, y, z] in nm");
      else
        try {
          rec.box_x_nm = box[0].as<double>();
          rec.box_y_nm = box[1].as<double>();
          rec.box_z_nm = box[2].as<double>();
          for (double e : {rec.box_x_nm, rec.box_y_nm, rec.box_z_nm})
            if (!(e > 0 && e < 1000))
              r.problem(box, "system.membrane.box_nm", "edges must be positive nm below 1000");
        } catch (const YAML::Exception&) {
          r.problem(box, "system.membrane.box_nm", "must be three numbers");
        }
    }
    read_leaflet(r, m, "system.membrane.upper", rec.upper);
    read_leaflet(r, m, "system.membrane.lower", rec.lower);
    bool exact = false;
    r.read<bool>(m, "system.membrane", "exact_counts", exact);
    rec.upper.exact_counts = rec.lower.exact_counts = exact;
    double apl = rec.upper.area_per_lipid_nm2;
    r.read<double>(m, "system.membrane", "area_per_lipid_nm2", apl, positive());
    rec.upper.area_per_lipid_nm2 = rec.lower.area_per_lipid_nm2 = apl;
    r.read<int>(m, "system.membrane", "asymmetry", rec.asymmetry);
    r.read<double>(m, "system.membrane", "salt_molar", rec.salt_molar, [](const double& v) {
      return v >= 0 && v < 10 ? std::string{} : std::string{"must be between 0 and 10 mol/L"};
    });
    r.read<std::string>(m, "system.membrane", "solvent", rec.solvent, not_empty());
    r.read<std::string>(m, "system.membrane", "cation", rec.cation, not_empty());
    r.read<std::string>(m, "system.membrane", "anion", rec.anion, not_empty());
    r.read<std::uint64_t>(m, "system.membrane", "seed", rec.seed);
  }
  if (rec.upper.lipids.empty() || rec.lower.lipids.empty())
    r.problem(s, "system.membrane", "needs the lipids of both leaflets (upper, lower)");
  return spec;
}

} // namespace

config_error::config_error(std::vector<std::string> problems)
  : std::runtime_error(join(problems)), problems_(std::move(problems)) {}

campaign_config parse_campaign_config(const std::string& yaml, const std::string& source,
                                      const std::filesystem::path& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw config_error({source + ":" + std::to_string(e.mark.line + 1) + ":"
                        + std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg});
  }
  campaign_config c;
  reader r{source};
  if (!root.IsDefined() || root.IsNull())
    return c; // an empty file means every default
  if (!r.section(root, "", {"campaign", "head", "nodes", "system", "gromacs", "createsims", "ml",
                            "sampler", "structure_generator", "jobs", "stop"}))
    throw config_error(r.problems());

  if (auto s = root["campaign"]; r.section(s, "campaign", {"name", "dir"})) {
    r.read<std::string>(s, "campaign", "name", c.name, [](const std::string& v) {
      return v.empty() ? std::string{"must not be empty"} : std::string{};
    });
    std::string dir = c.dir.string();
    r.read<std::string>(s, "campaign", "dir", dir);
    c.dir = dir;
  }
  if (auto s = root["head"];
      r.section(s, "head", {"bind", "heartbeat_ms", "missed_heartbeats", "grace_s"})) {
    r.read<std::string>(s, "head", "bind", c.head_bind, endpoint_check());
    unsigned hb = static_cast<unsigned>(c.heartbeat_period.count());
    r.read<unsigned>(s, "head", "heartbeat_ms", hb, at_least(10));
    c.heartbeat_period = std::chrono::milliseconds{hb};
    r.read<unsigned>(s, "head", "missed_heartbeats", c.missed_heartbeats, at_least(1));
    unsigned grace = static_cast<unsigned>(c.head_grace.count() / 1000);
    r.read<unsigned>(s, "head", "grace_s", grace, at_least(1));
    c.head_grace = std::chrono::seconds{grace};
  }
  if (auto s = root["nodes"]; r.section(s, "nodes", {"local"}))
    r.read<unsigned>(s, "nodes", "local", c.local_nodes, at_least(1));
  if (auto s = root["system"];
      r.section(s, "system", {"files", "lipid_templates", "protein", "membrane"}))
    c.system = read_system(r, s, base_dir, c.protein_structure);
  if (auto s = root["gromacs"]; r.section(s, "gromacs", {"gmx", "threads"})) {
    r.read<std::string>(s, "gromacs", "gmx", c.gmx, not_empty());
    r.read<unsigned>(s, "gromacs", "threads", c.gmx_threads);
  }
  if (auto s = root["createsims"]; r.section(s, "createsims", {"max_builds", "stage_timeout_s"})) {
    r.read<unsigned>(s, "createsims", "max_builds", c.max_builds, at_least(1));
    unsigned t = static_cast<unsigned>(c.stage_timeout.count());
    r.read<unsigned>(s, "createsims", "stage_timeout_s", t, at_least(1));
    c.stage_timeout = std::chrono::seconds{t};
  }

  if (auto s = root["ml"]; r.section(s, "ml", {"model", "frames"})) {
    std::string model;
    r.read<std::string>(s, "ml", "model", model, not_empty());
    if (!model.empty()) {
      c.model = resolve(base_dir, model);
      if (!std::filesystem::is_regular_file(c.model))
        r.problem(s["model"], "ml.model", "no such file: " + c.model.string());
    }
    if (auto f = s["frames"]; f.IsDefined() && !f.IsNull()) {
      if (!f.IsSequence() || f.size() == 0)
        r.problem(f, "ml.frames", "must be a list of frame store files");
      else
        for (std::size_t i = 0; i < f.size(); ++i) {
          const auto path = resolve(base_dir, f[i].as<std::string>(""));
          if (!std::filesystem::is_regular_file(path))
            r.problem(f[i], "ml.frames", "no such file: " + path.string());
          c.frames.push_back(path);
        }
    }
  }
  if (auto s = root["sampler"]; r.section(s, "sampler", {"name", "params", "seed"})) {
    r.read<std::string>(s, "sampler", "name", c.sampler, not_empty());
    r.read<std::uint64_t>(s, "sampler", "seed", c.seed);
    if (auto p = s["params"]; p.IsDefined() && !p.IsNull()) {
      if (!p.IsMap())
        r.problem(p, "sampler.params", "must be a mapping of parameter names to values");
      else
        for (const auto& kv : p)
          c.sampler_params.emplace_back(kv.first.as<std::string>(""),
                                        kv.second.IsScalar() ? kv.second.Scalar() : "");
    }
  }
  if (auto s = root["structure_generator"];
      r.section(s, "structure_generator", {"buffer", "factor_extra", "batch", "workers"})) {
    r.read<unsigned>(s, "structure_generator", "buffer", c.buffer, at_least(1));
    r.read<double>(s, "structure_generator", "factor_extra", c.factor_extra,
                   [](const double& v) {
                     return v >= 1 && v <= 1000 ? std::string{} : std::string{"must be in [1, 1000]"};
                   });
    r.read<unsigned>(s, "structure_generator", "batch", c.batch, at_least(1));
    r.read<unsigned>(s, "structure_generator", "workers", c.validation_workers);
  }
  if (auto s = root["jobs"]; r.section(s, "jobs", {"createsims", "simulation", "max_attempts",
                                                   "backoff_ms"})) {
    if (auto j = s["createsims"]; r.section(j, "jobs.createsims", {"cores", "gpus"})) {
      r.read<unsigned>(j, "jobs.createsims", "cores", c.createsims_cores, at_least(1));
      r.read<unsigned>(j, "jobs.createsims", "gpus", c.createsims_gpus);
    }
    if (auto j = s["simulation"]; r.section(j, "jobs.simulation", {"cores", "gpus", "length_ns",
                                                                   "frame_ps",
                                                                   "checkpoint_minutes"})) {
      const auto positive = [](const double& v) {
        return v > 0 ? std::string{} : std::string{"must be positive"};
      };
      r.read<unsigned>(j, "jobs.simulation", "cores", c.simulation_cores, at_least(1));
      r.read<unsigned>(j, "jobs.simulation", "gpus", c.simulation_gpus);
      r.read<double>(j, "jobs.simulation", "length_ns", c.length_ns, positive);
      r.read<double>(j, "jobs.simulation", "frame_ps", c.frame_ps, positive);
      r.read<double>(j, "jobs.simulation", "checkpoint_minutes", c.checkpoint_minutes, positive);
    }
    r.read<unsigned>(s, "jobs", "max_attempts", c.max_attempts, at_least(1));
    unsigned backoff = static_cast<unsigned>(c.backoff.count());
    r.read<unsigned>(s, "jobs", "backoff_ms", backoff);
    c.backoff = std::chrono::milliseconds{backoff};
  }
  if (auto s = root["stop"]; r.section(s, "stop", {"simulations", "wall_time_s"})) {
    r.read<unsigned>(s, "stop", "simulations", c.stop_simulations);
    unsigned wall = static_cast<unsigned>(c.wall_time.count());
    r.read<unsigned>(s, "stop", "wall_time_s", wall);
    c.wall_time = std::chrono::seconds{wall};
  }

  if (!r.problems().empty())
    throw config_error(r.problems());
  return c;
}

campaign_config load_campaign_config(const std::filesystem::path& file) {
  std::ifstream in{file};
  if (!in)
    throw config_error({file.string() + ": cannot be read (does it exist?)"});
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_campaign_config(ss.str(), file.string(), file.parent_path());
}

} // namespace mummi::deploy
