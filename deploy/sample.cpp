#include "sample.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/ndx.hpp"
#include "mummi/ml/autoencoder.hpp"

namespace mummi::deploy {

namespace {

// 0-based atoms of group `name` of `index`, all below `beads`.
std::vector<std::size_t> group_atoms(const md::index_file& index, const std::string& name,
                                     std::size_t beads, const std::filesystem::path& path) {
  const auto* g = index.find(name);
  if (g == nullptr || g->atoms.empty())
    throw std::invalid_argument(path.string() + ": no group '" + name + "' with atoms");
  std::vector<std::size_t> out;
  for (auto a : g->atoms) {
    if (static_cast<std::size_t>(a) > beads)
      throw std::invalid_argument(path.string() + ": group '" + name + "' has atom " +
                                  std::to_string(a) + ", the model " + std::to_string(beads) +
                                  " beads");
    out.push_back(static_cast<std::size_t>(a) - 1);
  }
  return out;
}

// Distance (nm) between the centres of two groups of one frame.
double centre_distance(std::span<const float> frame, const std::vector<std::size_t>& from,
                       const std::vector<std::size_t>& to) {
  double d2 = 0;
  for (int k = 0; k < 3; ++k) {
    double cf = 0, ct = 0;
    for (auto i : from)
      cf += frame[i * 3 + k];
    for (auto i : to)
      ct += frame[i * 3 + k];
    const double d = ct / static_cast<double>(to.size()) - cf / static_cast<double>(from.size());
    d2 += d * d;
  }
  return std::sqrt(d2);
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

} // namespace

ml::sampler_params parse_sampler_params(const std::vector<std::string>& params) {
  ml::sampler_params out;
  for (const auto& p : params) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("--param '" + p + "': expected key=value");
    out[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return out;
}

CLI::App* add_sample_command(CLI::App& app, sample_options& o) {
  auto* cmd = app.add_subcommand(
    "sample", "Select latent points with a sampler, decode them and place them between A and B");
  cmd->add_option("--model", o.model, "Model file (default: the demo model)")
    ->check(CLI::ExistingFile);
  cmd->add_option("--frames", o.frames, "Frame store with state labels (default: the demo's)")
    ->check(CLI::ExistingFile);
  cmd->add_option("--sampler", o.sampler, "random, ot, ot_feedback or importance")
    ->capture_default_str();
  cmd->add_option("--param", o.params, "Sampler parameter key=value (repeatable)");
  cmd->add_option("--count", o.count, "Points to select")->check(CLI::Range(1, 1000000));
  cmd->add_option("--seed", o.seed, "Sampler seed");
  cmd->add_option("--index", o.index, "Index file of the protein (default: the demo protein's)")
    ->check(CLI::ExistingFile);
  cmd->add_option("--from-group", o.from_group, "Collective variable: from this group's centre")
    ->capture_default_str();
  cmd->add_option("--to-group", o.to_group, "... to this group's centre (nm)")
    ->capture_default_str();
  cmd->add_option("--out", o.out, "Write the decoded structures here (.gro)");
  cmd->add_option("--protein", o.protein, "Structure whose atom names the written files use")
    ->check(CLI::ExistingFile);
  return cmd;
}

int run_sample(sample_options o, const std::filesystem::path& data_dir) {
  const auto demo = data_dir / "demo";
  if (o.model.empty())
    o.model = demo / "model.ae";
  if (o.frames.empty())
    o.frames = demo / "frames.h5";
  if (o.index.empty())
    o.index = demo / "protein.ndx";
  if (o.protein.empty())
    o.protein = demo / "protein.gro";
  const ml::sampler_params params = parse_sampler_params(o.params);

  const auto frames = coupling::frame_store::open(o.frames).read_all();
  const auto model = ml::autoencoder::load(o.model, frames.atoms);
  const auto index = md::read_ndx(o.index);
  const auto from = group_atoms(index, o.from_group, model.beads(), o.index);
  const auto to = group_atoms(index, o.to_group, model.beads(), o.index);
  const auto states = ml::encode_states(model, frames);
  auto sampler = ml::sampler_registry::with_builtins().create(o.sampler, states, params, o.seed);
  const auto samples = sampler->select(o.count);
  if (samples.empty())
    throw std::runtime_error("sampler '" + o.sampler + "' selected nothing (too few candidates?)");

  // The collective variable of the states' frames and of the decoded selections.
  std::vector<double> cv_a, cv_b, cv;
  for (std::size_t i = 0; i < frames.frames(); ++i) {
    const auto label = frames.meta[i].label;
    if (label == coupling::state_a || label == coupling::state_b)
      (label == coupling::state_a ? cv_a : cv_b).push_back(centre_distance(frames.frame(i), from, to));
  }
  std::vector<float> latent;
  for (const auto& s : samples)
    latent.insert(latent.end(), s.z.begin(), s.z.end());
  const auto decoded = model.decode(latent);
  const auto per = model.beads() * 3;
  for (std::size_t i = 0; i < samples.size(); ++i)
    cv.push_back(
      centre_distance(std::span<const float>(decoded).subspan(i * per, per), from, to));

  // "Between": beyond 95% of one state's frames towards the other, short of 95% of those.
  const bool a_low = quantile(cv_a, 0.5) < quantile(cv_b, 0.5);
  const double lo = a_low ? quantile(cv_a, 0.95) : quantile(cv_b, 0.95);
  const double hi = a_low ? quantile(cv_b, 0.05) : quantile(cv_a, 0.05);
  std::size_t between = 0, near_low = 0, near_high = 0;
  for (double v : cv)
    (v < lo ? near_low : v > hi ? near_high : between) += 1;

  if (!o.out.empty()) {
    std::filesystem::create_directories(o.out);
    auto s = md::read_gro(o.protein);
    if (s.atoms.size() != model.beads())
      throw std::invalid_argument(o.protein.string() + ": " + std::to_string(s.atoms.size()) +
                                  " atoms, the model " + std::to_string(model.beads()) + " beads");
    for (std::size_t i = 0; i < samples.size(); ++i) {
      for (std::size_t a = 0; a < s.atoms.size(); ++a) {
        s.atoms[a].position_nm = {decoded[i * per + a * 3], decoded[i * per + a * 3 + 1],
                                  decoded[i * per + a * 3 + 2]};
        s.atoms[a].velocity_nm_ps.reset();
      }
      s.title = "mummi sample " + o.sampler + " id " + std::to_string(samples[i].id);
      md::write_gro(s, o.out / ("sample-" + std::to_string(samples[i].id) + ".gro"));
    }
  }

  std::printf("sample: %s, %zu points from %zu A and %zu B encodings (%zu-D), seed %llu\n",
              o.sampler.c_str(), samples.size(), states.a.size(), states.b.size(),
              model.latent_size(), static_cast<unsigned long long>(o.seed));
  std::printf("  %s-%s distance (nm): state A frames %.3f-%.3f, state B frames %.3f-%.3f, "
              "decoded %.3f-%.3f\n",
              o.from_group.c_str(), o.to_group.c_str(), quantile(cv_a, 0), quantile(cv_a, 1),
              quantile(cv_b, 0), quantile(cv_b, 1), quantile(cv, 0), quantile(cv, 1));
  std::printf("  between A and B (%.3f-%.3f nm): %zu of %zu; on the %s side %zu, on the %s side "
              "%zu\n",
              lo, hi, between, samples.size(), a_low ? "A" : "B", near_low, a_low ? "B" : "A",
              near_high);
  if (!o.out.empty())
    std::printf("  structures written to %s\n", o.out.c_str());
  return 0;
}

} // namespace mummi::deploy
