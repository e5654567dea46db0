#pragma once

/// Runs the GROMACS programs `gmx grompp` and `gmx mdrun` as managed child processes: their
/// output goes to files in the work directory, a run has a wall-clock limit and can be
/// cancelled from another thread, and every failure becomes a `gmx_error` of a known kind.
/// No GROMACS process is ever left behind: a run that times out, is cancelled or whose handle
/// is destroyed is terminated with its whole process group (SIGTERM, a grace period, SIGKILL)
/// and reaped, and the kernel kills it (PR_SET_PDEATHSIG, SIGKILL) if the thread that started
/// it ends, which includes the mummi process dying.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mummi/md_bridge/errors.hpp"

namespace mummi::md {

/// Which GROMACS to run and how.
struct gmx_config {
  /// The `gmx` program: a name searched in PATH or any path (users bring their own GPU
  /// build, e.g. "/opt/gromacs-2024/bin/gmx" or "gmx_mpi").
  std::string gmx = "gmx";
  /// Variables added to the environment of every GROMACS process (e.g. GMX_MAXBACKUP=-1).
  std::vector<std::pair<std::string, std::string>> environment{};
  /// Between SIGTERM and SIGKILL when a run is stopped (GROMACS writes a checkpoint on
  /// SIGTERM at its next neighbour-search step).
  std::chrono::milliseconds termination_grace{3000};
};

enum class gmx_error_kind {
  not_found,         ///< the gmx program is missing or not executable
  fatal_error,       ///< GROMACS reported an error (its text is in the message)
  lincs_failure,     ///< LINCS could not satisfy the constraints: the system blew up
  settle_failure,    ///< SETTLE could not settle water molecules: the system blew up
  non_finite_energy, ///< energies or forces not finite (or absurdly high): overlapping atoms
  timeout,           ///< the wall-clock limit ran out; the run was killed
  cancelled,         ///< the run was cancelled; it was killed
  crashed,           ///< ended by a signal or a non-zero exit without a recognised message
};

/// "not_found", "fatal_error", ...
std::string_view to_string(gmx_error_kind kind) noexcept;

/// A GROMACS program that failed. `what()` holds the kind, GROMACS's own message, the command
/// line, the work directory and the last lines of its output.
class gmx_error : public md_error {
public:
  using kind = gmx_error_kind;
  struct details {
    gmx_error_kind kind = gmx_error_kind::crashed;
    std::string message{};      ///< GROMACS's error text, or what happened
    std::string source_file{};  ///< GROMACS source file it named ("src/gromacs/...cpp")
    int source_line = 0;        ///< and the line there; 0 when it named none
    std::string command_line{}; ///< as run, arguments separated by spaces
    std::filesystem::path work_dir{};
    std::string log_tail{}; ///< last lines of md.log, or of the program's stderr
  };
  explicit gmx_error(details d);
  /// A failure found by the caller in a run's results (e.g. a minimisation that ended with
  /// forces too large); `message` says what.
  gmx_error(gmx_error_kind k, const std::string& message);
  gmx_error_kind what_kind() const noexcept {
    return d_.kind;
  }
  const details& info() const noexcept {
    return d_;
  }

private:
  details d_;
};

/// What GROMACS reported in a piece of its output (stderr or md.log text).
struct gmx_diagnosis {
  /// Nothing when the text holds no error block and no blow-up warning.
  std::optional<gmx_error_kind> kind{};
  /// The error block ("Fatal error:\n...", "Error in user input:\n..."), preceded by grompp's
  /// ERROR and WARNING entries; or the first LINCS/SETTLE warning when only those were seen.
  std::string message{};
  std::string source_file{};
  int source_line = 0;
};

/// Finds GROMACS's error block and blow-up warnings in `text`. Pure; thread-safe.
gmx_diagnosis diagnose_gmx_output(std::string_view text);

/// Relative paths below are relative to the caller's current directory.
struct grompp_input {
  std::filesystem::path mdp{};
  std::filesystem::path structure{};           ///< -c (.gro, .pdb, ...)
  std::filesystem::path topology{};            ///< -p
  std::filesystem::path index{};               ///< -n; empty: none
  std::filesystem::path restraint_reference{}; ///< -r; empty: none
  std::filesystem::path checkpoint{};          ///< -t (continue from its state); empty: none
  std::filesystem::path output{};              ///< -o, the .tpr
  /// grompp runs here and writes <output stem>.mdout.mdp, <output stem>.grompp.stdout and
  /// .grompp.stderr here. Created when missing.
  std::filesystem::path work_dir = ".";
  int maxwarn = 0;
  std::chrono::milliseconds timeout{std::chrono::minutes{5}};
};

struct grompp_result {
  std::filesystem::path tpr{};         ///< absolute
  std::vector<std::string> notes{};    ///< grompp's NOTE entries, one string each
  std::vector<std::string> warnings{}; ///< its WARNING entries (tolerated by maxwarn)
  double seconds = 0;
};

enum class pinning { automatic, on, off };

/// How to run mdrun (the input and the directory are arguments of the calls).
struct mdrun_options {
  /// mdrun's files are named after it; its stdout/stderr go to <deffnm>.stdout / .stderr.
  std::string deffnm = "md";
  int threads = 0;     ///< -nt (0: not given, mdrun decides)
  int mpi_threads = 0; ///< -ntmpi (0: not given)
  int omp_threads = 0; ///< -ntomp (0: not given)
  pinning pin = pinning::automatic;
  int pin_offset = -1;  ///< -pinoffset (-1: not given)
  int pin_stride = 0;   ///< -pinstride (0: not given)
  std::string gpu_id{}; ///< -gpu_id (empty: not given)
  /// Variables for this run only (e.g. CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS).
  std::vector<std::pair<std::string, std::string>> environment{};
  std::filesystem::path checkpoint{};                 ///< -cpi: continue from it; empty: none
  std::optional<double> max_hours{};                  ///< -maxh
  std::vector<std::string> extra_args{};              ///< appended as given
  std::optional<std::chrono::milliseconds> timeout{}; ///< wall clock; none: no limit
};

/// Where a run is, from the last step header of its md.log.
struct mdrun_progress {
  std::int64_t step = 0;
  double time_ps = 0;
};

/// Files of a finished run (absolute paths; a file the run did not write does not exist).
struct mdrun_result {
  std::filesystem::path work_dir{};
  std::filesystem::path log{};        ///< <deffnm>.log
  std::filesystem::path confout{};    ///< <deffnm>.gro, final coordinates
  std::filesystem::path energy{};     ///< <deffnm>.edr
  std::filesystem::path checkpoint{}; ///< <deffnm>.cpt
  std::string command_line{};
  std::optional<mdrun_progress> last_progress{};
  double seconds = 0;
};

/// Energy minimisation outcome as GROMACS writes it at the end of md.log.
struct em_result {
  double epot_kj_mol = 0;
  double fmax_kj_mol_nm = 0;
  int fmax_atom = 0; ///< 1-based, as GROMACS prints it
  /// Root mean square force. GROMACS's Fmax skips non-finite forces; this one does not (NaN
  /// when any force is NaN), so check it too.
  double fnorm_kj_mol_nm = 0;
  int steps = 0;          ///< as GROMACS counts them ("in 1001 steps")
  bool converged = false; ///< Fmax reached the requested tolerance
};

/// Reads the minimisation summary from md.log text; throws io_error naming `log_name` when
/// there is none (the run did not finish) or it is malformed. Non-finite values are returned
/// as NaN/inf, not rejected.
em_result parse_em_result(std::string_view log_text, const std::filesystem::path& log_name);
/// parse_em_result on a log file.
em_result read_em_result(const std::filesystem::path& log);
/// The last "Step Time" header of md.log text; nothing when there is none yet.
std::optional<mdrun_progress> parse_progress(std::string_view log_text);

/// A running `gmx mdrun`, owned by one object. The thread that starts it must outlive the
/// process (the kernel kills mdrun when that thread ends) and is the one that calls wait();
/// cancel() and progress() may be called from any thread while the object lives.
class mdrun_process {
public:
  /// Terminates and reaps a run still going (its whole process group).
  ~mdrun_process();
  mdrun_process(mdrun_process&&) noexcept;
  mdrun_process& operator=(mdrun_process&&) noexcept;
  mdrun_process(const mdrun_process&) = delete;
  mdrun_process& operator=(const mdrun_process&) = delete;

