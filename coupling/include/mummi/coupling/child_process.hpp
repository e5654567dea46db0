#pragma once

/// A child process owned by one object: started with fork + exec, reaped by its owner, and
/// never left behind (the destructor terminates and reaps a child that is still running).
/// Not thread-safe: one owner thread at a time.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mummi::coupling {

/// Which of a child's standard streams are connected to its owner.
struct process_pipes {
  bool stdout_pipe = false; ///< read the child's stdout with `child_process::read_line`
  bool stdin_pipe = false;  ///< the child's stdin stays open until `close_stdin` or the end
};

/// How a child is started, beyond its command line. The defaults start it as a plain child
/// sharing its owner's directory, environment, streams and process group.
struct spawn_options {
  /// Directory the child starts in; empty: the owner's current directory.
  std::filesystem::path working_directory;
  /// Variables added to (or replacing those of) the owner's environment.
  std::vector<std::pair<std::string, std::string>> environment;
  /// Files that receive the child's stdout / stderr (created or truncated); empty: inherited.
  /// `stdout_file` cannot be combined with `process_pipes::stdout_pipe`.
  std::filesystem::path stdout_file;
  std::filesystem::path stderr_file;
  /// The child reads /dev/null instead of the owner's stdin (ignored with a stdin pipe).
  bool stdin_null = false;
  /// The child leads a process group of its own; every signal the owner sends (kill, the
  /// destructor's termination) goes to that whole group, and whatever is left of the group
  /// when the child ends is killed with SIGKILL.
  bool own_process_group = false;
  /// Signal the kernel sends to the child when the thread that started it ends, which
  /// includes the owner process dying, even by SIGKILL (PR_SET_PDEATHSIG); 0: none.
  /// The starting thread must therefore outlive the child (e.g. start and wait on one thread).
  int parent_death_signal = 0;
  /// How long the destructor waits after SIGTERM before it sends SIGKILL.
  std::chrono::milliseconds termination_grace{2000};
};

/// The program could not be started (not found, not executable, a bad working directory or
/// output file). `error_number()` is the errno value of the failing call.
class start_error : public std::runtime_error {
public:
  start_error(const std::string& what, int error_number)
    : std::runtime_error(what), error_number_(error_number) {}
  int error_number() const noexcept {
    return error_number_;
  }

private:
  int error_number_;
};

class child_process {
public:
  /// Starts `argv[0]` (searched in PATH when it has no slash) with `argv`. Throws
  /// `start_error` (a std::runtime_error) when the program cannot be started.
  explicit child_process(std::vector<std::string> argv, process_pipes p = {}, spawn_options o = {});
  /// Sends SIGTERM to a child still running (its group with `own_process_group`), waits up to
  /// `termination_grace`, then SIGKILL; always reaps.
  ~child_process();
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&& other) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept {
    return pid_;
  }
  bool running();
  /// Sends `signal` if the child is still running (to its whole group with
  /// `own_process_group`).
  void kill(int signal);
  /// Waits up to `timeout` for the child to exit; returns its wait status (as waitpid gives it)
  /// or nothing on timeout.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  /// SIGTERM, up to `grace` for the child to end, then SIGKILL; returns the wait status.
  int terminate(std::chrono::milliseconds grace);
  /// Reads one line of the child's stdout (without the newline); nothing on timeout or EOF.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  /// Closes the child's stdin (it reads EOF).
  void close_stdin();

private:
  void reap_or_kill();
  void release() noexcept;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stdin_fd_ = -1;
  int pid_fd_ = -1; ///< becomes readable when the child exits (-1 where pidfd is missing)
  bool own_group_ = false;
  std::chrono::milliseconds grace_{2000};
  std::optional<int> status_;
  std::string buffer_;
};

/// "exit 0", "exit 3", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

} // namespace mummi::coupling
