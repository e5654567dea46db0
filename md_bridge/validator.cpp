#include "mummi/md_bridge/validator.hpp"

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "mummi/md_bridge/gro.hpp"
#include "validator_rerun.hpp"
#include "validator_tpr.hpp"

namespace mummi::md {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

struct validator::caches {
  struct entry {
    bool building = false;    ///< a worker is making (and checking) it
    bool unavailable = false; ///< checked: reusing this stage's .tpr does not reproduce grompp
    std::size_t seen = 0;     ///< inputs asked for (a template is made at the second)
    std::shared_ptr<const detail::tpr_template> tpr;
  };
  std::mutex mutex;
  /// Run-input templates by mdp file and box line of the .gro.
  std::map<std::pair<std::string, std::string>, entry> entries;
  /// Rerun inputs by box line (a rerun takes its coordinates from the frames, so one .tpr
  /// serves every structure in that box).
  std::mutex rerun_mutex;
  std::map<std::string, fs::path> rerun_tprs;
  /// Whether rerun decisions agree with stage 2 (checked on the first rerun that decides).
  enum class trust { unknown, checking, trusted, refused };
  std::atomic<trust> rerun_trust{trust::unknown};
  std::atomic<std::size_t> grompp{0}, reused{0}, reruns{0}, decided_by_rerun{0};
};

namespace {

/// Wall-clock budget of one structure: its own run time, paused while it waits.
class structure_budget {
public:
  explicit structure_budget(std::chrono::milliseconds limit) : limit_(limit) {}
  void resume() {
    resumed_ = clock_type::now();
  }
  void pause() {
    used_ += clock_type::now() - resumed_;
  }
  void add(clock_type::duration d) {
    used_ += d;
  }
  /// What is left while running (at least 1 ms, so that a run over it reports its timeout).
  std::chrono::milliseconds left() const {
    auto spent = used_ + (clock_type::now() - resumed_);
    return std::max(std::chrono::milliseconds{1},
                    std::chrono::duration_cast<std::chrono::milliseconds>(limit_ - spent));
  }
  double seconds() const {
    return std::chrono::duration<double>(used_).count();
  }

private:
  std::chrono::milliseconds limit_;
  clock_type::duration used_{};
  clock_type::time_point resumed_ = clock_type::now();
};

} // namespace

struct validator::started {
  std::size_t index = 0;
  const structure* input = nullptr; ///< the caller's
  structure placed;                 ///< as the protocol starts from it
  fs::path dir;                     ///< removed with this object unless files are kept
  em_result em1;
  std::string box;                           ///< box line of stage1.gro
  std::optional<validation_verdict> verdict; ///< set when stage 1 already decided
  structure_budget budget;
  bool keep = false;

  started(std::chrono::milliseconds limit, bool keep_files) : budget(limit), keep(keep_files) {}
  started(const started&) = delete;
  started& operator=(const started&) = delete;
  ~started() {
    if (!dir.empty() && !keep) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  }
};

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

std::string number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc{} ? std::string(buf, end) : std::to_string(v);
}

std::string short_number(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v;
  return s.str();
}

/// Molecule types named in the [ molecules ] section of the .top file itself.
std::vector<std::string> listed_molecule_types(const fs::path& top) {
  std::ifstream in(top);
  if (!in)
    throw io_error(top, 0, "cannot read the topology");
  std::vector<std::string> names;
  std::string line, section;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find(';'));
    std::istringstream words(line);
    std::string first;
    if (!(words >> first))
      continue;
    if (first.front() == '[') {
      auto open = line.find('['), close = line.find(']');
      section = close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
      section.erase(std::remove_if(section.begin(), section.end(),
                                   [](unsigned char ch) {
                                     return std::isspace(ch) != 0;
                                   }),
                    section.end());
      continue;
    }
    if (section == "molecules" && first.front() != '#'
        && std::find(names.begin(), names.end(), first) == names.end())
      names.push_back(first);
  }
  return names;
}

