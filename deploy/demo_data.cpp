#include "demo_data.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "mummi/coupling/frame_store.hpp"
#include "mummi/md_bridge/createsims.hpp"
#include "mummi/md_bridge/ensemble.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/ndx.hpp"
#include "train.hpp"

namespace mummi::deploy {

namespace fs = std::filesystem;

namespace {

struct cv_summary {
  double mean = 0, min = 0, max = 0;
};

cv_summary summarise(const std::vector<double>& v) {
  cv_summary s;
  if (v.empty())
    return s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  s.min = *lo;
  s.max = *hi;
  return s;
}

/// `v` in the shortest of %g's forms ("2.5", "500").
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string format_duration(double seconds) {
  char buf[32];
  const auto s = static_cast<long>(seconds + 0.5);
  std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

} // namespace

CLI::App* add_demo_data_command(CLI::App& app, demo_data_options& o) {
  auto* cmd = app.add_subcommand(
    "demo-data",
    "Simulate the demo protein's states A and B, store their frames (OUT/frames.h5) and train the "
    "demo model on them (OUT/model.ae)");
  cmd->add_option("--out", o.out,
                  "Directory of frames.h5 and model.ae (created; neither may exist yet)")
    ->required();
  cmd->add_option("--work", o.work, "Directory of the simulations (default: OUT/simulations)");
  cmd->add_option("--ns-per-state", o.ns_per_state, "Run length of each state (ns)")
    ->capture_default_str()
    ->check(CLI::PositiveNumber);
  cmd->add_option("--frame-ps", o.frame_ps, "Between stored frames (ps)")
    ->capture_default_str()
    ->check(CLI::PositiveNumber);
  cmd
    ->add_option("--discard-ps", o.discard_ps,
                 "Frames up to this time of each run are not kept (ps)")
    ->capture_default_str()
    ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o.threads, "Threads per mdrun (0: every core)");
  cmd->add_option("--seed", o.seed, "Seed of the createsims build")->capture_default_str();
  cmd->add_option("--gmx", o.gmx, "GROMACS binary")->capture_default_str();
  return cmd;
}

int run_demo_data(const demo_data_options& o, const fs::path& data_dir) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto store_path = o.out / "frames.h5";
  const auto model_path = o.out / "model.ae";
  const auto work = o.work.empty() ? o.out / "simulations" : o.work;
  for (const auto& p : {store_path, model_path})
    if (fs::exists(p))
      throw std::invalid_argument(p.string()
                                  + " exists: refusing to overwrite it (remove it or give another "
                                    "--out)");
  fs::create_directories(o.out);
  const auto demo = data_dir / "demo";
  const auto spec = md::demo_system(demo);

  md::ensemble_spec base;
  base.protein_molecule = spec.protein_molecule;
  base.protein_groups = md::read_ndx(demo / "protein.ndx");
  base.domain_group = "DOM2";
  for (const auto* leaflet : {&spec.recipe.upper, &spec.recipe.lower})
    for (const auto& c : leaflet->lipids)
      if (std::find(base.membrane_molecules.begin(), base.membrane_molecules.end(), c.lipid)
          == base.membrane_molecules.end())
        base.membrane_molecules.push_back(c.lipid);
  base.force_constant_kj_mol_nm2 = o.force_constant_kj_mol_nm2;
  base.run_ps = o.ns_per_state * 1000;
  base.frame_ps = o.frame_ps;
  base.discard_ps = o.discard_ps;
  // Cheap checks before minutes of simulation (run_ensemble checks everything again).
  if (base.discard_ps >= base.run_ps)
    throw std::invalid_argument("--discard-ps " + num(o.discard_ps)
                                + " is not shorter than --ns-per-state " + num(o.ns_per_state)
                                + " ns");
  if (md::expected_frames(base) == 0)
    throw std::invalid_argument("--frame-ps " + num(o.frame_ps)
                                + " leaves no frame after --discard-ps " + num(o.discard_ps));

  auto log = spdlog::stderr_color_mt("demo-data");
  log->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
  md::gmx_config gmx;
  gmx.gmx = o.gmx;
  md::mdrun_options mdrun;
  mdrun.threads = static_cast<int>(o.threads);
  const auto protocol = md::default_protocol();

