#include "mummi/md_bridge/gmx_runner.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mummi/coupling/child_process.hpp"

namespace mummi::md {

namespace fs = std::filesystem;
namespace cpl = mummi::coupling;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::size_t tail_lines = 30;
constexpr std::size_t max_read_bytes = 1 << 20;
/// GROMACS's sentence when a minimisation meets non-finite forces (it then exits 0).
constexpr std::string_view em_not_finite = "force on at least one atom is not finite";

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// The last `max_bytes` of a file; empty when it cannot be read.
std::string read_tail(const fs::path& file, std::size_t max_bytes = max_read_bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    return {};
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::size_t>(std::max<std::streamoff>(0, in.tellg()));
  auto start = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string text(size - start, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount())));
  return text;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos)
      break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return out;
}

std::string last_lines(std::string_view text, std::size_t n) {
  auto lines = split_lines(text);
  while (!lines.empty() && trim(lines.back()).empty())
    lines.pop_back();
  auto first = lines.size() > n ? lines.size() - n : 0;
  std::string out;
  for (auto i = first; i < lines.size(); ++i) {
    out += lines[i];
    out += '\n';
  }
  return out;
}

bool is_dash_line(std::string_view line) {
  line = trim(line);
  return line.size() >= 10 && line.find_first_not_of('-') == std::string_view::npos;
}

/// grompp's numbered entries ("ERROR 1 [file x.top, line 14]:" and its indented text).
std::vector<std::string> numbered_entries(std::string_view text, std::string_view word) {
  std::vector<std::string> out;
  auto lines = split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto line = lines[i];
    if (!starts_with(line, word) || line.size() <= word.size() || line[word.size()] != ' '
        || !std::isdigit(static_cast<unsigned char>(line.substr(word.size() + 1).front()))
        || line.back() != ':')
      continue;
    std::string entry(line);
    for (auto j = i + 1; j < lines.size() && !trim(lines[j]).empty(); ++j) {
      entry += '\n';
      entry += trim(lines[j]);
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::string quote_arg(const std::string& a) {
  if (!a.empty() && a.find_first_of(" \t\n'\"\\$`*?;&|<>()") == std::string::npos)
    return a;
  std::string q = "'";
  for (char c : a)
    q += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
  return q + "'";
}

std::string join_command(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args)
    s += (s.empty() ? "" : " ") + quote_arg(a);
  return s;
}

fs::path absolute_or_empty(const fs::path& p) {
  return p.empty() ? p : fs::absolute(p).lexically_normal();
}

fs::path prepare_work_dir(const fs::path& dir) {
  auto abs = fs::absolute(dir.empty() ? fs::path{"."} : dir).lexically_normal();
  std::error_code ec;
  fs::create_directories(abs, ec);
  if (ec || !fs::is_directory(abs))
    throw io_error(abs, 0, "cannot create the GROMACS work directory: " + ec.message());
  return abs;
}

bool is_missing_program(int error) {
  return error == ENOENT || error == EACCES || error == ENOEXEC || error == ENOTDIR
    || error == ELOOP || error == ENAMETOOLONG;
}

/// Starts a GROMACS program in its own process group, killed with its starting thread.
cpl::child_process start_gmx(const gmx_config& gmx, const std::vector<std::string>& args,
                             const fs::path& work_dir, const fs::path& out_file,
                             const fs::path& err_file,
                             const std::vector<std::pair<std::string, std::string>>& extra_env,
                             const std::string& command_line) {
  cpl::spawn_options o;
  o.working_directory = work_dir;
  o.environment = gmx.environment;
  o.environment.insert(o.environment.end(), extra_env.begin(), extra_env.end());
  o.stdout_file = out_file;
  o.stderr_file = err_file;
  o.stdin_null = true;
  o.own_process_group = true;
  o.parent_death_signal = SIGKILL;
  o.termination_grace = gmx.termination_grace;
  {
    // Fail here, with a clear message, when the work directory is not writable.
    std::ofstream probe(out_file, std::ios::trunc);
    if (!probe)
      throw io_error(out_file, 0, "cannot write GROMACS output here");
  }
  try {
    return cpl::child_process(args, {}, std::move(o));
  } catch (const cpl::start_error& e) {
    gmx_error::details d;
    d.kind
      = is_missing_program(e.error_number()) ? gmx_error_kind::not_found : gmx_error_kind::crashed;
    d.message = d.kind == gmx_error_kind::not_found ? "the GROMACS program '" + gmx.gmx
        + "' cannot be run (" + e.what() + "); set the gmx program (a name in PATH or a path)"
                                                    : std::string{e.what()};
    d.command_line = command_line;
    d.work_dir = work_dir;
    throw gmx_error(std::move(d));
  }
}

enum class wait_outcome { exited, cancelled, timed_out };

/// Waits for `child` to end, stopping it (whole group) on cancellation or timeout.
wait_outcome wait_child(cpl::child_process& child, int& status,
                        std::optional<clock_type::time_point> deadline,
                        const std::atomic<bool>* own_flag, const std::atomic<bool>* external,
                        std::chrono::milliseconds grace) {
  auto cancelled = [&] {
    return (own_flag && own_flag->load()) || (external && external->load());
  };
  for (;;) {
    auto slice = std::chrono::milliseconds{50};
    if (deadline) {
      auto left
        = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock_type::now());
      slice = std::clamp(left, std::chrono::milliseconds{0}, slice);
    }
    if (auto st = child.wait_for(slice)) {
      status = *st;
      return wait_outcome::exited;
    }
    if (cancelled()) {
      status = child.terminate(grace);
      return wait_outcome::cancelled;
    }
    if (deadline && clock_type::now() >= *deadline) {
      status = child.terminate(grace);
      return wait_outcome::timed_out;
    }
  }
}

