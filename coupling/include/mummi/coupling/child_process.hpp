#pragma once

/// A child process owned by one object: started with posix_spawn, reaped by its owner, and
/// never left behind (the destructor terminates and reaps a child that is still running).
/// Not thread-safe: one owner thread at a time.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace mummi::coupling {

/// Which of a child's standard streams are connected to its owner.
struct process_pipes {
  bool stdout_pipe = false; ///< read the child's stdout with `child_process::read_line`
  bool stdin_pipe = false;  ///< the child's stdin stays open until `close_stdin` or the end
};

class child_process {
public:
  /// Starts `argv[0]` (searched in PATH when it has no slash) with `argv`. Throws
  /// std::runtime_error when the program cannot be started.
  explicit child_process(std::vector<std::string> argv, process_pipes p = {});
  /// Sends SIGTERM to a child still running, waits up to 2 s, then SIGKILL; always reaps.
  ~child_process();
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&& other) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept {
    return pid_;
  }
  bool running();
  /// Sends `signal` if the child is still running.
  void kill(int signal);
  /// Waits up to `timeout` for the child to exit; returns its wait status (as waitpid gives it)
  /// or nothing on timeout.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  /// Reads one line of the child's stdout (without the newline); nothing on timeout or EOF.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  /// Closes the child's stdin (it reads EOF).
  void close_stdin();

private:
  void reap_or_kill();
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stdin_fd_ = -1;
  std::optional<int> status_;
  std::string buffer_;
};

/// "exit 0", "exit 3", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

} // namespace mummi::coupling