  log->info("createsims of the demo protein in {}", (work / "createsims").string());
  const auto cs0 = std::chrono::steady_clock::now();
  const auto system = md::run_createsims(spec, protocol, md::read_gro(demo / "protein.gro"),
                                         work / "createsims", o.seed, gmx, mdrun);
  const double createsims_s
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - cs0).count();
  const auto located
    = md::locate_protein(md::read_topology(system.topology), base.protein_molecule,
                         base.protein_groups, base.domain_group, base.membrane_molecules);
  const double start_cv = md::domain_height_nm(md::read_gro(system.structure), located.cv);
  log->info("createsims done: {} atoms, DOM2 {:.3f} nm above the membrane mid-plane",
            system.checks.atoms, start_cv);

  struct state_run {
    const char* name;
    std::int32_t label;
    double reference_nm;
    md::ensemble_result result;
  };
  std::vector<state_run> states
    = {{"A", coupling::state_a, o.state_a_nm, {}}, {"B", coupling::state_b, o.state_b_nm, {}}};
  for (std::size_t i = 0; i < states.size(); ++i) {
    auto& st = states[i];
    auto s = base;
    s.name = std::string("state_") + static_cast<char>('a' + i);
    s.reference_nm = st.reference_nm;
    s.label = st.label;
    s.source = static_cast<std::int64_t>(i);
    s.seed = o.seed + i;
    log->info("state {}: {} ns with DOM2 restrained at {} nm in {}", st.name, o.ns_per_state,
              st.reference_nm, (work / s.name).string());
    st.result = md::run_ensemble(system, protocol, s, work / s.name, gmx, mdrun);
    log->info("state {}: {} frames, {:.0f} ns/day", st.name, st.result.frames.frames(),
              st.result.ns_per_day);
  }

  coupling::frame_store_options so;
  so.atoms = located.atoms;
  so.description = "mummi demo-data: the " + spec.protein_molecule
    + " protein's beads (nm); state A (label 0, source 0): DOM2 restrained at " + num(o.state_a_nm)
    + " nm above the membrane mid-plane; state B (label 1, source "
      "1): at "
    + num(o.state_b_nm) + " nm";
  {
    auto store = coupling::frame_store::create(store_path, so);
    for (const auto& st : states)
      store.append(st.result.frames);
    store.flush();
  }

  // The demo model, round 0, trained on those frames (their last 15% per state held out).
  train_options t;
  t.out = model_path;
  t.arch.hidden = {256, 64};
  t.arch.latent = 32;
  t.training.seed = o.seed;
  t.training.validation_fraction = 0.15;
  log->info("training the demo model ({} -> 256 -> 64 -> 32)", located.atoms * 3);
  const auto report
    = train_model(coupling::frame_store::open(store_path).read_all(), t, stderr_progress());

  const double wall_s
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("demo-data: %s\n", store_path.c_str());
  std::printf("  createsims: %zu atoms, %zu build(s), %.1f s; DOM2 at %.3f nm above the membrane "
              "mid-plane\n",
              system.checks.atoms, system.builds, createsims_s, start_cv);
  std::printf("  %-5s %5s %12s %7s %11s %10s %10s %8s %8s\n", "state", "label", "restraint_nm",
              "frames", "cv_mean_nm", "cv_min_nm", "cv_max_nm", "ns/day", "wall_s");
  for (const auto& st : states) {
    const auto cv = summarise(st.result.cv_nm);
    std::printf("  %-5s %5d %12.2f %7zu %11.3f %10.3f %10.3f %8.0f %8.1f\n", st.name, st.label,
                st.reference_nm, st.result.frames.frames(), cv.mean, cv.min, cv.max,
                st.result.ns_per_day, st.result.seconds);
  }
  const auto a = summarise(states[0].result.cv_nm), b = summarise(states[1].result.cv_nm);
  std::printf("  CV ranges overlap: %s (gap %.3f nm)\n", a.max < b.min ? "no" : "YES",
              b.min - a.max);
  std::printf("  model: %s, %zu epochs, held-out reconstruction RMSD %.4f nm (%zu frames)\n",
              model_path.c_str(), report.epochs.size(), report.validation_rmsd_nm,
              report.validation_frames);
  std::printf("  wall time: %s (%.1f s)\n", format_duration(wall_s).c_str(), wall_s);
  return 0;
}

} // namespace mummi::deploy