std::string describe_limit(std::chrono::milliseconds limit) {
  std::ostringstream s;
  s << static_cast<double>(limit.count()) / 1000.0 << " s";
  return s.str();
}

/// The error for a program that exited non-zero: GROMACS's diagnosis of its stderr, else of
/// its log, else a crash.
gmx_error::details failure_details(int status, const std::string& program, std::string_view err,
                                   std::string_view log) {
  gmx_error::details d;
  auto diag = diagnose_gmx_output(err);
  if (!diag.kind && !log.empty())
    diag = diagnose_gmx_output(log);
  if (diag.kind) {
    d.kind = *diag.kind;
    d.message = std::move(diag.message);
    d.source_file = std::move(diag.source_file);
    d.source_line = diag.source_line;
  } else {
    d.kind = gmx_error_kind::crashed;
    d.message = program + " ended with " + cpl::describe_wait_status(status)
      + " without a GROMACS error message";
  }
  return d;
}

std::string format_details(const gmx_error::details& d) {
  std::string s = "gmx " + std::string{to_string(d.kind)} + ": " + d.message;
  if (!d.source_file.empty())
    s += "\n  (GROMACS source " + d.source_file
      + (d.source_line > 0 ? ", line " + std::to_string(d.source_line) : std::string{}) + ")";
  if (!d.command_line.empty())
    s += "\n  command: " + d.command_line;
  if (!d.work_dir.empty())
    s += "\n  work dir: " + d.work_dir.string();
  if (!d.log_tail.empty()) {
    s += "\n  last output:";
    for (auto line : split_lines(d.log_tail)) {
      s += "\n    ";
      s += line;
    }
  }
  return s;
}

std::optional<double> parse_number(std::string_view s) {
  std::string text{trim(s)};
  if (text.empty())
    return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str())
    return std::nullopt;
  return v;
}

} // namespace

std::string_view to_string(gmx_error_kind kind) noexcept {
  switch (kind) {
    case gmx_error_kind::not_found: return "not_found";
    case gmx_error_kind::fatal_error: return "fatal_error";
    case gmx_error_kind::lincs_failure: return "lincs_failure";
    case gmx_error_kind::settle_failure: return "settle_failure";
    case gmx_error_kind::non_finite_energy: return "non_finite_energy";
    case gmx_error_kind::timeout: return "timeout";
    case gmx_error_kind::cancelled: return "cancelled";
    case gmx_error_kind::crashed: return "crashed";
  }
  return "unknown";
}

gmx_error::gmx_error(details d) : md_error(format_details(d)), d_(std::move(d)) {}

gmx_error::gmx_error(gmx_error_kind k, const std::string& message)
  : gmx_error(details{k, message, {}, 0, {}, {}, {}}) {}

