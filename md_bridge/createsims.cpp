#include "mummi/md_bridge/createsims.hpp"

#include "periodic.hpp"
#include "text_file.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "mummi/md_bridge/gro.hpp"
#include "mummi/md_bridge/mdp.hpp"
#include "mummi/md_bridge/ndx.hpp"

namespace mummi::md {

namespace {

namespace fs = std::filesystem;

mdp_entries thermostat_and_barostat() {
  return {
    {"tcoupl", "v-rescale"}, {"tc-grps", "Solvent Rest"},      {"tau-t", "1.0 1.0"},
    {"ref-t", "310 310"},    {"pcoupl", "c-rescale"},          {"pcoupltype", "semiisotropic"},
    {"tau-p", "4.0"},        {"compressibility", "3e-4 3e-4"}, {"ref-p", "1.0 1.0"}};
}

md_stage dynamics(std::string name, const char* dt_ps, const char* steps, bool restrained,
                  bool first) {
  md_stage s{std::move(name), {{"integrator", "md"}, {"dt", dt_ps}, {"nsteps", steps}}, restrained};
  if (restrained)
    s.mdp.insert(s.mdp.end(), {{"define", "-DPOSRES"}, {"refcoord-scaling", "all"}});
  for (auto& e : thermostat_and_barostat())
    s.mdp.push_back(std::move(e));
  if (first)
    s.mdp.insert(s.mdp.end(), {{"gen-vel", "yes"}, {"gen-temp", "310"}});
  else
    s.mdp.insert(s.mdp.end(), {{"gen-vel", "no"}, {"continuation", "yes"}});
  s.mdp.insert(s.mdp.end(), {{"nstenergy", "100"}, {"nstcalcenergy", "100"}, {"nstlog", "1000"}});
  return s;
}

/// The atoms of `s` grouped as the builder wrote them: (molecule name, first atom, atoms each,
/// count).
struct block_span {
  std::string name;
  std::size_t first = 0;
  std::size_t size = 0;
  std::size_t count = 0;
};

std::vector<block_span> spans_of(const topology& t) {
  std::vector<block_span> out;
  std::size_t at = 0;
  for (const auto& m : t.molecules) {
    if (!holds(m.cond, t.defines))
      continue;
    const auto* type = find_molecule_type(t, m.name);
    if (type == nullptr)
      throw md_error("topology: unknown molecule " + m.name);
    const auto size = atom_count(*type, t.defines);
    out.push_back({m.name, at, size, static_cast<std::size_t>(m.count)});
    at += size * static_cast<std::size_t>(m.count);
  }
  return out;
}

/// Height of the bilayer mid-plane over a coarse xy grid, so that an undulating membrane is
/// judged locally: per cell, halfway between the mean z of the upper leaflet's lipid beads and
/// that of the lower leaflet's; a cell holding beads of one leaflet only (next to a protein)
/// is that leaflet's mean less half the bilayer's mean thickness; an empty cell takes the
/// global mid-plane. The box must be rectangular-ish with positive x and y edges.
class midplane {
public:
  midplane(const structure& s, const std::vector<std::size_t>& upper_atoms,
           const std::vector<std::size_t>& lower_atoms, double cell_nm)
    : lx_(s.box_nm[0][0]), ly_(s.box_nm[1][1]) {
    n_ = std::max<std::size_t>(1, static_cast<std::size_t>(std::min(lx_, ly_) / cell_nm));
    struct sums {
      std::vector<double> z;
      std::vector<std::size_t> n;
      double all = 0;
      double mean() const {
        std::size_t total = 0;
        for (auto k : n)
          total += k;
        return total ? all / static_cast<double>(total) : 0;
      }
    };
    auto collect = [&](const std::vector<std::size_t>& atoms) {
      sums r{std::vector<double>(n_ * n_, 0.0), std::vector<std::size_t>(n_ * n_, 0), 0};
      for (auto i : atoms) {
        const auto& p = s.atoms[i].position_nm;
        auto c = cell(p[0], p[1]);
        r.z[c] += p[2];
        ++r.n[c];
        r.all += p[2];
      }
      return r;
    };
    const auto up = collect(upper_atoms), lo = collect(lower_atoms);
    const double half = (up.mean() - lo.mean()) / 2;
    mean_ = (up.mean() + lo.mean()) / 2;
    z_.resize(n_ * n_);
    for (std::size_t c = 0; c < z_.size(); ++c) {
      const bool u = up.n[c] > 0, l = lo.n[c] > 0;
      const double zu = u ? up.z[c] / static_cast<double>(up.n[c]) : 0;
      const double zl = l ? lo.z[c] / static_cast<double>(lo.n[c]) : 0;
      z_[c] = u && l ? (zu + zl) / 2 : u ? zu - half : l ? zl + half : mean_;
    }
  }
  double at(double x, double y) const {
    return z_[cell(x, y)];
  }
  double mean() const {
    return mean_;
  }

private:
  std::size_t cell(double x, double y) const {
    return detail::periodic_cell(y, ly_, n_) * n_ + detail::periodic_cell(x, lx_, n_);
  }
  double lx_, ly_;
  std::size_t n_ = 1;
  std::vector<double> z_;
  double mean_ = 0;
};

std::string describe(const std::vector<molecule_block>& v) {
  std::string s;
  for (const auto& b : v)
    s += (s.empty() ? "" : ", ") + b.name + " " + std::to_string(b.count);
  return s.empty() ? "none" : s;
}

} // namespace

system_checks check_system(const fs::path& gro, const fs::path& top,
                           const std::vector<molecule_block>& upper_target,
                           const std::vector<molecule_block>& lower_target,
                           const membrane_recipe& recipe, double core_half_nm) {
  system_checks c;
  const auto s = read_gro(gro);
  const auto t = read_topology(top);
  c.atoms = s.atoms.size();
  c.topology_atoms = atom_count(t);
  c.net_charge = net_charge(t);
  if (c.atoms != c.topology_atoms)
    c.problems.push_back(gro.filename().string() + " has " + std::to_string(c.atoms)
                         + " atoms but the topology counts " + std::to_string(c.topology_atoms));
  if (std::abs(c.net_charge) > 1e-3)
    c.problems.push_back("net charge is " + std::to_string(c.net_charge) + " e, not 0");
  const bool boxed = s.box_nm[0][0] > 0 && s.box_nm[1][1] > 0;
  if (!boxed)
    c.problems.push_back(gro.filename().string()
                         + " has no periodic box (x and y edges must be > 0)");
  if (c.atoms != c.topology_atoms || !boxed)
    return c;

  std::set<std::string> lipids;
  for (const auto& b : upper_target)
    lipids.insert(b.name);
  for (const auto& b : lower_target)
    lipids.insert(b.name);
  const std::set<std::string> solvent = {recipe.solvent, recipe.cation, recipe.anion};
  std::vector<std::size_t> lipid_atoms, solvent_atoms;
  const auto spans = spans_of(t);
  for (const auto& sp : spans) {
    for (std::size_t a = sp.first; a < sp.first + sp.size * sp.count; ++a) {
      if (lipids.count(sp.name))
        lipid_atoms.push_back(a);
      else if (solvent.count(sp.name))
        solvent_atoms.push_back(a);
    }
  }
  // A first plane from all lipid beads sorts the lipids into leaflets by the side of their
  // first bead (the head group); the plane used for the checks then comes from the leaflets.
  const midplane rough(s, lipid_atoms, lipid_atoms, 1.5);
  std::vector<std::size_t> upper_atoms, lower_atoms;
  for (const auto& sp : spans) {
    if (!lipids.count(sp.name))
      continue;
    for (std::size_t k = 0; k < sp.count; ++k) {
      const auto first = sp.first + k * sp.size;
      const auto& p = s.atoms[first].position_nm;
      auto& side = p[2] > rough.at(p[0], p[1]) ? upper_atoms : lower_atoms;
      for (std::size_t a = first; a < first + sp.size; ++a)
        side.push_back(a);
    }
  }
  const midplane mid(s, upper_atoms, lower_atoms, 1.5);
  std::map<std::string, std::size_t> upper, lower;
  double head_z[2] = {0, 0};
  std::size_t heads[2] = {0, 0};
  for (const auto& sp : spans) {
    if (!lipids.count(sp.name))
      continue;
    for (std::size_t k = 0; k < sp.count; ++k) {
      const auto& p = s.atoms[sp.first + k * sp.size].position_nm;
      const double dz = p[2] - mid.at(p[0], p[1]);
      ++(dz > 0 ? upper : lower)[sp.name];
      head_z[dz > 0 ? 0 : 1] += dz;
      ++heads[dz > 0 ? 0 : 1];
    }
  }
  if (heads[0] > 0 && heads[1] > 0)
    c.head_distance_nm
      = head_z[0] / static_cast<double>(heads[0]) - head_z[1] / static_cast<double>(heads[1]);
  if (c.head_distance_nm < 2.0)
    c.problems.push_back("the leaflets' head groups are " + std::to_string(c.head_distance_nm)
                         + " nm apart on average: the bilayer is not intact");
  auto compare
    = [&c](const char* which, const std::vector<molecule_block>& target,
           std::map<std::string, std::size_t>& found, std::vector<molecule_block>& found_out) {
        bool off = false;
        for (const auto& b : target) {
          found_out.push_back({b.name, found[b.name]});
          auto diff = static_cast<long long>(found[b.name]) - static_cast<long long>(b.count);
          off = off || diff > 1 || diff < -1;
        }
        if (off)
          c.problems.push_back(std::string(which) + " leaflet holds " + describe(found_out)
                               + ", target " + describe(target) + " (more than one lipid off)");
      };
  c.upper_target = upper_target;
  c.lower_target = lower_target;
  compare("upper", upper_target, upper, c.upper_found);
  compare("lower", lower_target, lower, c.lower_found);
  for (auto a : solvent_atoms) {
    const auto& p = s.atoms[a].position_nm;
    if (std::abs(p[2] - mid.at(p[0], p[1])) < core_half_nm)
      ++c.solvent_in_core;
  }
  if (c.solvent_in_core > 0)
    c.problems.push_back(std::to_string(c.solvent_in_core) + " solvent beads within "
                         + std::to_string(core_half_nm) + " nm of the membrane mid-plane");
  return c;
}

namespace {

void write_stage_mdp(const mdp_entries& common, const md_stage& stage, std::uint64_t seed,
                     const fs::path& path) {
  mdp f;
  for (const auto& [k, v] : common)
    f.set(k, v);
  for (const auto& [k, v] : stage.mdp)
    f.set(k, v);
  if (f.get("gen-vel").value_or("no") == "yes")
    f.set("gen-seed", std::to_string(seed % 2147483647));
  write_mdp(f, path);
}

/// grompp's input for `stage` in `dir`, starting from `start` (and its checkpoint, if any).
grompp_input stage_input(const fs::path& dir, const md_stage& stage, const fs::path& start,
                         const fs::path& checkpoint) {
  grompp_input in;
  in.mdp = dir / (stage.name + ".mdp");
  in.structure = start;
  in.topology = dir / "topol.top";
  in.index = dir / "index.ndx";
  if (stage.restrained)
    in.restraint_reference = start;
  in.checkpoint = checkpoint;
  in.output = dir / (stage.name + ".tpr");
  in.work_dir = dir;
  return in;
}

mdrun_options stage_options(const mdrun_options& base, const std::string& name,
                            const createsims_protocol& protocol) {
  auto o = base;
  o.deffnm = name;
  o.checkpoint.clear();
  o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(protocol.stage_timeout);
  return o;
}

std::string join_problems(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v)
    s += "\n  " + p;
  return s;
}

} // namespace

