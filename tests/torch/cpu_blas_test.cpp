// Independent matrix products on separate threads with a single-threaded
// BLAS, and the threading cpt-train sets for itself.

#include "cpt/backend/cpu_blas.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <fmt/format.h>
#include <vector>

#include "support/run_command.h"

namespace cpt::backend {
namespace {

TEST(CpuBlas, ParallelOverItemsCoversEachItemOnceAndRestoresOpenBlas) {
  const int blas_threads = openblas_threads();
  ASSERT_GT(blas_threads, 0) << "Debian's LibTorch links OpenBLAS";
  std::vector<std::atomic<int>> seen(37);
  std::atomic<int> parts{0}, grad_mode_on{0};
  parallel_over_items(37, [&](int64_t first, int64_t last) {
    ++parts;
    if (at::GradMode::is_enabled()) ++grad_mode_on;
    // A matrix product per item, as attention makes them.
    auto a = torch::randn({64, 32}), b = torch::randn({32, 64});
    for (int64_t i = first; i < last; ++i) {
      EXPECT_TRUE(torch::allclose(torch::mm(a, b), (a.unsqueeze(2) * b.unsqueeze(0)).sum(1), 1e-4, 1e-4));
      ++seen[static_cast<size_t>(i)];
    }
  });
  for (const auto& count : seen) EXPECT_EQ(count.load(), 1);
  EXPECT_EQ(parts.load(), std::min(blas_threads, 37));
  EXPECT_EQ(grad_mode_on.load(), 0);
  EXPECT_EQ(openblas_threads(), blas_threads) << "the BLAS thread count is restored";
}

TEST(CpuBlas, AnExceptionInAHelperThreadReachesTheCaller) {
  const bool parallel = openblas_threads() > 1;  // else the one part runs here
  EXPECT_THROW(parallel_over_items(8, [&](int64_t first, int64_t) {
                 if (first > 0 || !parallel) throw std::runtime_error("part failed");
               }),
               std::runtime_error);
}

// cpt-train's model-running commands give ATen as many threads as OpenBLAS
// has (shared among the ranks torchrun says run on the node), unless told
// otherwise; the debug log says how many.
TEST(CpuBlas, TheBinaryConfiguresItsThreadsAndKeepsTheUsers) {
  const std::string generate = std::string(" ") + CPT_BINARY + " generate --log-level debug --checkpoint /nonexistent --prompt x";
  const auto chosen = testing::run_command(
      "env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY -u OPENBLAS_THREAD_TIMEOUT -u CPT_CPU_THREADS_CONFIGURED" + generate);
  EXPECT_NE(chosen.err.find(fmt::format("{} CPU threads", openblas_threads())), std::string::npos) << chosen.err;
  const auto users = testing::run_command("env OMP_NUM_THREADS=1" + generate);
  EXPECT_NE(users.err.find("1 CPU threads"), std::string::npos) << users.err;
  // Two ranks on this node (torchrun's variable): half the cores each.
  const int half = std::max(1, openblas_threads() / 2);
  const auto shared = testing::run_command(
      "env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY -u OPENBLAS_THREAD_TIMEOUT -u OPENBLAS_NUM_THREADS "
      "-u CPT_CPU_THREADS_CONFIGURED LOCAL_WORLD_SIZE=2" + generate);
  EXPECT_NE(shared.err.find(fmt::format("{} CPU threads (OpenBLAS {},", half, half)), std::string::npos) << shared.err;
}

}  // namespace
}  // namespace cpt::backend
