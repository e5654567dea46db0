#include "mummi/md_bridge/ensemble.hpp"

#include "periodic.hpp"
#include "run_common.hpp"
#include "text_file.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <exception>
#include <map>
#include <numbers>
#include <thread>

#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/mdp.hpp"
#include "mummi/md_bridge/xtc.hpp"

namespace mummi::md {

namespace fs = std::filesystem;

using detail::join_problems;
using detail::numbers_1_based;
using detail::quoted;
using detail::steps_of;

namespace detail {

protein_search find_protein(const topology& top, const std::string& protein_molecule,
                            const std::vector<std::string>& membrane_molecules,
                            std::vector<std::string>& problems) {
  protein_search out;
  protein_in_system& p = out.protein;
  std::size_t at = 0;
  const auto where = top.path.empty() ? std::string("the system topology") : top.path.string();
  for (const auto& m : top.molecules) {
    if (!holds(m.cond, top.defines))
      continue;
    const auto* type = find_molecule_type(top, m.name);
    if (type == nullptr) {
      problems.push_back(where + ": [ molecules ] names " + quoted(m.name)
                         + ", which no molecule type defines");
      out.complete = false;
      return out;
    }
    const auto size = atom_count(*type, top.defines);
    const auto count = static_cast<std::size_t>(std::max<std::int64_t>(m.count, 0));
    if (!out.found && m.name == protein_molecule && count > 0) {
      out.found = true;
      p.first_atom = at;
      p.atoms = size;
      p.bonds = bonded_pairs(*type, top.defines);
    }
    if (std::find(membrane_molecules.begin(), membrane_molecules.end(), m.name)
        != membrane_molecules.end())
      for (std::size_t a = at; a < at + size * count; ++a)
        p.cv.membrane.push_back(a);
    at += size * count;
  }
  if (!out.found)
    problems.push_back(where + ": the protein molecule " + quoted(protein_molecule)
                       + " is not in the system's [ molecules ]");
  return out;
}

mdp production_params(const createsims_protocol& protocol) {
  mdp params;
  for (const auto& [k, v] : protocol.common)
    params.set(k, v);
  for (const auto& [k, v] : protocol.production.mdp)
    params.set(k, v);
  return params;
}

std::optional<fs::path> system_checkpoint(const createsims_result& system) {
  auto cpt = fs::path(system.structure).replace_extension(".cpt");
  if (!fs::exists(cpt))
    return std::nullopt;
  return cpt;
}

void set_run(mdp& params, std::int64_t nsteps, std::int64_t frame_steps, const std::string& group,
             bool continuing, std::uint64_t seed) {
  params.set("tinit", "0");
  params.set("init-step", "0");
  params.set("nsteps", std::to_string(nsteps));
  params.set("nstxout-compressed", std::to_string(frame_steps));
  params.set("compressed-x-grps", group);
  if (continuing) {
    params.set("gen-vel", "no");
    params.set("continuation", "yes");
    return;
  }
  params.set("gen-vel", "yes");
  const auto ref_t = split_fields(params.get("ref-t").value_or("310"));
  params.set("gen-temp", ref_t.empty() ? "310" : std::string(ref_t.front()));
  params.set("gen-seed", std::to_string(seed % 2147483647));
  params.set("continuation", "no");
}

grompp_input system_run_input(const createsims_result& system, const fs::path& mdp_file,
                              const fs::path& ndx, const fs::path& tpr, const fs::path& work_dir) {
  grompp_input in;
  in.mdp = mdp_file;
  in.structure = system.structure;
  in.topology = system.topology;
  in.index = ndx;
  in.checkpoint = system_checkpoint(system).value_or(fs::path{});
  in.output = tpr;
  in.work_dir = fs::absolute(work_dir);
  return in;
}

gmx_runner run_runner(const gmx_config& gmx) {
  auto env = gmx;
  env.environment.emplace_back("GMX_MAXBACKUP", "-1");
  return gmx_runner(env);
}

mdrun_result run_and_follow(const gmx_runner& runner, const fs::path& tpr, const fs::path& work_dir,
                            const mdrun_options& options, const fs::path& xtc,
                            const xtc_stream_options& reader_options,
                            const std::function<void(const xtc_frame&)>& take,
                            const std::atomic<bool>* cancel) {
  std::atomic<bool> stop{false}, finished{false};
  std::exception_ptr run_failure;
  mdrun_result run;
  std::thread run_thread([&] {
    try {
      run = runner.mdrun(tpr, work_dir, options, &stop);
    } catch (...) {
      run_failure = std::current_exception();
    }
    finished = true;
  });
  struct stop_and_join {
    std::thread& thread;
    std::atomic<bool>& stop;
    ~stop_and_join() {
      if (thread.joinable()) {
        stop = true;
        thread.join();
      }
    }
  } guard{run_thread, stop};

  xtc_stream_reader reader(xtc, reader_options);
  const auto cancelled = [&] {
    return finished.load() || (cancel != nullptr && cancel->load());
  };
  for (;;) {
    if (auto f = reader.wait_next(std::chrono::seconds(1), cancelled)) {
      take(*f);
      continue;
    }
    if (cancel != nullptr && cancel->load())
      stop = true; // mdrun's thread then ends with gmx_error(cancelled)
    if (finished.load())
      break;
  }
  run_thread.join();
  if (run_failure)
    std::rethrow_exception(run_failure);
  while (auto f = reader.try_next())
    take(*f);
  if (reader.pending_bytes() > 0)
    throw io_error(xtc, 0,
                   "ends with an incomplete frame at byte " + std::to_string(reader.offset())
                     + " after mdrun finished");
  return run;
}

} // namespace detail

namespace {

/// Heights of `atoms` gathered around their circular mean in a z period of `lz` (so that a
/// group split by the z boundary counts as one), averaged.
double gathered_mean_z(std::span<const vec3> positions, const std::vector<std::size_t>& atoms,
                       double lz) {
  constexpr double two_pi = 2 * std::numbers::pi;
  double c = 0, s = 0;
  for (auto a : atoms) {
    const double phase = two_pi * positions[a][2] / lz;
    c += std::cos(phase);
    s += std::sin(phase);
  }
  const double centre = std::atan2(s, c) / two_pi * lz;
  double sum = 0;
  for (auto a : atoms)
    sum += centre + detail::periodic_delta(positions[a][2] - centre, lz);
  return sum / static_cast<double>(atoms.size());
}

/// `locate_protein`'s work, appending problems instead of throwing.
protein_in_system locate(const topology& top, const std::string& protein_molecule,
                         const index_file& protein_groups, const std::string& domain_group,
                         const std::vector<std::string>& membrane_molecules,
                         std::vector<std::string>& problems) {
  auto search = detail::find_protein(top, protein_molecule, membrane_molecules, problems);
  protein_in_system p = std::move(search.protein);
  if (!search.complete)
    return p;
  const bool found = search.found;
  const auto where = top.path.empty() ? std::string("the system topology") : top.path.string();
  if (membrane_molecules.empty())
    problems.push_back("no membrane molecules named: give the lipid molecule types");
  else if (p.cv.membrane.empty()) {
    std::string names;
    for (const auto& n : membrane_molecules)
      names += (names.empty() ? "" : ", ") + n;
    problems.push_back(where + ": none of the membrane molecules (" + names
                       + ") is in the system's [ molecules ]");
  }
  const auto* group = protein_groups.find(domain_group);
  if (group == nullptr) {
    std::string names;
    for (const auto& g : protein_groups.groups)
      names += (names.empty() ? "" : ", ") + g.name;
    problems.push_back("the protein's index groups have no group " + quoted(domain_group)
                       + " (they are: " + (names.empty() ? "none" : names) + ")");
  } else if (group->atoms.empty()) {
    problems.push_back("the protein's index group " + quoted(domain_group) + " is empty");
  } else if (found) {
    for (auto a : group->atoms) {
      if (a < 1 || static_cast<std::size_t>(a) > p.atoms) {
        problems.push_back("the protein's index group " + quoted(domain_group) + " holds atom "
                           + std::to_string(a) + ", but molecule " + protein_molecule + " has "
                           + std::to_string(p.atoms) + " atoms");
        break;
      }
      p.cv.domain.push_back(p.first_atom + static_cast<std::size_t>(a - 1));
    }
  }
  return p;
}


/// The pull coordinate's value per step from mdrun's pull output (time and value columns).
std::map<std::int64_t, double> read_pull_output(const fs::path& path, double dt_ps) {
  const auto text = detail::read_text_file(path);
  std::map<std::int64_t, double> out;
  std::size_t line_no = 0;
  for (std::size_t at = 0; at < text.size();) {
    const auto end = std::min(text.find('\n', at), text.size());
    const auto line = detail::trim(std::string_view(text).substr(at, end - at));
    at = end + 1;
    ++line_no;
    if (line.empty() || line.front() == '#' || line.front() == '@')
      continue;
    const auto fields = detail::split_fields(line);
    std::optional<double> t, value;
    if (fields.size() >= 2) {
      t = detail::parse_real<double>(fields[0]);
      value = detail::parse_real<double>(fields[1]);
    }
    if (!t || !value || !std::isfinite(*value))
      throw io_error(path, line_no, "expected a time and a finite pull coordinate value");
    out[std::llround(*t / dt_ps)] = *value;
  }
  return out;
}

/// ns/day from the "Performance:" line of an md.log; nothing when there is none.
std::optional<double> read_ns_per_day(const fs::path& log) {
  const auto text = detail::read_text_file(log);
  const auto at = text.rfind("\nPerformance:");
  if (at == std::string::npos)
    return std::nullopt;
  const auto end = std::min(text.find('\n', at + 1), text.size());
  const auto fields = detail::split_fields(std::string_view(text).substr(at + 1, end - at - 1));
  if (fields.size() < 2)
    return std::nullopt;
  return detail::parse_real<double>(fields[1]);
}

/// Whole multiples of `dt` in `value`, when it is one (to a millionth of a step).

} // namespace

std::vector<atom_pair> bonded_pairs(const molecule_type& m,
                                    const std::set<std::string, std::less<>>& defines) {
  std::vector<atom_pair> out;
  for (const auto* section : {&m.bonds, &m.constraints})
    for (const auto& b : *section)
      if (b.atoms.size() >= 2 && holds(b.cond, defines) && b.atoms[0] >= 1 && b.atoms[1] >= 1)
        out.emplace_back(static_cast<std::size_t>(b.atoms[0] - 1),
                         static_cast<std::size_t>(b.atoms[1] - 1));
  return out;
}

whole_walk plan_whole_walk(std::size_t atoms, std::span<const atom_pair> bonds) {
  std::vector<std::vector<std::size_t>> neighbours(atoms);
  for (std::size_t k = 0; k < bonds.size(); ++k) {
    const auto [a, b] = bonds[k];
    if (a >= atoms || b >= atoms)
      throw md_error("bond " + std::to_string(k + 1) + " (atoms " + std::to_string(a + 1) + " "
                     + std::to_string(b + 1) + ") names an atom beyond the molecule's "
                     + std::to_string(atoms));
    neighbours[a].push_back(b);
    neighbours[b].push_back(a);
  }
  whole_walk walk;
  walk.atoms = atoms;
  if (atoms == 0)
    return walk;
  std::vector<bool> placed(atoms, false);
  std::deque<std::size_t> queue{0};
  placed[0] = true;
  while (!queue.empty()) {
    const auto from = queue.front();
    queue.pop_front();
    for (auto to : neighbours[from])
      if (!placed[to]) {
        placed[to] = true;
        walk.steps.emplace_back(from, to);
        queue.push_back(to);
      }
  }
  if (walk.steps.size() + 1 != atoms) {
    std::string first;
    std::size_t shown = 0;
    for (std::size_t a = 0; a < atoms && shown < 5; ++a)
      if (!placed[a]) {
        first += (shown++ ? ", " : "") + std::to_string(a + 1);
      }
    throw md_error(std::to_string(atoms - 1 - walk.steps.size())
                   + " atoms are bonded to atom 1 by no chain of bonds (atoms " + first
                   + (atoms - 1 - walk.steps.size() > shown ? ", ..." : "")
                   + ", 1-based): the molecule cannot be made whole");
  }
  return walk;
}

void make_whole(std::span<vec3> positions, const whole_walk& walk, const box_matrix& box) {
  if (positions.size() != walk.atoms)
    throw md_error("make_whole: " + std::to_string(positions.size())
                   + " positions for a molecule of " + std::to_string(walk.atoms) + " atoms");
  for (int d = 0; d < 3; ++d)
    if (!(box[d][d] > 0))
      throw md_error("make_whole: the box has no periodic edge along "
                     + std::string(1, static_cast<char>('x' + d)));
  for (const auto& [from, to] : walk.steps) {
    double dr[3];
    for (int d = 0; d < 3; ++d)
      dr[d] = static_cast<double>(positions[to][d]) - positions[from][d];
    // Along c first: only c has a z component, then b (no z), then a (x only).
    for (int v = 2; v >= 0; --v) {
      const double shift = std::round(dr[v] / box[v][v]);
      if (shift != 0)
        for (int d = 0; d < 3; ++d)
          dr[d] -= shift * box[v][d];
    }
    for (int d = 0; d < 3; ++d)
      positions[to][d] = static_cast<float>(positions[from][d] + dr[d]);
  }
}

void make_whole(std::span<vec3> positions, std::span<const atom_pair> bonds,
                const box_matrix& box) {
  make_whole(positions, plan_whole_walk(positions.size(), bonds), box);
}

double domain_height_nm(std::span<const vec3> positions, const box_matrix& box,
                        const cv_groups& groups) {
  const double lz = box[2][2];
  if (!(lz > 0))
    throw md_error("domain height: the box has no periodic edge along z");
  for (const auto* g : {&groups.domain, &groups.membrane}) {
    const char* name = g == &groups.domain ? "domain" : "membrane";
    if (g->empty())
      throw md_error(std::string("domain height: the ") + name + " group is empty");
    for (auto a : *g)
      if (a >= positions.size())
        throw md_error(std::string("domain height: the ") + name + " group holds atom "
                       + std::to_string(a + 1) + " of a structure of "
                       + std::to_string(positions.size()) + " atoms");
  }
  return detail::periodic_delta(gathered_mean_z(positions, groups.domain, lz)
                                  - gathered_mean_z(positions, groups.membrane, lz),
                                lz);
}

double domain_height_nm(const structure& s, const cv_groups& groups) {
  std::vector<vec3> positions;
  positions.reserve(s.atoms.size());
  for (const auto& a : s.atoms)
    positions.push_back(a.position_nm);
  return domain_height_nm(positions, s.box_nm, groups);
}

protein_in_system locate_protein(const topology& top, const std::string& protein_molecule,
                                 const index_file& protein_groups, const std::string& domain_group,
                                 const std::vector<std::string>& membrane_molecules) {
  std::vector<std::string> problems;
  auto p
    = locate(top, protein_molecule, protein_groups, domain_group, membrane_molecules, problems);
  if (!problems.empty())
    throw md_error(join_problems("cannot locate the protein's groups:", problems));
  return p;
}

std::size_t expected_frames(const ensemble_spec& spec) {
  if (!(spec.frame_ps > 0) || !(spec.run_ps > spec.discard_ps) || spec.discard_ps < 0)
    return 0;
  const auto last = static_cast<std::size_t>(std::floor(spec.run_ps / spec.frame_ps + 1e-6));
  const auto dropped
    = static_cast<std::size_t>(std::floor(spec.discard_ps / spec.frame_ps + 1e-6)) + 1;
  return last + 1 > dropped ? last + 1 - dropped : 0;
}

ensemble_result run_ensemble(const createsims_result& system, const createsims_protocol& protocol,
                             const ensemble_spec& spec, const fs::path& work_dir,
                             const gmx_config& gmx, const mdrun_options& mdrun_base,
                             const std::atomic<bool>* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto top = read_topology(system.topology);
  const auto start = read_gro(system.structure);

  // The run's parameters: the protocol's production physics.
  mdp params = detail::production_params(protocol);

  std::vector<std::string> problems;
  const auto dt = detail::parse_real<double>(params.get("dt").value_or(""));
  if (!dt || !(*dt > 0))
    problems.push_back("the protocol's production stage sets no positive time step (dt)");
  const double step_ps = dt && *dt > 0 ? *dt : 1;
  if (spec.name.empty() || spec.name.find('/') != std::string::npos)
    problems.push_back("name " + quoted(spec.name) + " cannot name files");
  if (!(spec.run_ps > 0))
    problems.push_back("run length " + detail::shortest(spec.run_ps) + " ps is not positive");
  if (!(spec.frame_ps > 0))
    problems.push_back("frame interval " + detail::shortest(spec.frame_ps) + " ps is not positive");
  if (!(spec.discard_ps >= 0))
    problems.push_back("discard time " + detail::shortest(spec.discard_ps) + " ps is negative");
  if (spec.run_ps > 0 && spec.discard_ps >= spec.run_ps)
    problems.push_back("discard time " + detail::shortest(spec.discard_ps)
                       + " ps is not shorter than the run (" + detail::shortest(spec.run_ps)
                       + " ps): no frame would be kept");
  else if (spec.run_ps > 0 && spec.frame_ps > 0 && expected_frames(spec) == 0)
    problems.push_back("zero frames wanted: no frame every " + detail::shortest(spec.frame_ps)
                       + " ps falls between the discard time " + detail::shortest(spec.discard_ps)
                       + " ps and the end of the run at " + detail::shortest(spec.run_ps) + " ps");
  if (dt && spec.run_ps > 0 && !steps_of(spec.run_ps, step_ps))
    problems.push_back("run length " + detail::shortest(spec.run_ps)
                       + " ps is not a multiple of the time step " + detail::shortest(step_ps)
                       + " ps");
  if (dt && spec.frame_ps > 0 && !steps_of(spec.frame_ps, step_ps))
    problems.push_back("frame interval " + detail::shortest(spec.frame_ps)
                       + " ps is not a multiple of the time step " + detail::shortest(step_ps)
                       + " ps");
  if (!(spec.force_constant_kj_mol_nm2 > 0))
    problems.push_back("force constant " + detail::shortest(spec.force_constant_kj_mol_nm2)
                       + " kJ/mol/nm^2 is not positive");
  // GROMACS refuses a pull distance beyond 0.49 of the box along the pulled dimension.
  const double max_reference = 0.49 * start.box_nm[2][2];
  if (!(std::abs(spec.reference_nm) < max_reference))
    problems.push_back("reference " + detail::shortest(spec.reference_nm) + " nm is beyond 0.49 of "
                       + system.structure.string() + "'s box height ("
                       + detail::shortest(max_reference) + " nm)");
  const auto protein = locate(top, spec.protein_molecule, spec.protein_groups, spec.domain_group,
                              spec.membrane_molecules, problems);
  if (problems.empty() && protein.first_atom + protein.atoms > start.atoms.size())
    problems.push_back(system.structure.string() + " has " + std::to_string(start.atoms.size())
                       + " atoms, fewer than the topology places before the protein's end");
  if (!problems.empty())
    throw md_error(join_problems("ensemble " + quoted(spec.name) + ":", problems));
  const auto walk = plan_whole_walk(protein.atoms, protein.bonds);
  const auto nsteps = *steps_of(spec.run_ps, step_ps);
  const auto frame_steps = *steps_of(spec.frame_ps, step_ps);
  const auto discard_steps
    = static_cast<std::int64_t>(std::floor(spec.discard_ps / step_ps + 1e-6));
  const auto wanted = expected_frames(spec);

  fs::create_directories(work_dir);
  const auto path = [&](const std::string& suffix) {
    return fs::absolute(work_dir / (spec.name + suffix));
  };
  for (const char* suffix : {".mdp", ".ndx", ".tpr", ".xtc", ".gro", ".cpt", "_prev.cpt", ".log",
                             ".edr", "_pullx.xvg", ".stdout", ".stderr"})
    fs::remove(path(suffix)); // a stale trajectory must not be read as this run's

  // Index groups: createsims' (the thermostat's Solvent and Rest) and the run's own.
  auto index = read_ndx(system.index);
  const std::string protein_group = "mummi_protein", membrane_group = "mummi_membrane",
                    domain_group = "mummi_pulled";
  index.add_group(protein_group, numbers_1_based(protein.first_atom, protein.atoms));
  index.add_group(membrane_group, numbers_1_based(protein.cv.membrane));
  index.add_group(domain_group, numbers_1_based(protein.cv.domain));
  write_ndx(index, path(".ndx"));

  // The membrane's reference atom for periodic boundaries: its bead nearest its mid-plane.
  std::vector<vec3> start_positions;
  start_positions.reserve(start.atoms.size());
  for (const auto& a : start.atoms)
    start_positions.push_back(a.position_nm);
  const double lz = start.box_nm[2][2];
  const double mid = gathered_mean_z(start_positions, protein.cv.membrane, lz);
  const auto pbc_atom = *std::min_element(
    protein.cv.membrane.begin(), protein.cv.membrane.end(), [&](std::size_t a, std::size_t b) {
      return std::abs(detail::periodic_delta(start_positions[a][2] - mid, lz))
        < std::abs(detail::periodic_delta(start_positions[b][2] - mid, lz));
    });

  detail::set_run(params, nsteps, frame_steps, protein_group,
                  detail::system_checkpoint(system).has_value(), spec.seed);
  // The restraint: an umbrella on the z distance from the membrane's centre of mass to the
  // domain's. The membrane, not the protein's anchor, is the reference because (1) the
  // restrained coordinate is then the collective variable itself (the domain's height above the
  // membrane mid-plane), so the ensembles' CV distributions are what the restraint sets; and
  // (2) the reaction force is spread over every lipid bead, where a reference on the anchor
  // would push the anchor through the bilayer while the domain is pulled away. Periodic
  // boundaries: only z is pulled (the membrane spans the box in x and y, so its x and y centre
  // is undefined); along z the bilayer (~5 nm) is thinner than half the box, and its centre is
  // taken relative to the previous step's centre, seeded from a bead at the mid-plane, so it
  // stays right as the membrane drifts. The domain is compact; GROMACS' default reference atom
  // serves it.
  params.set("pull", "yes");
  params.set("pull-ngroups", "2");
  params.set("pull-ncoords", "1");
  params.set("pull-group1-name", membrane_group);
  params.set("pull-group1-pbcatom", std::to_string(pbc_atom + 1));
  params.set("pull-pbc-ref-prev-step-com", "yes");
  params.set("pull-group2-name", domain_group);
  params.set("pull-coord1-type", "umbrella");
  params.set("pull-coord1-geometry", "direction");
  params.set("pull-coord1-vec", "0 0 1");
  params.set("pull-coord1-dim", "N N Y");
  params.set("pull-coord1-groups", "1 2");
  params.set("pull-coord1-start", "no");
  params.set("pull-coord1-init", detail::shortest(spec.reference_nm));
  params.set("pull-coord1-rate", "0");
  params.set("pull-coord1-k", detail::shortest(spec.force_constant_kj_mol_nm2));
  params.set("pull-nstxout", std::to_string(frame_steps));
  params.set("pull-nstfout", "0");
  write_mdp(params, path(".mdp"));

  const auto runner = detail::run_runner(gmx);
  const auto in = detail::system_run_input(system, path(".mdp"), path(".ndx"), path(".tpr"),
                                           work_dir);
  runner.grompp(in, cancel);

  auto options = mdrun_base;
  options.deffnm = spec.name;
  options.checkpoint.clear();
  options.extra_args.insert(options.extra_args.end(), {"-px", path("_pullx.xvg").string()});

  ensemble_result result;
  result.trajectory = path(".xtc");
  result.pull_output = path("_pullx.xvg");
  result.frames.atoms = protein.atoms;
  const auto take = [&](const xtc_frame& f) {
    if (f.natoms != protein.atoms)
      throw io_error(result.trajectory, 0,
                     "the frame at byte " + std::to_string(f.offset) + " holds "
                       + std::to_string(f.natoms) + " atoms, not the protein's "
                       + std::to_string(protein.atoms));
    if (f.step <= discard_steps)
      return;
    std::vector<vec3> x = f.positions_nm;
    make_whole(x, walk, f.box_nm);
    for (const auto& p : x)
      result.frames.positions_nm.insert(result.frames.positions_nm.end(), p.begin(), p.end());
    coupling::frame_meta m;
    m.step = f.step;
    m.time_ps = static_cast<double>(f.step) * step_ps;
    m.label = spec.label;
    m.source = spec.source;
    result.frames.meta.push_back(m);
  };
  result.run = detail::run_and_follow(runner, in.output, in.work_dir, options, result.trajectory,
                                      {}, take, cancel);
  if (result.frames.frames() != wanted)
    throw io_error(result.trajectory, 0,
                   "holds " + std::to_string(result.frames.frames())
                     + " frames after the discard time, expected " + std::to_string(wanted));

  const auto pull = read_pull_output(result.pull_output, step_ps);
  for (const auto& m : result.frames.meta) {
    const auto it = pull.find(m.step);
    if (it == pull.end())
      throw io_error(result.pull_output, 0,
                     "has no pull coordinate at step " + std::to_string(m.step) + " (t = "
                       + detail::shortest(m.time_ps) + " ps), a frame of the trajectory");
    result.cv_nm.push_back(it->second);
  }
  result.final_structure = result.run.confout;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto measured = read_ns_per_day(result.run.log);
  result.ns_per_day
    = measured ? *measured : spec.run_ps / 1000 / (std::max(result.run.seconds, 1e-9) / 86400);
  return result;
}

} // namespace mummi::md