createsims_protocol default_protocol() {
  createsims_protocol p;
  p.common = {{"cutoff-scheme", "Verlet"},
              {"nstlist", "20"},
              {"pbc", "xyz"},
              {"coulombtype", "reaction-field"},
              {"rcoulomb", "1.1"},
              {"epsilon-r", "15"},
              {"epsilon-rf", "0"},
              {"vdw-type", "cutoff"},
              {"vdw-modifier", "potential-shift-verlet"},
              {"rvdw", "1.1"}};
  p.minimisation
    = {"em",
       {{"integrator", "steep"}, {"nsteps", "1500"}, {"emtol", "100"}, {"define", "-DPOSRES"}},
       true};
  p.equilibration
    = {dynamics("eq1", "0.002", "2500", true, true), dynamics("eq2", "0.01", "2000", true, false),
       dynamics("eq3", "0.02", "1000", false, false)};
  p.production = dynamics("production", "0.02", "-1", false, false);
  p.production.mdp.insert(p.production.mdp.end(),
                          {{"nstxout-compressed", "25000"},
                           {"nstlog", "5000"},
                           {"nstenergy", "5000"},
                           {"nstcalcenergy", "100"}});
  return p;
}

system_spec demo_system(const fs::path& data_dir) {
  system_spec s;
  for (const char* f : {"forcefield.itp", "solvent.itp", "lipids.itp", "protein.itp"})
    s.includes.push_back(data_dir / f);
  s.protein_molecule = "DPR";
  s.anchor_atom = 0;
  s.anchor_depth_nm = 0.3;
  auto& r = s.recipe;
  r.box_x_nm = r.box_y_nm = 9;
  r.box_z_nm = 13;
  r.upper.lipids = {{"DPC", 0.7}, {"DST", 0.3}};
  r.lower.lipids = {{"DPC", 0.5}, {"DPS", 0.3}, {"DST", 0.2}};
  r.salt_molar = 0.15;
  return s;
}

