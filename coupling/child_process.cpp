#include "mummi/coupling/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

extern char** environ;

namespace mummi::coupling {

namespace {

/// Closes a file descriptor at the end of a scope unless released.
class fd_guard {
public:
  explicit fd_guard(int fd = -1) : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  int get() const noexcept {
    return fd_;
  }
  int release() noexcept {
    return std::exchange(fd_, -1);
  }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_;
};

[[noreturn]] void throw_errno(const std::string& what, int error) {
  throw start_error(what + ": " + std::strerror(error), error);
}

/// The file exec will run: `name` itself when it has a slash, else the first executable
/// regular file called `name` in PATH (resolved here, before fork, so that the child only
/// makes system calls).
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return name;
  const char* env_path = std::getenv("PATH");
  std::string_view path = env_path ? env_path : "/usr/local/bin:/usr/bin:/bin";
  int error = ENOENT;
  for (;;) {
    auto colon = path.find(':');
    std::string dir{path.substr(0, colon)};
    std::string candidate = (dir.empty() ? std::string{"."} : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0)
        return candidate;
      error = EACCES;
    }
    if (colon == std::string_view::npos)
      break;
    path.remove_prefix(colon + 1);
  }
  throw_errno("cannot start " + name, error);
}

std::vector<std::string>
child_environment(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry{*e};
    auto key = entry.substr(0, entry.find('='));
    bool replaced = std::any_of(extra.begin(), extra.end(), [key](const auto& kv) {
      return kv.first == key;
    });
    if (!replaced)
      env.emplace_back(entry);
  }
  for (const auto& [key, value] : extra)
    env.push_back(key + "=" + value);
  return env;
}

int open_for_child(const std::filesystem::path& file, int flags) {
  int fd = ::open(file.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0)
    throw_errno("cannot open " + file.string() + " for a child process", errno);
  return fd;
}

/// Runs in the vforked child (on the owner's memory, which it must not change): only
/// async-signal-safe calls until exec. Reports a failure as
/// its errno through `report_fd` and exits.
[[noreturn]] void exec_child(const char* program, char* const* argv, char* const* envp,
                             const char* directory, int in_fd, int out_fd, int err_fd,
                             bool own_group, int death_signal, pid_t parent, int report_fd) {
  auto fail = [report_fd](int error) {
    [[maybe_unused]] auto n = ::write(report_fd, &error, sizeof(error));
    ::_exit(127);
  };
  if (own_group && ::setpgid(0, 0) != 0)
    fail(errno);
  if (death_signal != 0) {
    if (::prctl(PR_SET_PDEATHSIG, death_signal) != 0)
      fail(errno);
    // The owner may have died before prctl took effect.
    if (::getppid() != parent)
      ::_exit(127);
  }
  // Start from default signal dispositions and an empty mask, whatever the owner thread had.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    ::sigaction(sig, &sa, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (directory && ::chdir(directory) != 0)
    fail(errno);
  if ((in_fd >= 0 && ::dup2(in_fd, STDIN_FILENO) < 0)
      || (out_fd >= 0 && ::dup2(out_fd, STDOUT_FILENO) < 0)
      || (err_fd >= 0 && ::dup2(err_fd, STDERR_FILENO) < 0))
    fail(errno);
  ::execve(program, argv, envp);
  fail(errno);
  ::_exit(127); // not reached
}

/// Starts the child with vfork: unlike fork, it neither copies the owner's page tables (large
/// with LibTorch loaded) nor runs pthread_atfork handlers, among them OpenBLAS's, which stops
/// its thread pool under a BLAS call running in another thread and leaves that call waiting
/// for ever. Every signal is blocked around the vfork so that no handler of the owner runs in
/// the child before exec_child resets them. Returns the pid, or -1 with errno set.
pid_t start_child(const char* program, char* const* argv, char* const* envp,
                  const char* directory, int in_fd, int out_fd, int err_fd, bool own_group,
                  int death_signal, pid_t parent, int report_fd) {
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::vfork();
  if (pid == 0)
    exec_child(program, argv, envp, directory, in_fd, out_fd, err_fd, own_group, death_signal,
               parent, report_fd);
  const int error = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = error;
  return pid;
}

} // namespace

