// No GROMACS process outlives the process that started it: a helper starts mdrun through the
// runner and is killed with SIGKILL; mdrun must die too (PR_SET_PDEATHSIG).

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "mummi/coupling/child_process.hpp"
#include "mummi/md_bridge/gmx_runner.hpp"

#include "../support/md_files.hpp"

namespace md = mummi::md;
namespace cpl = mummi::coupling;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bool has_steps(const fs::path& log) {
  return md::parse_progress(mummi::test::read_file(log)).has_value();
}

class gmx_runner_fault_test : public ::testing::Test {
protected:
  mummi::test::temp_dir tmp_{"mummi-runner-fault"};
  fs::path dir = tmp_.path();
};

TEST_F(gmx_runner_fault_test, mdrun_dies_when_its_parent_is_killed) {
  md::gmx_runner runner{md::gmx_config{}};
  const fs::path data = fs::path{MD_TEST_DATA} / "runner";
  auto tpr = runner
               .grompp({.mdp = data / "md_endless.mdp",
                        .structure = data / "chain.gro",
                        .topology = data / "chain.top",
                        .output = dir / "endless.tpr",
                        .work_dir = dir})
               .tpr;
  // Orphans of the helper are handed to this process, which can then reap them and see how
  // they ended.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t mdrun_pid = -1;
  {
    cpl::child_process helper({KILL_HELPER_PATH, tpr.string(), (dir / "run").string()},
                              {.stdout_pipe = true});
    auto line = helper.read_line(60s);
    ASSERT_TRUE(line) << "the helper printed no mdrun pid";
    ASSERT_EQ(line->rfind("mdrun ", 0), 0u) << *line;
    mdrun_pid = static_cast<pid_t>(std::stol(line->substr(6)));
    // Let mdrun get going (its log shows steps) before the parent is killed.
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline && !has_steps(dir / "run" / "md.log"))
      std::this_thread::sleep_for(50ms);
    helper.kill(SIGKILL);
    auto st = helper.wait_for(10s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << cpl::describe_wait_status(*st);
  }
  int status = 0;
  pid_t reaped = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    reaped = ::waitpid(mdrun_pid, &status, WNOHANG);
    if (reaped != 0)
      break;
    std::this_thread::sleep_for(20ms);
  }
  if (reaped == 0)
    ::kill(mdrun_pid, SIGKILL); // do not leave it behind even when the test fails
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_EQ(reaped, mdrun_pid) << "mdrun survived its parent";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
    << cpl::describe_wait_status(status);
}

} // namespace