std::vector<std::string> check_config(const validator_config& c) {
  std::vector<std::string> p;
  if (c.topology.empty())
    p.push_back("topology: no file given");
  else if (!fs::is_regular_file(c.topology))
    p.push_back("topology: " + c.topology.string() + " is not a readable file");
  auto stage = [&p](const std::string& name, int nsteps, double emtol, double emstep) {
    if (nsteps < 0)
      p.push_back(name + ".nsteps: must be >= 0, is " + std::to_string(nsteps));
    if (!(emtol > 0))
      p.push_back(name + ".emtol_kj_mol_nm: must be > 0, is " + number(emtol));
    if (!(emstep > 0))
      p.push_back(name + ".emstep_nm: must be > 0, is " + number(emstep));
  };
  stage("stage1", c.stage1.nsteps, c.stage1.emtol_kj_mol_nm, c.stage1.emstep_nm);
  stage("stage2", c.stage2.nsteps, c.stage2.emtol_kj_mol_nm, c.stage2.emstep_nm);
  if (!(c.stage1.vdw_lambda >= 0 && c.stage1.vdw_lambda <= 1))
    p.push_back("stage1.vdw_lambda: must be in [0, 1], is " + number(c.stage1.vdw_lambda));
  if (!(c.stage1.sc_alpha >= 0))
    p.push_back("stage1.sc_alpha: must be >= 0, is " + number(c.stage1.sc_alpha));
  if (c.stage1.sc_power != 1 && c.stage1.sc_power != 2)
    p.push_back("stage1.sc_power: must be 1 or 2, is " + std::to_string(c.stage1.sc_power));
  if (!(c.stage1.sc_sigma_nm > 0))
    p.push_back("stage1.sc_sigma_nm: must be > 0, is " + number(c.stage1.sc_sigma_nm));
  if (!(c.stage1.rlist_nm > 0))
    p.push_back("stage1.rlist_nm: must be > 0, is " + number(c.stage1.rlist_nm));
  if (!(c.max_fmax_kj_mol_nm > 0))
    p.push_back("max_fmax_kj_mol_nm: must be > 0, is " + number(c.max_fmax_kj_mol_nm));
  if (!(c.max_abs_epot_kj_mol > 0))
    p.push_back("max_abs_epot_kj_mol: must be > 0, is " + number(c.max_abs_epot_kj_mol));
  if (!(c.decision_fmax_kj_mol_nm >= 0 && c.decision_fmax_kj_mol_nm < c.max_fmax_kj_mol_nm))
    p.push_back("decision_fmax_kj_mol_nm: must be >= 0 and below max_fmax_kj_mol_nm ("
                + number(c.max_fmax_kj_mol_nm) + "), is " + number(c.decision_fmax_kj_mol_nm));
  if (!(c.box_margin_nm > 0))
    p.push_back("box_margin_nm: must be > 0, is " + number(c.box_margin_nm));
  if (!(c.box_step_nm > 0))
    p.push_back("box_step_nm: must be > 0, is " + number(c.box_step_nm));
  if (c.structure_timeout.count() <= 0)
    p.push_back("structure_timeout: must be positive");
  if (c.gmx.gmx.empty())
    p.push_back("gmx.gmx: no GROMACS program given");
  return p;
}

std::string first_lines(const std::string& text, std::size_t n) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  for (std::size_t i = 0; i < n && std::getline(in, line);) {
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    out += (out.empty() ? "" : " ") + line.substr(line.find_first_not_of(" \t"));
    ++i;
  }
  return out;
}

/// The verdict for a GROMACS failure in `stage`; rethrows what is not about the structure.
validation_verdict verdict_of(const gmx_error& e, const std::string& stage) {
  validation_verdict v;
  switch (e.what_kind()) {
    case gmx_error_kind::not_found:
    case gmx_error_kind::cancelled: throw e;
    case gmx_error_kind::non_finite_energy: v.code = verdict_code::non_finite; break;
    case gmx_error_kind::lincs_failure:
    case gmx_error_kind::settle_failure: v.code = verdict_code::blew_up; break;
    case gmx_error_kind::timeout: v.code = verdict_code::timeout; break;
    case gmx_error_kind::fatal_error:
    case gmx_error_kind::crashed: v.code = verdict_code::gromacs_error; break;
  }
  if (e.info().message.find("does not match topology") != std::string::npos)
    v.code = verdict_code::bad_input; // grompp: the structure's atom count is not the topology's
  v.reason = stage + ": " + std::string{to_string(e.what_kind())} + ": "
    + first_lines(e.info().message, 6);
  return v;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    throw io_error(p, 0, "cannot read");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out)
    throw io_error(p, 0, "cannot write");
}

/// The last non-empty line of a .gro text: its box.
std::string box_line(const std::string& gro_text) {
  auto end = gro_text.find_last_not_of("\r\n ");
  if (end == std::string::npos)
    return {};
  auto start = gro_text.rfind('\n', end);
  return gro_text.substr(start == std::string::npos ? 0 : start + 1,
                         end + 1 - (start == std::string::npos ? 0 : start + 1));
}