gmx_diagnosis diagnose_gmx_output(std::string_view text) {
  gmx_diagnosis out;
  auto lines = split_lines(text);
  // GROMACS's error block: "Program: ...", "Source file: f (line n)", [Function, MPI rank],
  // an empty line, a header ("Fatal error:", "Error in user input:", ...), the message, and
  // "For more information and tips ..." or a dashed line.
  std::optional<std::size_t> program_line;
  for (std::size_t i = lines.size(); i-- > 0;)
    if (starts_with(lines[i], "Program:")) {
      program_line = i;
      break;
    }
  std::string block;
  if (program_line) {
    std::size_t i = *program_line + 1;
    for (; i < lines.size() && !trim(lines[i]).empty(); ++i) {
      if (starts_with(lines[i], "Source file:")) {
        auto rest = trim(lines[i].substr(12));
        auto paren = rest.rfind("(line ");
        out.source_file = std::string{trim(rest.substr(0, paren))};
        if (paren != std::string_view::npos) {
          auto num = rest.substr(paren + 6);
          std::from_chars(num.data(), num.data() + num.size(), out.source_line);
        }
      }
    }
    for (; i < lines.size() && trim(lines[i]).empty(); ++i) {
    }
    std::vector<std::string_view> body;
    for (; i < lines.size(); ++i) {
      if (starts_with(lines[i], "For more information and tips") || is_dash_line(lines[i]))
        break;
      body.push_back(lines[i]);
    }
    while (!body.empty() && trim(body.back()).empty())
      body.pop_back();
    for (auto l : body) {
      block += l;
      block += '\n';
    }
    if (!block.empty())
      block.pop_back();
  }
  std::string entries;
  for (const auto* word : {"ERROR", "WARNING"})
    for (auto& e : numbered_entries(text, word))
      entries += e + "\n";

  const auto low_text = lower(text);
  const bool em_stopped = low_text.find(lower(em_not_finite)) != std::string::npos;
  const bool lincs_seen = low_text.find("lincs warning") != std::string::npos;
  const bool settle_seen = low_text.find("can not be settled") != std::string::npos
    || low_text.find("could not be settled") != std::string::npos
    || low_text.find("settle warning") != std::string::npos;

  if (!block.empty()) {
    out.message = entries + block;
    auto low = lower(block);
    if (low.find("lincs") != std::string::npos)
      out.kind = gmx_error_kind::lincs_failure;
    else if (low.find("settle") != std::string::npos)
      out.kind = gmx_error_kind::settle_failure;
    else if (low.find("not finite") != std::string::npos
             || low.find("extremely high") != std::string::npos
             || low.find("infinite") != std::string::npos)
      out.kind = gmx_error_kind::non_finite_energy;
    else
      out.kind = gmx_error_kind::fatal_error;
    return out;
  }
  auto first_line_with = [&](std::string_view needle) {
    for (auto l : lines)
      if (lower(l).find(needle) != std::string::npos)
        return std::string{trim(l)};
    return std::string{};
  };
  if (em_stopped) {
    out.kind = gmx_error_kind::non_finite_energy;
    out.message = "Energy minimization has stopped because the " + std::string{em_not_finite};
  } else if (lincs_seen) {
    out.kind = gmx_error_kind::lincs_failure;
    out.message = first_line_with("lincs warning");
  } else if (settle_seen) {
    out.kind = gmx_error_kind::settle_failure;
    out.message = first_line_with("settle");
  } else if (!entries.empty()) {
    out.kind = gmx_error_kind::fatal_error;
    out.message = entries;
    out.message.pop_back();
  }
  return out;
}

std::optional<mdrun_progress> parse_progress(std::string_view log_text) {
  auto lines = split_lines(log_text);
  for (std::size_t i = lines.size(); i-- > 0;) {
    std::istringstream header{std::string{lines[i]}};
    std::string a, b, extra;
    if (!(header >> a >> b) || a != "Step" || b != "Time" || (header >> extra))
      continue;
    if (i + 1 >= lines.size())
      continue;
    std::istringstream values{std::string{lines[i + 1]}};
    mdrun_progress p;
    if (values >> p.step >> p.time_ps)
      return p;
  }
  return std::nullopt;
}