  pid_t pid() const noexcept;
  const std::string& command_line() const noexcept;
  /// The run's md.log (it may not exist yet).
  const std::filesystem::path& log_path() const noexcept;
  /// Stops the run: wait() kills it and throws gmx_error(cancelled). Any thread; never blocks.
  void cancel() const noexcept;
  /// Reads md.log; any thread.
  std::optional<mdrun_progress> progress() const;
  /// Blocks until mdrun ends, its timeout runs out or it is cancelled. Returns the run's files
  /// when mdrun exited 0 and reported no failure; else throws gmx_error (a minimisation that
  /// stopped on non-finite forces, or ended with a non-finite energy or force, is a failure).
  /// Owner thread only; once.
  mdrun_result wait();

private:
  friend class gmx_runner;
  struct impl;
  explicit mdrun_process(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Runs GROMACS programs with one configuration. Immutable: any thread may use one runner.
class gmx_runner {
public:
  explicit gmx_runner(gmx_config config);
  const gmx_config& config() const noexcept {
    return config_;
  }
  /// Runs `gmx grompp`; blocks the calling thread. Throws gmx_error.
  grompp_result grompp(const grompp_input& in, const std::atomic<bool>* cancel = nullptr) const;
  /// Starts `gmx mdrun -s tpr` in `work_dir` (created when missing). `cancel`, when given, is
  /// a flag another thread may raise to stop the run; it must outlive the run. Throws
  /// gmx_error (not_found when the gmx program cannot be started).
  mdrun_process start_mdrun(const std::filesystem::path& tpr, const std::filesystem::path& work_dir,
                            const mdrun_options& options,
                            const std::atomic<bool>* cancel = nullptr) const;
  /// start_mdrun + wait().
  mdrun_result mdrun(const std::filesystem::path& tpr, const std::filesystem::path& work_dir,
                     const mdrun_options& options, const std::atomic<bool>* cancel = nullptr) const;

private:
  gmx_config config_;
};

} // namespace mummi::md
