#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
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

} // namespace

config_error::config_error(std::vector<std::string> problems)
  : std::runtime_error(join(problems)), problems_(std::move(problems)) {}

campaign_config parse_campaign_config(const std::string& yaml, const std::string& source) {
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
  if (!r.section(root, "", {"campaign", "head", "nodes"}))
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
  return parse_campaign_config(ss.str(), file.string());
}

} // namespace mummi::deploy