void write_protein_topology(const system_spec& spec, const fs::path& top,
                            const std::string& system_name) {
  topology t;
  for (const auto& f : spec.includes)
    add_include(t, fs::absolute(f).string());
  t.system_name = system_name;
  t.molecules = {{spec.protein_molecule, 1, {}}};
  write_top(t, top);
}

std::map<std::string, double> read_md_averages(const fs::path& log) {
  const auto text = detail::read_text_file(log);
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < text.size();) {
    const auto end = std::min(text.find('\n', at), text.size());
    lines.emplace_back(text, at, end - at);
    at = end + 1;
  }
  std::size_t at = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (lines[i].find("A V E R A G E S") != std::string::npos)
      at = i;
  if (at == lines.size())
    throw io_error(log, 0, "no averages: the run did not finish");
  // Names stand right-aligned in 15-character columns over a line of as many numbers.
  std::map<std::string, double> out;
  for (std::size_t i = at + 1; i + 1 < lines.size(); ++i) {
    const auto& names = lines[i];
    if (names.find("Total Virial") != std::string::npos
        || names.find("M E G A") != std::string::npos)
      break;
    std::istringstream values(lines[i + 1]);
    std::vector<double> v;
    for (std::string w; values >> w;) {
      char* end = nullptr;
      double d = std::strtod(w.c_str(), &end);
      if (end != w.c_str() + w.size()) {
        v.clear();
        break;
      }
      v.push_back(d);
    }
    if (v.empty() || names.size() < 15 * v.size())
      continue;
    for (std::size_t k = 0; k < v.size(); ++k) {
      auto name = names.substr(names.size() - 15 * (v.size() - k), 15);
      auto b = name.find_first_not_of(' ');
      if (b != std::string::npos)
        out.emplace(name.substr(b), v[k]);
    }
    ++i;
  }
  return out;
}

