// The CPU threads cpt-train gives ATen: the cores it may use, shared among
// the ranks torchrun says run on the node, unless the user chose.

#include "cpt/backend/cpu_threads.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <fmt/format.h>
#include <string>

#include "support/run_command.h"

namespace cpt::backend {
namespace {

int allowed_cpus() {
  cpu_set_t set;
  sched_getaffinity(0, sizeof(set), &set);
  return CPU_COUNT(&set);
}

TEST(CpuThreads, TheBinaryUsesItsCoresSharesThemAmongLocalRanksAndKeepsTheUsers) {
  const std::string generate =
      std::string(" ") + CPT_BINARY + " generate --log-level debug --checkpoint /nonexistent --prompt x";
  const auto chosen = testing::run_command("env -u OMP_NUM_THREADS -u LOCAL_WORLD_SIZE" + generate);
  const auto threads = [](int n) { return fmt::format("{} CPU thread{}", n, n == 1 ? "" : "s"); };
  EXPECT_NE(chosen.err.find(threads(allowed_cpus())), std::string::npos) << chosen.err;
  const auto users = testing::run_command("env OMP_NUM_THREADS=1 LOCAL_WORLD_SIZE=1" + generate);
  EXPECT_NE(users.err.find("1 CPU thread\n"), std::string::npos) << users.err;
  const auto shared = testing::run_command("env -u OMP_NUM_THREADS LOCAL_WORLD_SIZE=2" + generate);
  EXPECT_NE(shared.err.find(threads(std::max(1, allowed_cpus() / 2))), std::string::npos)
      << shared.err;
}

}  // namespace
}  // namespace cpt::backend