em_result parse_em_result(std::string_view log_text, const fs::path& log_name) {
  auto lines = split_lines(log_text);
  std::optional<std::size_t> summary;
  for (std::size_t i = lines.size(); i-- > 0;) {
    auto l = lines[i];
    if ((l.find(" converged to ") != std::string_view::npos
         || l.find(" did not converge to ") != std::string_view::npos)
        && l.find(" in ") != std::string_view::npos && l.find(" steps") != std::string_view::npos) {
      summary = i;
      break;
    }
  }
  if (!summary)
    throw io_error(log_name, 0,
                   "no energy-minimisation summary (\"... converged to ...\"): the minimisation "
                   "did not finish");
  em_result r;
  auto line = lines[*summary];
  r.converged = line.find(" converged to Fmax") != std::string_view::npos
    && line.find("did not") == std::string_view::npos;
  {
    auto in = line.rfind(" in ");
    auto steps = line.substr(in + 4);
    auto [p, ec] = std::from_chars(steps.data(), steps.data() + steps.size(), r.steps);
    if (ec != std::errc{})
      throw io_error(log_name, 0, "cannot read the step count in: " + std::string{line});
  }
  bool have_epot = false, have_fmax = false, have_fnorm = false;
  for (auto i = *summary + 1; i < lines.size() && !(have_epot && have_fmax && have_fnorm); ++i) {
    auto l = lines[i];
    auto eq = l.find('=');
    if (eq == std::string_view::npos)
      continue;
    auto key = trim(l.substr(0, eq));
    auto value = l.substr(eq + 1);
    if (key == "Potential Energy") {
      auto v = parse_number(value);
      if (!v)
        throw io_error(log_name, 0, "cannot read the potential energy in: " + std::string{l});
      r.epot_kj_mol = *v;
      have_epot = true;
    } else if (key == "Maximum force") {
      auto on = value.find(" on atom ");
      auto v = parse_number(value.substr(0, on));
      if (!v)
        throw io_error(log_name, 0, "cannot read the maximum force in: " + std::string{l});
      r.fmax_kj_mol_nm = *v;
      if (on != std::string_view::npos) {
        auto atom = trim(value.substr(on + 9));
        std::from_chars(atom.data(), atom.data() + atom.size(), r.fmax_atom);
      }
      have_fmax = true;
    } else if (key == "Norm of force") {
      auto v = parse_number(value);
      if (!v)
        throw io_error(log_name, 0, "cannot read the norm of the force in: " + std::string{l});
      r.fnorm_kj_mol_nm = *v;
      have_fnorm = true;
    }
  }
  if (!have_epot || !have_fmax || !have_fnorm)
    throw io_error(log_name, 0,
                   "the minimisation summary lacks \"Potential Energy\", \"Maximum force\" or "
                   "\"Norm of force\"");
  return r;
}

namespace {

/// The minimisation summary of a log, when it has one.
std::optional<em_result> minimisation_summary(std::string_view log) {
  try {
    return parse_em_result(log, "md.log");
  } catch (const io_error&) {
    return std::nullopt;
  }
}

} // namespace

em_result read_em_result(const fs::path& log) {
  if (!fs::exists(log))
    throw io_error(log, 0, "no such log file");
  return parse_em_result(read_tail(log, 64 * 1024), log);
}

// ---------------------------------------------------------------------------------------------

gmx_runner::gmx_runner(gmx_config config) : config_(std::move(config)) {}