/// A fresh directory `prefix`XXXXXX under `parent`.
fs::path make_unique_dir(const fs::path& parent, const std::string& prefix) {
  std::string tmpl = (parent / (prefix + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw io_error(parent, 0, "cannot create a work directory: " + std::string{strerror(errno)});
  return tmpl;
}

} // namespace

std::string_view to_string(verdict_code code) noexcept {
  switch (code) {
    case verdict_code::accepted: return "accepted";
    case verdict_code::fmax_too_large: return "fmax_too_large";
    case verdict_code::epot_too_large: return "epot_too_large";
    case verdict_code::non_finite: return "non_finite";
    case verdict_code::blew_up: return "blew_up";
    case verdict_code::gromacs_error: return "gromacs_error";
    case verdict_code::timeout: return "timeout";
    case verdict_code::bad_input: return "bad_input";
  }
  return "unknown";
}

validator::validator(validator_config config)
  : config_(std::move(config)), runner_([this] {
      auto g = config_.gmx;
      // Work directories are private: no backups of files written twice.
      g.environment.emplace_back("GMX_MAXBACKUP", "-1");
      return g;
    }()) {
  caches_ = std::make_unique<caches>();
  auto problems = check_config(config_);
  if (problems.empty() && config_.couple_moltype.empty()) {
    auto names = listed_molecule_types(config_.topology);
    if (names.size() == 1)
      config_.couple_moltype = names.front();
    else
      problems.push_back("couple_moltype: not given, and " + config_.topology.string() + " lists "
                         + std::to_string(names.size())
                         + " molecule types in [ molecules ] (name the one to soften)");
  }
  if (!problems.empty()) {
    std::string msg
      = "validator configuration has " + std::to_string(problems.size()) + " problem(s):";
    for (const auto& p : problems)
      msg += "\n  " + p;
    throw md_error(msg);
  }
  config_.topology = fs::absolute(config_.topology);

  const auto define = config_.define.empty() ? std::string{} : "define = " + config_.define + "\n";
  auto nonbonded = config_.nonbonded_mdp;
  if (!nonbonded.empty() && nonbonded.back() != '\n')
    nonbonded += '\n';
  const auto& s1 = config_.stage1;
  mdp1_ = "; mummi validator, stage 1: soft-core steepest descent in vacuum\n"
          "integrator = steep\n"
          "nsteps = "
    + std::to_string(s1.nsteps) + "\nemtol = " + number(s1.emtol_kj_mol_nm)
    + "\nemstep = " + number(s1.emstep_nm) + "\npbc = xyz\nld-seed = 1\n" + define + nonbonded
    + "verlet-buffer-tolerance = -1\nrlist = " + number(s1.rlist_nm)
    + "\nfree-energy = yes\ncouple-moltype = " + config_.couple_moltype
    + "\ncouple-lambda0 = vdw-q\ncouple-lambda1 = none\ncouple-intramol = yes\n"
      "vdw-lambdas = 0 "
    + number(s1.vdw_lambda) + "\ncoul-lambdas = 0 1\ninit-lambda-state = 1\nsc-alpha = "
    + number(s1.sc_alpha) + "\nsc-power = " + std::to_string(s1.sc_power)
    + "\nsc-sigma = " + number(s1.sc_sigma_nm) + "\nnstdhdl = 0\n";
  auto stage2 = [&](double emtol, const char* title) {
    return std::string{"; mummi validator, stage 2: steepest descent in vacuum"} + title
      + "\nintegrator = steep\nnsteps = " + std::to_string(config_.stage2.nsteps)
      + "\nemtol = " + number(emtol) + "\nemstep = " + number(config_.stage2.emstep_nm)
      + "\npbc = xyz\nld-seed = 1\n" + define + nonbonded;
  };
  mdp2_ = stage2(config_.stage2.emtol_kj_mol_nm, "");
  mdp_rerun_ = "; mummi validator: stage-2 energies and forces of many structures at once\n"
               "; (gmx mdrun -rerun; the same interactions as stage 2)\n"
               "integrator = md\nnsteps = 0\npbc = xyz\nld-seed = 1\n"
    + define + nonbonded + "nstcalcenergy = 1\nnstenergy = 1\nnstlog = 1\nnstfout = 1\n";
  mdp2_decision_ = config_.decision_fmax_kj_mol_nm > config_.stage2.emtol_kj_mol_nm
    ? stage2(config_.decision_fmax_kj_mol_nm, " (stops at the decision force)")
    : mdp2_;

  // A directory of this validator's own, so that validators sharing a work root never see
  // each other's files.
  auto parent
    = config_.work_root.empty() ? fs::temp_directory_path() : fs::absolute(config_.work_root);
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    throw io_error(parent, 0, "cannot create the validator's work root: " + ec.message());
  root_ = make_unique_dir(parent, "mummi-validator-");
  for (const auto& [name, text] : {std::pair{"stage1.mdp", &mdp1_}, std::pair{"stage2.mdp", &mdp2_},
                                   std::pair{"stage2_decision.mdp", &mdp2_decision_},
                                   std::pair{"stage2_rerun.mdp", &mdp_rerun_}}) {
    std::ofstream out(root_ / name);
    out << *text;
    if (!out)
      throw io_error(root_ / name, 0, "cannot write");
  }
}

validator::~validator() {
  if (!config_.keep_files) {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
}

structure validator::prepared(const structure& s) const {
  if (s.atoms.empty())
    throw md_error("the structure has no atoms");
  vec3 lo{}, hi{};
  for (int k = 0; k < 3; ++k) {
    lo[k] = std::numeric_limits<float>::max();
    hi[k] = std::numeric_limits<float>::lowest();
  }
  for (std::size_t i = 0; i < s.atoms.size(); ++i)
    for (int k = 0; k < 3; ++k) {
      float x = s.atoms[i].position_nm[k];
      if (!std::isfinite(x))
        throw md_error("atom " + std::to_string(i + 1) + " has a non-finite coordinate");
      lo[k] = std::min(lo[k], x);
      hi[k] = std::max(hi[k], x);
    }
  double extent = 0;
  for (int k = 0; k < 3; ++k)
    extent = std::max(extent, static_cast<double>(hi[k]) - lo[k]);
  const auto step = config_.box_step_nm;
  const auto edge
    = static_cast<float>(step * std::ceil((extent + 2 * config_.box_margin_nm) / step));
  structure out = s;
  out.title = "mummi validator input";
  out.box_nm = rectangular_box(edge, edge, edge);
  for (auto& a : out.atoms) {
    for (int k = 0; k < 3; ++k)
      a.position_nm[k] += edge / 2 - (lo[k] + hi[k]) / 2;
    a.velocity_nm_ps.reset();
  }
  return out;
}

validator::statistics validator::stats() const {
  statistics st;
  st.grompp_runs = caches_->grompp.load();
  st.reused_inputs = caches_->reused.load();
  st.reruns = caches_->reruns.load();
  st.decided_by_rerun = caches_->decided_by_rerun.load();
  st.reruns_trusted = caches_->rerun_trust == caches::trust::trusted;
  return st;
}

void validator::make_tpr(const std::string& mdp, const fs::path& gro, const fs::path& tpr,
                         const fs::path& dir, bool reuse, std::chrono::milliseconds timeout,
                         const std::atomic<bool>* cancel) const {
  auto run_grompp = [&](const fs::path& from, const fs::path& out) {
    runner_.grompp({.mdp = root_ / mdp,
                    .structure = from,
                    .topology = config_.topology,
                    .output = out,
                    .work_dir = dir,
                    .timeout = timeout},
                   cancel);
    ++caches_->grompp;
  };
  if (!reuse) {
    run_grompp(gro, tpr);
    return;
  }
  const auto text = read_file(gro);
  const auto xyz = detail::gro_coordinates(text);
  const auto key = std::pair{mdp, box_line(text)};
  std::shared_ptr<const detail::tpr_template> ready;
  bool build = false;
  {
    std::lock_guard lock(caches_->mutex);
    auto& e = caches_->entries[key];
    ++e.seen;
    if (e.tpr)
      ready = e.tpr;
    else if (e.seen >= 2 && !e.building && !e.unavailable && xyz)
      build = e.building = true;
  }
  if (ready && xyz && xyz->size() == ready->values()) {
    write_file(tpr, ready->with_coordinates(*xyz));
    ++caches_->reused;
    return;
  }
  run_grompp(gro, tpr);
  if (!build)
    return;
  // Make the template from this structure's input and check it: grompp the same input again
  // (which bytes vary between identical runs) and a shifted copy (does patching reproduce it).
  std::shared_ptr<const detail::tpr_template> made;
  bool finished = false;
  try {
    run_grompp(gro, dir / "template_again.tpr");
    auto shifted = read_gro(gro);
    for (auto& a : shifted.atoms)
      for (auto& x : a.position_nm)
        x += 0.0113f;
    write_gro(shifted, dir / "template_check.gro");
    run_grompp(dir / "template_check.gro", dir / "template_check.tpr");
    auto check_xyz = detail::gro_coordinates(read_file(dir / "template_check.gro"));
    if (check_xyz)
      if (auto t
          = detail::tpr_template::make(read_file(tpr), read_file(dir / "template_again.tpr"), *xyz,
                                       read_file(dir / "template_check.tpr"), *check_xyz))
        made = std::make_shared<const detail::tpr_template>(std::move(*t));
    finished = true;
  } catch (const gmx_error& e) {
    // A failure of the checking runs leaves this structure's own input as it is; only a
    // cancelled or impossible run goes on up. Another worker may try again later.
    if (e.what_kind() == gmx_error_kind::cancelled || e.what_kind() == gmx_error_kind::not_found) {
      std::lock_guard lock(caches_->mutex);
      caches_->entries[key].building = false;
      throw;
    }
  } catch (const md_error&) {
    // Unreadable checking files: no template this time.
  }
  std::lock_guard lock(caches_->mutex);
  auto& e = caches_->entries[key];
  e.building = false;
  e.tpr = made;
  e.unavailable = finished && !made;
}

std::unique_ptr<validator::started> validator::run_stage1(const structure& s, std::size_t index,
                                                          bool reuse,
                                                          const std::atomic<bool>* cancel) const {
  auto owned = std::make_unique<started>(config_.structure_timeout, config_.keep_files);
  auto& st = *owned;
  st.index = index;
  st.input = &s;
  st.budget.resume();
  st.dir = make_unique_dir(root_, "s" + std::to_string(index) + "-");
  std::string stage = "input";
  try {
    st.placed = prepared(s);
    write_gro(st.placed, st.dir / "start.gro");
    stage = "stage 1 (soft-core)";
    st.em1 = minimise(st, "stage1.mdp", st.dir / "start.gro", "stage1", reuse, cancel);
    st.box = box_line(read_file(st.dir / "stage1.gro"));
  } catch (const gmx_error& e) {
    st.verdict = verdict_of(e, stage); // rethrows not_found and cancelled
  } catch (const md_error& e) {
    validation_verdict v;
    v.code = stage == "input" ? verdict_code::bad_input : verdict_code::gromacs_error;
    v.reason = stage + ": " + e.what();
    st.verdict = std::move(v);
  }
  st.budget.pause();
  if (st.verdict) {
    st.verdict->epot_kj_mol = st.verdict->fmax_kj_mol_nm = not_a_number;
    st.verdict->seconds = st.budget.seconds();
  }
  return owned;
}

em_result validator::minimise(started& st, const char* mdp, const fs::path& from,
                              const std::string& name, bool reuse,
                              const std::atomic<bool>* cancel) const {
  make_tpr(mdp, from, st.dir / (name + ".tpr"), st.dir, reuse, st.budget.left(), cancel);
  mdrun_options run;
  run.deffnm = name;
  run.threads = 1;
  run.pin = pinning::off;
  run.timeout = st.budget.left();
  runner_.mdrun(st.dir / (name + ".tpr"), st.dir, run, cancel);
  return read_em_result(st.dir / (name + ".log"));
}

validation_verdict validator::run_stage2(started& st, stage2_mode mode, bool reuse,
                                         const std::atomic<bool>* cancel) const {
  st.budget.resume();
  validation_verdict v;
  try {
    const bool early = mode == stage2_mode::decide_early && mdp2_decision_ != mdp2_;
    std::string last = "stage2";
    auto em2 = minimise(st, early ? "stage2_decision.mdp" : "stage2.mdp", st.dir / "stage1.gro",
                        last, reuse, cancel);
    if (early && em2.converged && !(std::fabs(em2.epot_kj_mol) < config_.max_abs_epot_kj_mol)) {
      // Fmax is low but Epot is not: only the full stage 2 can tell.
      last = "stage2_full";
      em2 = minimise(st, "stage2.mdp", st.dir / "stage1.gro", last, reuse, cancel);
    }
    v = judge(st, em2, last);
  } catch (const gmx_error& e) {
    v = verdict_of(e, "stage 2"); // rethrows not_found and cancelled
    v.steps = st.em1.steps;
    v.epot_kj_mol = v.fmax_kj_mol_nm = not_a_number;
  } catch (const md_error& e) {
    v = {};
    v.code = verdict_code::gromacs_error;
    v.reason = std::string{"stage 2: "} + e.what();
    v.epot_kj_mol = v.fmax_kj_mol_nm = not_a_number;
  }
  st.budget.pause();
  v.seconds = st.budget.seconds();
  return v;
}

validation_verdict validator::judge(started& st, const em_result& em2,
                                    const std::string& final_name) const {
  validation_verdict v;
  v.steps = st.em1.steps + em2.steps;
  v.epot_kj_mol = em2.epot_kj_mol;
  v.fmax_kj_mol_nm = em2.fmax_kj_mol_nm;
  const auto values = "Epot " + short_number(em2.epot_kj_mol) + " kJ/mol, Fmax "
    + short_number(em2.fmax_kj_mol_nm) + " kJ/mol/nm";
  if (!std::isfinite(em2.epot_kj_mol) || !std::isfinite(em2.fmax_kj_mol_nm)
      || !std::isfinite(em2.fnorm_kj_mol_nm)) {
    v.code = verdict_code::non_finite;
    v.reason = "stage 2: " + values;
  } else if (!(std::fabs(em2.fmax_kj_mol_nm) < config_.max_fmax_kj_mol_nm)) {
    v.code = verdict_code::fmax_too_large;
    v.reason
      = "stage 2: " + values + ", Fmax not below " + short_number(config_.max_fmax_kj_mol_nm);
  } else if (!(std::fabs(em2.epot_kj_mol) < config_.max_abs_epot_kj_mol)) {
    v.code = verdict_code::epot_too_large;
    v.reason
      = "stage 2: " + values + ", |Epot| not below " + short_number(config_.max_abs_epot_kj_mol);
  } else {
    v.code = verdict_code::accepted;
    v.accepted = true;
    v.reason = "accepted: " + values + " after " + std::to_string(v.steps) + " steps";
    auto final_structure = read_gro(st.dir / (final_name + ".gro"));
    const auto& original = *st.input;
    if (final_structure.atoms.size() != original.atoms.size())
      throw md_error("mdrun wrote " + std::to_string(final_structure.atoms.size())
                     + " atoms for a structure of " + std::to_string(original.atoms.size()));
    v.positions_nm.reserve(original.atoms.size());
    for (std::size_t i = 0; i < original.atoms.size(); ++i) {
      vec3 p = final_structure.atoms[i].position_nm;
      for (int k = 0; k < 3; ++k)
        p[k] += original.atoms[i].position_nm[k] - st.placed.atoms[i].position_nm[k];
      v.positions_nm.push_back(p);
    }
  }
  return v;
}

std::vector<std::optional<em_result>> validator::rerun(std::vector<started*>& chunk,
                                                       const std::atomic<bool>* cancel) const {
  std::vector<std::optional<em_result>> out(chunk.size());
  if (chunk.empty())
    return out;
  const auto start = clock_type::now();
  auto timeout = chunk.front()->budget.left();
  for (auto* st : chunk)
    timeout = std::min(timeout, st->budget.left());
  fs::path dir;
  try {
    dir = make_unique_dir(root_, "rerun-");
    std::string frames;
    for (auto* st : chunk)
      frames += read_file(st->dir / "stage1.gro");
    write_file(dir / "frames.gro", frames);
    fs::path tpr;
    {
      // One input per box, made from the first structure that needs it.
      std::lock_guard lock(caches_->rerun_mutex);
      auto& known = caches_->rerun_tprs[chunk.front()->box];
      if (known.empty()) {
        auto made = root_ / ("rerun-" + std::to_string(caches_->rerun_tprs.size()) + ".tpr");
        runner_.grompp({.mdp = root_ / "stage2_rerun.mdp",
                        .structure = chunk.front()->dir / "stage1.gro",
                        .topology = config_.topology,
                        .output = made,
                        .work_dir = dir,
                        .timeout = timeout},
                       cancel);
        ++caches_->grompp;
        known = made;
      }
      tpr = known;
    }
    mdrun_options run;
    run.deffnm = "rerun";
    run.threads = 1;
    run.pin = pinning::off;
    run.timeout = timeout;
    run.extra_args = {"-rerun", (dir / "frames.gro").string()};
    runner_.mdrun(tpr, dir, run, cancel);
    ++caches_->reruns;
    const auto epot = detail::rerun_potentials(read_file(dir / "rerun.log"), dir / "rerun.log");
    const auto forces = detail::read_trr_forces(dir / "rerun.trr");
    if (epot.size() == chunk.size() && forces.size() == chunk.size()) {
      // Decide only where stage 2 certainly stops at its first step and accepts: the
      // margins cover the last digits the log prints and any rounding a rerun does
      // differently from a minimisation step.
      constexpr double margin = 1e-4;
      const double decision
        = std::max(config_.decision_fmax_kj_mol_nm, config_.stage2.emtol_kj_mol_nm);
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        const auto& f = forces[i];
        if (!f.finite || !std::isfinite(epot[i]) || f.atoms != chunk[i]->placed.atoms.size())
          continue;
        if (!(f.fmax_kj_mol_nm < decision * (1 - margin))
            || !(std::fabs(epot[i]) < config_.max_abs_epot_kj_mol * (1 - margin)))
          continue;
        em_result r;
        r.epot_kj_mol = epot[i];
        r.fmax_kj_mol_nm = f.fmax_kj_mol_nm;
        r.fmax_atom = f.fmax_atom;
        r.fnorm_kj_mol_nm = f.rms_kj_mol_nm;
        r.steps = 1; // as a minimisation that converges at once counts it
        r.converged = true;
        out[i] = r;
      }
    }
  } catch (const gmx_error& e) {
    if (e.what_kind() == gmx_error_kind::cancelled || e.what_kind() == gmx_error_kind::not_found)
      throw;
    // Any other failure (a frame GROMACS refuses, a timeout): stage 2 decides them all.
  } catch (const md_error&) {
    // An unreadable rerun output: likewise.
  }
  if (!dir.empty() && !config_.keep_files) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  const auto share = (clock_type::now() - start) / static_cast<int>(chunk.size());
  for (auto* st : chunk)
    st->budget.add(share);
  return out;
}

std::vector<validation_verdict> validator::validate(std::span<const structure> structures,
                                                    const std::atomic<bool>* cancel) const {
  const std::size_t n = structures.size();
  std::vector<validation_verdict> out(n);
  unsigned workers
    = config_.workers > 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  workers = static_cast<unsigned>(std::min<std::size_t>(workers, std::max<std::size_t>(n, 1)));
  const std::size_t batch = config_.rerun_batch;
  using trust = caches::trust;

  // Work, taken by the workers in this order: structures waiting for a stage-2 run, a full
  // rerun batch (or what is left once no stage 1 is running), the next stage 1.
  std::mutex m;
  std::condition_variable wake;
  std::vector<std::unique_ptr<started>> states(n);
  std::deque<std::size_t> to_minimise;
  std::map<std::string, std::vector<std::size_t>> to_rerun; // by box
  std::size_t next = 0, running = 0, stage1_running = 0;
  bool stop = false;
  std::exception_ptr failure;

  auto finish = [&](std::size_t i, validation_verdict v) {
    out[i] = std::move(v);
    states[i].reset(); // removes its directory
  };
  auto work = [&] {
    std::unique_lock lock(m);
    for (;;) {
      if (stop)
        return;
      try {
        if (cancel && cancel->load())
          throw gmx_error(gmx_error_kind::cancelled, "validation was cancelled");
        if (!to_minimise.empty()) {
          auto i = to_minimise.front();
          to_minimise.pop_front();
          ++running;
          lock.unlock();
          auto v = run_stage2(*states[i], stage2_mode::decide_early, true, cancel);
          lock.lock();
          --running;
          finish(i, std::move(v));
          wake.notify_all();
          continue;
        }
        const bool stage1_done = next >= n;
        auto group = std::find_if(to_rerun.begin(), to_rerun.end(), [&](const auto& g) {
          return !g.second.empty()
            && (g.second.size() >= batch || (stage1_done && stage1_running == 0));
        });
        auto trust_now = caches_->rerun_trust.load();
        bool check = false;
        if (group != to_rerun.end() && trust_now == trust::unknown) {
          // This worker checks the first decisions (others meanwhile see `checking`).
          check = caches_->rerun_trust.compare_exchange_strong(trust_now, trust::checking);
          if (!check)
            trust_now = caches_->rerun_trust.load();
        }
        if (group != to_rerun.end()
            && (trust_now == trust::refused
                || (trust_now == trust::checking && !check && stage1_done))) {
          // No reruns (or not yet, and nothing else to do meanwhile): stage 2 decides.
          for (auto i : group->second)
            to_minimise.push_back(i);
          group->second.clear();
          continue;
        }
        if (group != to_rerun.end() && (check || trust_now == trust::trusted)) {
          std::vector<std::size_t> taken(
            group->second.begin(),
            group->second.begin()
              + static_cast<std::ptrdiff_t>(std::min(batch, group->second.size())));
          group->second.erase(group->second.begin(),
                              group->second.begin() + static_cast<std::ptrdiff_t>(taken.size()));
          ++running;
          lock.unlock();
          std::vector<started*> chunk;
          for (auto i : taken)
            chunk.push_back(states[i].get());
          std::vector<std::optional<em_result>> decided;
          try {
            decided = rerun(chunk, cancel);
          } catch (...) {
            lock.lock();
            if (check)
              caches_->rerun_trust = trust::unknown;
            --running;
            throw;
          }
          std::vector<std::optional<validation_verdict>> verdicts(taken.size());
          // The first decisions are checked: stage 2 runs as well for a few of them and must
          // stop at its first step with the same energy and force.
          constexpr std::size_t checks_wanted = 2;
          std::size_t checked = 0;
          bool agrees = true;
          for (std::size_t k = 0; k < taken.size() && check && checked < checks_wanted; ++k) {
            if (!decided[k])
              continue;
            auto v = run_stage2(*chunk[k], stage2_mode::decide_early, true, cancel);
            const auto& r = *decided[k];
            agrees = agrees && v.accepted && v.steps == chunk[k]->em1.steps + 1
              && std::fabs(v.fmax_kj_mol_nm - r.fmax_kj_mol_nm)
                <= 1e-5 * std::max(1.0, std::fabs(r.fmax_kj_mol_nm))
              && std::fabs(v.epot_kj_mol - r.epot_kj_mol)
                <= 1e-5 * std::max(1.0, std::fabs(r.epot_kj_mol));
            verdicts[k] = std::move(v);
            ++checked;
          }
          const bool trusted = !check || (checked > 0 && agrees);
          for (std::size_t k = 0; k < taken.size() && trusted; ++k) {
            if (!decided[k] || verdicts[k])
              continue;
            chunk[k]->budget.resume();
            try {
              verdicts[k] = judge(*chunk[k], *decided[k], "stage1");
              ++caches_->decided_by_rerun;
            } catch (const md_error&) {
              // Stage 2 decides it (and reports the problem).
            }
            chunk[k]->budget.pause();
            if (verdicts[k])
              verdicts[k]->seconds = chunk[k]->budget.seconds();
          }
          lock.lock();
          --running;
          if (check)
            caches_->rerun_trust
              = checked == 0 ? trust::unknown : (agrees ? trust::trusted : trust::refused);
          for (std::size_t k = 0; k < taken.size(); ++k) {
            if (verdicts[k])
              finish(taken[k], std::move(*verdicts[k]));
            else
              to_minimise.push_back(taken[k]);
          }
          wake.notify_all();
          continue;
        }
        if (next < n) {
          auto i = next++;
          ++running;
          ++stage1_running;
          lock.unlock();
          std::unique_ptr<started> st;
          try {
            st = run_stage1(structures[i], i, true, cancel);
          } catch (...) {
            lock.lock();
            --running;
            --stage1_running;
            throw;
          }
          lock.lock();
          --running;
          --stage1_running;
          if (st->verdict) {
            out[i] = std::move(*st->verdict);
          } else {
            auto box = st->box;
            states[i] = std::move(st);
            if (batch > 0)
              to_rerun[box].push_back(i);
            else
              to_minimise.push_back(i);
          }
          wake.notify_all();
          continue;
        }
        const bool waiting = std::any_of(to_rerun.begin(), to_rerun.end(), [](const auto& g) {
          return !g.second.empty();
        });
        if (running == 0 && !waiting && to_minimise.empty())
          return; // all done
        wake.wait(lock);
      } catch (...) {
        if (!lock.owns_lock())
          lock.lock();
        if (!failure)
          failure = std::current_exception();
        stop = true;
        wake.notify_all();
        return;
      }
    }
  };
  if (workers <= 1) {
    work();
  } else {
    // Each worker starts and waits for its own GROMACS processes: they die with it.
    std::vector<std::jthread> pool;
    for (unsigned w = 0; w < workers; ++w)
      pool.emplace_back(work);
  }
  if (failure)
    std::rethrow_exception(failure);
  return out;
}

std::vector<validation_verdict>
validator::validate_reference(std::span<const structure> structures,
                              const std::atomic<bool>* cancel) const {
  std::vector<validation_verdict> out;
  out.reserve(structures.size());
  for (std::size_t i = 0; i < structures.size(); ++i) {
    if (cancel && cancel->load())
      throw gmx_error(gmx_error_kind::cancelled, "validation was cancelled");
    auto st = run_stage1(structures[i], i, false, cancel);
    out.push_back(st->verdict ? std::move(*st->verdict)
                              : run_stage2(*st, stage2_mode::full, false, cancel));
  }
  return out;
}

} // namespace mummi::md
