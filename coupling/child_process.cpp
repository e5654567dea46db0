#include "mummi/coupling/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace mummi::coupling {

child_process::child_process(std::vector<std::string> argv, process_pipes p) {
  if (argv.empty())
    throw std::runtime_error("child_process: empty command line");
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int out[2] = {-1, -1};
  int in[2] = {-1, -1};
  if ((p.stdout_pipe && ::pipe2(out, O_CLOEXEC) != 0)
      || (p.stdin_pipe && ::pipe2(in, O_CLOEXEC) != 0))
    throw std::runtime_error(std::string{"pipe: "} + std::strerror(errno));
  if (p.stdout_pipe)
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  if (p.stdin_pipe)
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  int rc = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (p.stdout_pipe) {
    ::close(out[1]);
    stdout_fd_ = out[0];
  }
  if (p.stdin_pipe) {
    ::close(in[0]);
    stdin_fd_ = in[1];
  }
  if (rc != 0) {
    if (stdout_fd_ >= 0)
      ::close(stdout_fd_);
    close_stdin();
    pid_ = -1;
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
}

child_process::~child_process() {
  // A child reading its stdin gets EOF first and a moment to finish on its own.
  bool had_stdin = stdin_fd_ >= 0;
  close_stdin();
  if (had_stdin)
    (void)wait_for(std::chrono::seconds{2});
  reap_or_kill();
  if (stdout_fd_ >= 0)
    ::close(stdout_fd_);
}

void child_process::close_stdin() {
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

child_process::child_process(child_process&& other) noexcept
  : pid_(std::exchange(other.pid_, -1)), stdout_fd_(std::exchange(other.stdout_fd_, -1)),
    stdin_fd_(std::exchange(other.stdin_fd_, -1)), status_(std::move(other.status_)),
    buffer_(std::move(other.buffer_)) {}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    close_stdin();
    reap_or_kill();
    if (stdout_fd_ >= 0)
      ::close(stdout_fd_);
    pid_ = std::exchange(other.pid_, -1);
    stdout_fd_ = std::exchange(other.stdout_fd_, -1);
    stdin_fd_ = std::exchange(other.stdin_fd_, -1);
    status_ = std::move(other.status_);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

void child_process::reap_or_kill() {
  if (pid_ <= 0 || status_)
    return;
  if (running()) {
    ::kill(pid_, SIGTERM);
    if (!wait_for(std::chrono::seconds{2})) {
      ::kill(pid_, SIGKILL);
      (void)wait_for(std::chrono::seconds{10});
    }
  }
}

bool child_process::running() {
  if (pid_ <= 0 || status_)
    return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return r == 0;
}

void child_process::kill(int signal) {
  if (running())
    ::kill(pid_, signal);
}

std::optional<int> child_process::wait_for(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  }
  return status_;
}

std::optional<std::string> child_process::read_line(std::chrono::milliseconds timeout) {
  if (stdout_fd_ < 0)
    return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      auto line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    pollfd p{stdout_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return std::nullopt;
    char chunk[4096];
    auto n = ::read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0)
      return std::nullopt;
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status))
    return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " ("
      + ::strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

} // namespace mummi::coupling