grompp_result gmx_runner::grompp(const grompp_input& in, const std::atomic<bool>* cancel) const {
  auto start = clock_type::now();
  auto work_dir = prepare_work_dir(in.work_dir);
  auto tpr = absolute_or_empty(in.output);
  if (tpr.empty())
    throw io_error(in.mdp, 0, "grompp needs an output .tpr path");
  const auto stem = tpr.stem().string();
  std::vector<std::string> args{config_.gmx, "grompp",
                                "-f",        absolute_or_empty(in.mdp).string(),
                                "-c",        absolute_or_empty(in.structure).string(),
                                "-p",        absolute_or_empty(in.topology).string(),
                                "-o",        tpr.string(),
                                "-po",       (work_dir / (stem + ".mdout.mdp")).string(),
                                "-maxwarn",  std::to_string(in.maxwarn)};
  if (!in.index.empty())
    args.insert(args.end(), {"-n", absolute_or_empty(in.index).string()});
  if (!in.restraint_reference.empty())
    args.insert(args.end(), {"-r", absolute_or_empty(in.restraint_reference).string()});
  if (!in.checkpoint.empty())
    args.insert(args.end(), {"-t", absolute_or_empty(in.checkpoint).string()});
  const auto command = join_command(args);
  const auto out_file = work_dir / (stem + ".grompp.stdout");
  const auto err_file = work_dir / (stem + ".grompp.stderr");
  auto child = start_gmx(config_, args, work_dir, out_file, err_file, {}, command);
  int status = 0;
  auto outcome = wait_child(child, status, clock_type::now() + in.timeout, nullptr, cancel,
                            config_.termination_grace);
  auto err = read_tail(err_file);
  gmx_error::details d;
  d.command_line = command;
  d.work_dir = work_dir;
  d.log_tail = last_lines(err, tail_lines);
  if (outcome == wait_outcome::cancelled) {
    d.kind = gmx_error_kind::cancelled;
    d.message = "grompp was cancelled";
    throw gmx_error(std::move(d));
  }
  if (outcome == wait_outcome::timed_out) {
    d.kind = gmx_error_kind::timeout;
    d.message = "grompp did not finish within " + describe_limit(in.timeout);
    throw gmx_error(std::move(d));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fs::exists(tpr)) {
    auto f = failure_details(status, "grompp", err, {});
    f.command_line = std::move(d.command_line);
    f.work_dir = std::move(d.work_dir);
    f.log_tail = std::move(d.log_tail);
    throw gmx_error(std::move(f));
  }
  grompp_result r;
  r.tpr = tpr;
  r.notes = numbered_entries(err, "NOTE");
  r.warnings = numbered_entries(err, "WARNING");
  r.seconds = seconds_since(start);
  return r;
}

struct mdrun_process::impl {
  std::optional<cpl::child_process> child;
  std::chrono::milliseconds grace{3000};
  fs::path work_dir, log, stdout_file, stderr_file;
  std::string deffnm;
  std::string command_line;
  std::atomic<bool> cancel_requested{false};
  const std::atomic<bool>* external_cancel = nullptr;
  std::optional<std::chrono::milliseconds> timeout;
  clock_type::time_point start;
  bool waited = false;
};