child_process::child_process(std::vector<std::string> argv, process_pipes p, spawn_options o)
  : own_group_(o.own_process_group), grace_(o.termination_grace) {
  if (argv.empty())
    throw std::runtime_error("child_process: empty command line");
  if (p.stdout_pipe && !o.stdout_file.empty())
    throw std::invalid_argument("child_process: stdout cannot be both a pipe and a file");
  auto program = find_program(argv[0]);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  auto env_strings = child_environment(o.environment);
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  // Descriptors the child gets (closed here once it has them) and the owner's ends.
  fd_guard child_in, child_out, child_err, own_out, own_in;
  int fds[2] = {-1, -1};
  if (p.stdout_pipe) {
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw_errno("pipe", errno);
    own_out.reset(fds[0]);
    child_out.reset(fds[1]);
  } else if (!o.stdout_file.empty()) {
    child_out.reset(open_for_child(o.stdout_file, O_WRONLY | O_CREAT | O_TRUNC));
  }
  if (p.stdin_pipe) {
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw_errno("pipe", errno);
    child_in.reset(fds[0]);
    own_in.reset(fds[1]);
  } else if (o.stdin_null) {
    child_in.reset(open_for_child("/dev/null", O_RDONLY));
  }
  if (!o.stderr_file.empty())
    child_err.reset(open_for_child(o.stderr_file, O_WRONLY | O_CREAT | O_TRUNC));
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw_errno("pipe", errno);
  fd_guard report_read(fds[0]), report_write(fds[1]);

  const std::string directory = o.working_directory.string();
  const pid_t parent = ::getpid();
  pid_t pid = start_child(program.c_str(), args.data(), envp.data(),
                          directory.empty() ? nullptr : directory.c_str(), child_in.get(),
                          child_out.get(), child_err.get(), o.own_process_group,
                          o.parent_death_signal, parent, report_write.get());
  if (pid < 0)
    throw_errno("cannot start " + argv[0] + ": vfork", errno);
  pid_ = pid;
  if (own_group_)
    ::setpgid(pid, pid); // also done by the child; whichever runs first wins the race
  report_write.reset();
  child_in.reset();
  child_out.reset();
  child_err.reset();
  int error = 0;
  ssize_t n;
  do {
    n = ::read(report_read.get(), &error, sizeof(error));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(error))) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    throw_errno("cannot start " + argv[0], error);
  }
  pid_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  stdout_fd_ = own_out.release();
  stdin_fd_ = own_in.release();
}

child_process::~child_process() {
  // A child reading its stdin gets EOF first and a moment to finish on its own.
  bool had_stdin = stdin_fd_ >= 0;
  close_stdin();
  if (had_stdin)
    (void)wait_for(std::chrono::seconds{2});
  reap_or_kill();
  release();
}

void child_process::release() noexcept {
  close_stdin();
  if (stdout_fd_ >= 0)
    ::close(stdout_fd_);
  if (pid_fd_ >= 0)
    ::close(pid_fd_);
  stdout_fd_ = -1;
  pid_fd_ = -1;
}

void child_process::close_stdin() {
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

child_process::child_process(child_process&& other) noexcept
  : pid_(std::exchange(other.pid_, -1)), stdout_fd_(std::exchange(other.stdout_fd_, -1)),
    stdin_fd_(std::exchange(other.stdin_fd_, -1)), pid_fd_(std::exchange(other.pid_fd_, -1)),
    own_group_(other.own_group_), grace_(other.grace_), status_(std::move(other.status_)),
    buffer_(std::move(other.buffer_)) {}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    close_stdin();
    reap_or_kill();
    release();
    pid_ = std::exchange(other.pid_, -1);
    stdout_fd_ = std::exchange(other.stdout_fd_, -1);
    stdin_fd_ = std::exchange(other.stdin_fd_, -1);
    pid_fd_ = std::exchange(other.pid_fd_, -1);
    own_group_ = other.own_group_;
    grace_ = other.grace_;
    status_ = std::move(other.status_);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

void child_process::reap_or_kill() {
  if (pid_ <= 0 || status_)
    return;
  (void)terminate(grace_);
}

int child_process::terminate(std::chrono::milliseconds grace) {
  if (running()) {
    kill(SIGTERM);
    if (!wait_for(grace)) {
      kill(SIGKILL);
      // SIGKILL cannot be caught: the child ends; reap it whatever that takes.
      int st = 0;
      if (own_group_) {
        siginfo_t info{};
        while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0
               && errno == EINTR) {
        }
        ::kill(-pid_, SIGKILL);
      }
      pid_t r;
      do {
        r = ::waitpid(pid_, &st, 0);
      } while (r < 0 && errno == EINTR);
      if (r == pid_)
        status_ = st;
    }
  }
  return status_.value_or(-1);
}

bool child_process::running() {
  if (pid_ <= 0 || status_)
    return false;
  if (own_group_) {
    // See the exit without reaping: while the leader is a zombie its group id cannot be
    // reused, so what is left of the group can be killed safely before the reap.
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
      return false;
    if (info.si_pid != pid_)
      return true;
    ::kill(-pid_, SIGKILL);
  }
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
    ::kill(own_group_ ? -pid_ : pid_, signal);
}

std::optional<int> child_process::wait_for(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    if (pid_fd_ >= 0) {
      // Wakes the moment the child exits.
      pollfd p{pid_fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count() + 1, 1000)));
      if (r < 0 && errno != EINTR)
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
    }
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