std::vector<lipid_template> lipid_templates_from(const topology& t) {
  std::vector<lipid_template> out;
  for (const auto& m : t.molecule_types)
    for (const auto& a : m.annotations) {
      static constexpr std::string_view tag = ";@INSANE";
      if (a.rfind(tag, 0) != 0)
        continue;
      auto form = parse_insane_form(std::string_view(a).substr(tag.size()), m.source, 0);
      std::vector<std::string> names;
      for (const auto& atom : m.atoms)
        if (holds(atom.cond, t.defines))
          names.push_back(atom.atom_name);
      if (form.name != m.name)
        throw io_error(m.source, 0,
                       "the ;@INSANE line of molecule " + m.name + " names lipid " + form.name);
      out.push_back(make_lipid_template(form, std::move(names)));
    }
  return out;
}

createsims_result run_createsims(const system_spec& spec, const createsims_protocol& protocol,
                                 const structure& protein, const fs::path& dir, std::uint64_t seed,
                                 const gmx_config& gmx, const mdrun_options& mdrun,
                                 const std::atomic<bool>* cancel) {
  fs::create_directories(dir);
  createsims_result result;

  // The topology of the molecule files alone gives the lipid templates and the protein.
  topology includes_only;
  for (const auto& f : spec.includes)
    add_include(includes_only, fs::absolute(f).string());
  const auto molecules = parse_topology(format_top(includes_only), dir / "molecules.top");
  auto templates = lipid_templates_from(molecules);
  if (!spec.lipid_templates.empty())
    for (auto& t : read_lipid_templates(spec.lipid_templates))
      templates.push_back(std::move(t));
  const auto* protein_type = find_molecule_type(molecules, spec.protein_molecule);
  if (protein_type == nullptr)
    throw recipe_error({"protein molecule '" + spec.protein_molecule
                        + "' is defined in none of the system's molecule files"});
  if (atom_count(*protein_type, molecules.defines) != protein.atoms.size())
    throw recipe_error({"protein structure has " + std::to_string(protein.atoms.size())
                        + " atoms but molecule " + spec.protein_molecule + " has "
                        + std::to_string(atom_count(*protein_type, molecules.defines))});
  // Every molecule the builder writes must be defined, with as many atoms as its template
  // (otherwise grompp would fail on every build).
  std::vector<std::string> problems;
  for (const auto& name : {spec.recipe.solvent, spec.recipe.cation, spec.recipe.anion})
    if (const auto* m = find_molecule_type(molecules, name); m == nullptr)
      problems.push_back("molecule '" + name
                         + "' (solvent or ion) is defined in none of the "
                           "system's molecule files");
    else if (atom_count(*m, molecules.defines) != 1)
      problems.push_back("molecule '" + name + "' (solvent or ion) must have one atom");
  for (const auto& t : templates)
    if (const auto* m = find_molecule_type(molecules, t.name); m == nullptr)
      problems.push_back("lipid '" + t.name + "' has a template but no molecule file defines it");
    else if (atom_count(*m, molecules.defines) != t.bead_names.size())
      problems.push_back("lipid '" + t.name + "': its template has "
                         + std::to_string(t.bead_names.size()) + " beads, its molecule "
                         + std::to_string(atom_count(*m, molecules.defines)) + " atoms");
  if (!problems.empty())
    throw recipe_error(std::move(problems));
  auto protein_only = molecules;
  protein_only.molecules = {{spec.protein_molecule, 1, {}}};
  const double protein_charge = net_charge(protein_only);

  membrane_recipe recipe = spec.recipe;
  protein_placement placement;
  placement.coordinates = protein;
  placement.molecule_name = spec.protein_molecule;
  placement.charge = protein_charge;
  placement.anchor_atom = spec.anchor_atom;
  placement.x_nm = recipe.box_x_nm / 2;
  placement.y_nm = recipe.box_y_nm / 2;
  placement.depth_nm = spec.anchor_depth_nm;
  recipe.protein = placement;

  const auto gro = dir / "system.gro";
  const auto top = dir / "topol.top";
  const auto ndx = dir / "index.ndx";
  // Rebuilds rerun every stage in the same directory: no numbered backups of old files.
  auto gmx_env = gmx;
  gmx_env.environment.emplace_back("GMX_MAXBACKUP", "-1");
  gmx_runner runner(gmx_env);
  built_membrane built;
  std::vector<std::string> failures;
  fs::path current, checkpoint;
  // One attempt: build, minimise, equilibrate, check. A physical failure (GROMACS errors other
  // than timeout, cancellation or a missing program; a minimisation that ends too high; an
  // equilibrated system failing its checks) starts the next build with a new seed.
  auto run_stage = [&](const md_stage& stage, const fs::path& start_from) {
    const auto t0 = std::chrono::steady_clock::now();
    write_stage_mdp(protocol.common, stage, result.seed, dir / (stage.name + ".mdp"));
    for (const char* ext : {".tpr", ".gro", ".cpt", ".log", ".edr", ".trr", ".xtc"})
      fs::remove(dir / (stage.name + ext)); // nothing of an earlier build is taken for this one
    try {
      runner.grompp(stage_input(dir, stage, start_from, checkpoint), cancel);
    } catch (const gmx_error& e) {
      // grompp fails on its inputs, which another build would not change.
      if (e.what_kind() != gmx_error::kind::fatal_error)
        throw;
      throw md_error("createsims: grompp refused stage " + stage.name + ": " + e.what());
    }
    runner.mdrun(dir / (stage.name + ".tpr"), dir, stage_options(mdrun, stage.name, protocol),
                 cancel);
    result.stages.push_back(
      {stage.name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
       result.builds});
    current = dir / (stage.name + ".gro");
    checkpoint = dir / (stage.name + ".cpt");
    if (!fs::exists(current))
      throw gmx_error(gmx_error::kind::crashed,
                      "stage " + stage.name + " ended without writing " + current.string());
  };
  for (int attempt = 1;; ++attempt) {
    recipe.seed = seed + static_cast<std::uint64_t>(attempt - 1) * 7919;
    result.builds = static_cast<std::size_t>(attempt);
    result.seed = recipe.seed;
    result.stages.clear();
    checkpoint.clear();
    built = build_membrane(recipe, templates);
    write_gro(built.coordinates, gro);
    topology t = includes_only;
    t.system_name = "mummi createsims " + spec.protein_molecule;
    for (const auto& b : built.molecules)
      t.molecules.push_back({b.name, static_cast<std::int64_t>(b.count), {}});
    write_top(t, top);
    index_file index;
    std::vector<std::int32_t> rest, solvent;
    for (std::size_t i = 1; i <= built.coordinates.atoms.size(); ++i)
      (i <= built.solute_atoms ? rest : solvent).push_back(static_cast<std::int32_t>(i));
    index.add_group("Rest", std::move(rest));
    index.add_group("Solvent", std::move(solvent));
    write_ndx(index, ndx);

    std::string failure;
    try {
      run_stage(protocol.minimisation, gro);
      result.minimisation = read_em_result(dir / (protocol.minimisation.name + ".log"));
      const auto& r = result.minimisation;
      if (!std::isfinite(r.epot_kj_mol) || !std::isfinite(r.fmax_kj_mol_nm)
          || r.fmax_kj_mol_nm > protocol.max_fmax_kj_mol_nm)
        failure = "minimisation ended with Epot " + std::to_string(r.epot_kj_mol) + " kJ/mol, Fmax "
          + std::to_string(r.fmax_kj_mol_nm) + " kJ/mol/nm";
      checkpoint.clear(); // a minimisation's state carries no velocities
      for (std::size_t i = 0; failure.empty() && i < protocol.equilibration.size(); ++i)
        run_stage(protocol.equilibration[i], current);
      if (failure.empty()) {
        result.checks = check_system(current, top, built.upper, built.lower, spec.recipe,
                                     protocol.core_half_thickness_nm);
        if (!result.checks.problems.empty())
          failure = current.filename().string()
            + " fails its checks:" + join_problems(result.checks.problems);
      }
    } catch (const gmx_error& e) {
      if (e.what_kind() == gmx_error::kind::timeout || e.what_kind() == gmx_error::kind::cancelled
          || e.what_kind() == gmx_error::kind::not_found)
        throw;
      failure = e.what();
    }
    if (failure.empty())
      break;
    failures.push_back("build " + std::to_string(attempt) + " (seed " + std::to_string(recipe.seed)
                       + "): " + failure);
    if (attempt >= protocol.max_builds)
      throw md_error("createsims: no build passed, every one of " + std::to_string(attempt)
                     + " builds failed:" + join_problems(failures));
  }
  result.failed_builds = std::move(failures);

  const auto& prod = protocol.production;
  write_stage_mdp(protocol.common, prod, result.seed, dir / (prod.name + ".mdp"));
  runner.grompp(stage_input(dir, prod, current, checkpoint), cancel);
  result.production_tpr = dir / (prod.name + ".tpr");
  result.structure = current;
  result.topology = top;
  result.index = ndx;
  return result;
}

createsims_result createsims_output(const fs::path& dir, const createsims_protocol& protocol) {
  createsims_result r;
  r.production_tpr = dir / (protocol.production.name + ".tpr");
  r.topology = dir / "topol.top";
  r.index = dir / "index.ndx";
  r.structure = protocol.equilibration.empty()
    ? dir / (protocol.minimisation.name + ".gro")
    : dir / (protocol.equilibration.back().name + ".gro");
  for (const auto* f : {&r.production_tpr, &r.topology, &r.index, &r.structure})
    if (!fs::is_regular_file(*f))
      throw io_error(*f, 0, "missing: " + dir.string() + " holds no finished createsims output");
  return r;
}

} // namespace mummi::md