mdrun_process::mdrun_process(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
mdrun_process::~mdrun_process() = default;
mdrun_process::mdrun_process(mdrun_process&&) noexcept = default;
mdrun_process& mdrun_process::operator=(mdrun_process&&) noexcept = default;

pid_t mdrun_process::pid() const noexcept {
  return impl_ && impl_->child ? impl_->child->pid() : -1;
}

const std::string& mdrun_process::command_line() const noexcept {
  static const std::string none;
  return impl_ ? impl_->command_line : none;
}

const fs::path& mdrun_process::log_path() const noexcept {
  static const fs::path none;
  return impl_ ? impl_->log : none;
}

void mdrun_process::cancel() const noexcept {
  if (impl_)
    impl_->cancel_requested.store(true);
}

std::optional<mdrun_progress> mdrun_process::progress() const {
  if (!impl_)
    return std::nullopt;
  return parse_progress(read_tail(impl_->log, 64 * 1024));
}

mdrun_result mdrun_process::wait() {
  if (!impl_)
    throw std::logic_error("mdrun_process::wait on a moved-from process");
  auto& s = *impl_;
  if (s.waited || !s.child)
    throw std::logic_error("mdrun_process::wait called twice");
  s.waited = true;
  std::optional<clock_type::time_point> deadline;
  if (s.timeout)
    deadline = s.start + *s.timeout;
  int status = 0;
  auto outcome
    = wait_child(*s.child, status, deadline, &s.cancel_requested, s.external_cancel, s.grace);
  auto err = read_tail(s.stderr_file);
  auto log = read_tail(s.log);
  gmx_error::details d;
  d.command_line = s.command_line;
  d.work_dir = s.work_dir;
  d.log_tail = last_lines(log.empty() ? err : log, tail_lines);
  if (outcome == wait_outcome::cancelled) {
    d.kind = gmx_error_kind::cancelled;
    d.message = "mdrun was cancelled after "
      + describe_limit(std::chrono::milliseconds{
        static_cast<std::int64_t>(seconds_since(s.start) * 1000)});
    throw gmx_error(std::move(d));
  }
  if (outcome == wait_outcome::timed_out) {
    d.kind = gmx_error_kind::timeout;
    d.message = "mdrun did not finish within " + describe_limit(*s.timeout) + "; it was killed";
    throw gmx_error(std::move(d));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    auto f = failure_details(status, "mdrun", err, log);
    f.command_line = std::move(d.command_line);
    f.work_dir = std::move(d.work_dir);
    f.log_tail = std::move(d.log_tail);
    throw gmx_error(std::move(f));
  }
  if (log.find(em_not_finite) != std::string::npos
      || err.find(em_not_finite) != std::string::npos) {
    d.kind = gmx_error_kind::non_finite_energy;
    d.message = "Energy minimization has stopped because the " + std::string{em_not_finite}
      + " (atoms overlap)";
    throw gmx_error(std::move(d));
  }
  if (auto em = minimisation_summary(log); em
      && (!std::isfinite(em->epot_kj_mol) || !std::isfinite(em->fmax_kj_mol_nm)
          || !std::isfinite(em->fnorm_kj_mol_nm))) {
    d.kind = gmx_error_kind::non_finite_energy;
    d.message = "the minimisation ended with non-finite values: Potential Energy "
      + std::to_string(em->epot_kj_mol) + ", Maximum force " + std::to_string(em->fmax_kj_mol_nm)
      + ", Norm of force " + std::to_string(em->fnorm_kj_mol_nm) + " (atoms overlap)";
    throw gmx_error(std::move(d));
  }
  mdrun_result r;
  r.work_dir = s.work_dir;
  r.log = s.log;
  r.confout = s.work_dir / (s.deffnm + ".gro");
  r.energy = s.work_dir / (s.deffnm + ".edr");
  r.checkpoint = s.work_dir / (s.deffnm + ".cpt");
  r.command_line = s.command_line;
  r.last_progress = parse_progress(log);
  r.seconds = seconds_since(s.start);
  return r;
}

mdrun_process gmx_runner::start_mdrun(const fs::path& tpr, const fs::path& work_dir,
                                      const mdrun_options& o,
                                      const std::atomic<bool>* cancel) const {
  auto p = std::make_unique<mdrun_process::impl>();
  p->start = clock_type::now();
  p->work_dir = prepare_work_dir(work_dir);
  p->deffnm = o.deffnm.empty() ? std::string{"md"} : o.deffnm;
  p->log = p->work_dir / (p->deffnm + ".log");
  p->stdout_file = p->work_dir / (p->deffnm + ".stdout");
  p->stderr_file = p->work_dir / (p->deffnm + ".stderr");
  p->grace = config_.termination_grace;
  p->external_cancel = cancel;
  p->timeout = o.timeout;
  std::vector<std::string> args{config_.gmx, "mdrun",  "-s", absolute_or_empty(tpr).string(),
                                "-deffnm",   p->deffnm};
  auto add = [&args](std::string flag, std::string value) {
    args.push_back(std::move(flag));
    args.push_back(std::move(value));
  };
  if (o.threads > 0)
    add("-nt", std::to_string(o.threads));
  if (o.mpi_threads > 0)
    add("-ntmpi", std::to_string(o.mpi_threads));
  if (o.omp_threads > 0)
    add("-ntomp", std::to_string(o.omp_threads));
  if (o.pin != pinning::automatic)
    add("-pin", o.pin == pinning::on ? "on" : "off");
  if (o.pin_offset >= 0)
    add("-pinoffset", std::to_string(o.pin_offset));
  if (o.pin_stride > 0)
    add("-pinstride", std::to_string(o.pin_stride));
  if (!o.gpu_id.empty())
    add("-gpu_id", o.gpu_id);
  if (!o.checkpoint.empty())
    add("-cpi", absolute_or_empty(o.checkpoint).string());
  if (o.max_hours) {
    std::ostringstream h;
    h << *o.max_hours;
    add("-maxh", h.str());
  }
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  p->command_line = join_command(args);
  p->child.emplace(start_gmx(config_, args, p->work_dir, p->stdout_file, p->stderr_file,
                             o.environment, p->command_line));
  return mdrun_process(std::move(p));
}

mdrun_result gmx_runner::mdrun(const fs::path& tpr, const fs::path& work_dir,
                               const mdrun_options& options,
                               const std::atomic<bool>* cancel) const {
  return start_mdrun(tpr, work_dir, options, cancel).wait();
}

} // namespace mummi::md
