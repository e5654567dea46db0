// Starts `gmx mdrun -s <tpr>` in <dir> through the runner, prints "mdrun <pid>" and then waits
// to be killed: the parent-death test (gmx_runner_fault_test) SIGKILLs this process and checks
// that mdrun dies with it.

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>

#include "mummi/md_bridge/gmx_runner.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s TPR DIR\n", argv[0]);
    return 2;
  }
  try {
    mummi::md::gmx_runner runner{mummi::md::gmx_config{}};
    auto run = runner.start_mdrun(argv[1], argv[2], {.threads = 1});
    std::printf("mdrun %d\n", static_cast<int>(run.pid()));
    std::fflush(stdout);
    for (;;)
      std::this_thread::sleep_for(std::chrono::seconds{1});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
