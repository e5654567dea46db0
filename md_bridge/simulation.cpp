#include "mummi/md_bridge/simulation.hpp"

#include "run_common.hpp"
#include "text_file.hpp"

#include <cmath>
#include <fstream>
#include <string_view>

#include "mummi/coupling/child_process.hpp"
#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/mdp.hpp"
#include "mummi/md_bridge/ndx.hpp"
#include "mummi/md_bridge/xtc.hpp"

namespace mummi::md {

namespace fs = std::filesystem;

namespace {

constexpr const char* protein_group = "mummi_protein";

/// The time step of the protocol's production stage, or nothing.
std::optional<double> production_dt(const mdp& params) {
  const auto dt = detail::parse_real<double>(params.get("dt").value_or(""));
  if (!dt || !(*dt > 0))
    return std::nullopt;
  return dt;
}

/// Opens this simulation's store for appending. A store whose last writer died (a crash of the
/// process that ran this simulation before) keeps HDF5's "open for writing" mark: the frames
/// it flushed are intact and this simulation is its only writer, so the mark is cleared with
/// `h5clear -s` (hdf5-tools) and the store opened again.
coupling::frame_store open_for_appending(const fs::path& path) {
  try {
    return coupling::frame_store::open(path, coupling::frame_store::mode::append);
  } catch (const coupling::store_error& e) {
    if (std::string_view(e.what()).find("h5clear -s") == std::string_view::npos)
      throw;
    coupling::child_process clear({"h5clear", "-s", path.string()}, {}, {});
    const auto status = clear.wait_for(std::chrono::seconds{60});
    if (!status || *status != 0)
      throw coupling::store_error(path, std::string("could not clear the mark of its crashed "
                                                    "writer with h5clear -s; ")
                                          + e.what());
    return coupling::frame_store::open(path, coupling::frame_store::mode::append);
  }
}

} // namespace

std::size_t expected_frames(const simulation_spec& spec, double step_ps) {
  const auto n = detail::steps_of(spec.length_ps, step_ps);
  const auto every = detail::steps_of(spec.frame_ps, step_ps);
  if (!n || !every || *every <= 0 || *n < 0)
    return 0;
  return static_cast<std::size_t>(*n / *every) + 1;
}

simulation_result run_simulation(const createsims_result& system,
                                 const createsims_protocol& protocol, const simulation_spec& spec,
                                 const fs::path& work_dir, const fs::path& store_path,
                                 const gmx_config& gmx, const mdrun_options& mdrun_base,
                                 const std::function<void(const simulation_progress&)>& on_progress,
                                 const std::atomic<bool>* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto top = read_topology(system.topology);
  auto index = read_ndx(system.index);

  mdp params = detail::production_params(protocol);

  using detail::quoted;
  using detail::shortest;
  std::vector<std::string> problems;
  const auto dt = production_dt(params);
  if (!dt)
    problems.push_back("the protocol's production stage sets no positive time step (dt)");
  const double step_ps = dt.value_or(1);
  if (spec.name.empty() || spec.name.find('/') != std::string::npos)
    problems.push_back("name " + quoted(spec.name) + " cannot name files");
  if (!(spec.length_ps > 0))
    problems.push_back("length " + shortest(spec.length_ps) + " ps is not positive");
  else if (dt && !detail::steps_of(spec.length_ps, step_ps))
    problems.push_back("length " + shortest(spec.length_ps) + " ps is not a multiple of the time "
                       + "step " + shortest(step_ps) + " ps");
  if (!(spec.frame_ps > 0))
    problems.push_back("frame interval " + shortest(spec.frame_ps) + " ps is not positive");
  else if (dt && !detail::steps_of(spec.frame_ps, step_ps))
    problems.push_back("frame interval " + shortest(spec.frame_ps) + " ps is not a multiple of "
                       + "the time step " + shortest(step_ps) + " ps");
  if (!(spec.checkpoint_minutes > 0))
    problems.push_back("checkpoint interval " + shortest(spec.checkpoint_minutes)
                       + " minutes is not positive");
  const auto search = detail::find_protein(top, spec.protein_molecule, {}, problems);
  const protein_in_system& protein = search.protein;
  std::string group = spec.selection;
  std::size_t selected_atoms = 0;
  if (spec.selection == "protein") {
    group = protein_group;
    selected_atoms = protein.atoms;
  } else if (const auto* g = index.find(spec.selection); g != nullptr && !g->atoms.empty()) {
    selected_atoms = g->atoms.size();
  } else {
    std::string names;
    for (const auto& x : index.groups)
      names += (names.empty() ? "" : ", ") + x.name;
    problems.push_back("selection " + quoted(spec.selection) + " is neither 'protein' nor a "
                       + "group with atoms in " + system.index.string() + " (its groups: " + names
                       + ")");
  }
  if (!problems.empty())
    throw md_error(detail::join_problems("simulation " + quoted(spec.name) + ":", problems));

  const auto nsteps = *detail::steps_of(spec.length_ps, step_ps);
  const auto frame_steps = *detail::steps_of(spec.frame_ps, step_ps);
  const bool whole = spec.selection == "protein";
  const auto walk = whole ? plan_whole_walk(protein.atoms, protein.bonds) : whole_walk{};

  fs::create_directories(work_dir);
  const auto path = [&](const std::string& suffix) {
    return fs::absolute(work_dir / (spec.name + suffix));
  };
  simulation_result result;
  result.trajectory = path(".xtc");
  result.checkpoint = path(".cpt");

  // The store: new, or this simulation's frames so far (the last one's step is the newest).
  auto store = [&] {
    if (fs::exists(store_path))
      return open_for_appending(store_path);
    auto options = spec.store;
    options.atoms = selected_atoms;
    if (options.description.empty())
      options.description = "simulation " + spec.name + " (source " + std::to_string(spec.source)
        + "): " + spec.selection;
    return coupling::frame_store::create(store_path, options);
  }();
  if (store.atom_count() != selected_atoms)
    throw coupling::store_error(store_path, "holds frames of " + std::to_string(store.atom_count())
                                              + " atoms; selection " + quoted(spec.selection)
                                              + " has " + std::to_string(selected_atoms));
  std::optional<std::int64_t> last_stored;
  if (store.frame_count() > 0)
    last_stored = store.read(store.frame_count() - 1, 1).meta.front().step;

  const auto report = [&](std::int64_t step) {
    result.progress.step = step;
    result.progress.ns_done = static_cast<double>(step) * step_ps / 1000;
    result.progress.frames_stored = store.frame_count();
    const double days
      = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 86400;
    if (days > 0)
      result.progress.ns_per_day
        = static_cast<double>(result.frames_this_call) * spec.frame_ps / 1000 / days;
    if (on_progress)
      on_progress(result.progress);
  };
  const auto finish = [&] {
    store.flush();
    result.progress.frames_stored = store.frame_count();
    result.bytes_per_frame = store.frame_count() > 0
      ? static_cast<double>(fs::file_size(store_path)) / static_cast<double>(store.frame_count())
      : 0;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
  };

  // Finished before: nothing to run.
  if (fs::exists(path(".complete"))) {
    result.complete = true;
    result.progress.step = nsteps;
    result.progress.ns_done = static_cast<double>(nsteps) * step_ps / 1000;
    return finish();
  }

  const auto runner = detail::run_runner(gmx);
  result.resumed = fs::exists(path(".tpr")) && fs::exists(result.checkpoint);
  if (!fs::exists(path(".tpr"))) {
    // First start: the run input (written under another name, so that a half-written one is
    // never taken for the real thing).
    index.add_group(protein_group, detail::numbers_1_based(protein.first_atom, protein.atoms));
    write_ndx(index, path(".ndx"));
    detail::set_run(params, nsteps, frame_steps, group,
                    detail::system_checkpoint(system).has_value(), spec.seed);
    write_mdp(params, path(".mdp"));
    const auto in = detail::system_run_input(system, path(".mdp"), path(".ndx"),
                                             path(".new.tpr"), work_dir);
    runner.grompp(in, cancel);
    fs::rename(path(".new.tpr"), path(".tpr"));
  }
  if (!result.resumed)
    for (const char* suffix : {".xtc", ".log", ".edr", ".gro", "_prev.cpt"})
      fs::remove(path(suffix)); // a run that died before its first checkpoint starts again

  auto options = mdrun_base;
  options.deffnm = spec.name;
  options.checkpoint = result.resumed ? result.checkpoint : fs::path{};
  options.extra_args.insert(options.extra_args.end(),
                            {"-cpt", shortest(spec.checkpoint_minutes)});

  xtc_stream_options reader_options;
  reader_options.last_step = last_stored; // frames stored before are skipped
  coupling::frame_block block;
  block.atoms = selected_atoms;
  block.meta.resize(1);
  const auto take = [&](const xtc_frame& f) {
    if (f.natoms != selected_atoms)
      throw io_error(result.trajectory, 0,
                     "the frame at byte " + std::to_string(f.offset) + " holds "
                       + std::to_string(f.natoms) + " atoms, not the selection's "
                       + std::to_string(selected_atoms));
    std::vector<vec3> x = f.positions_nm;
    if (whole)
      make_whole(x, walk, f.box_nm);
    block.positions_nm.clear();
    for (const auto& p : x)
      block.positions_nm.insert(block.positions_nm.end(), p.begin(), p.end());
    block.meta[0] = {f.step, static_cast<double>(f.step) * step_ps, coupling::no_label,
                     spec.source};
    store.append(block);
    store.flush(); // what a crash of this process would lose is then in the trajectory still
    result.frames_this_call += 1;
    report(f.step);
  };
  const auto run = detail::run_and_follow(runner, path(".tpr"), fs::absolute(work_dir), options,
                                          result.trajectory, reader_options, take, cancel);
  const std::int64_t last_step = run.last_progress ? run.last_progress->step : 0;
  result.complete = last_step >= nsteps;
  if (result.complete) {
    std::ofstream(path(".complete")) << nsteps << '\n';
    result.progress.step = nsteps;
    result.progress.ns_done = static_cast<double>(nsteps) * step_ps / 1000;
  }
  return finish();
}

} // namespace mummi::md
