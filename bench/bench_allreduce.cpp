// Gradient all-reduce bandwidth of the trainer's data-parallel path
// (DataParallel: flat gradient buffer, ~bucket_mb buckets started in order,
// averaged) against a bare c10d Gloo all-reduce of the same bytes as one
// tensor, in the same run. Run as every rank of a job (torchrun variables or
// SLURM's); rank 0 prints the table.
//
// Usage: bench_allreduce [BUCKET_MB]

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <spdlog/spdlog.h>

#include "bench_shapes.h"
#include "cpt/dist/env.h"
#include "cpt/dist/process_group.h"
#include "cpt/model/llama.h"
#include "cpt/train/data_parallel.h"

using Clock = std::chrono::steady_clock;

namespace {

template <class F>
double best_seconds(int runs, F&& f) {
  double best = 1e30;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const double bucket_mb = argc > 1 ? std::atof(argv[1]) : 25.0;
  const cpt::dist::LaunchEnv env = cpt::dist::launch_env_from_environment();
  cpt::dist::Config config;
  config.timeout_s = 120;
  const auto group = cpt::dist::ProcessGroup::connect(env, config);

  cpt::model::Llama model(cpt::bench::shape_97m());  // 390 MB of fp32 gradients
  cpt::train::NamedTensors parameters;
  for (auto& p : model->named_parameters()) parameters.emplace_back(p.key(), p.value());
  cpt::train::DataParallel replicas(*group, parameters, false, static_cast<int64_t>(bucket_mb * 1024 * 1024));
  int64_t elements = 0;
  for (const auto& [name, p] : parameters) elements += p.numel();
  const double bytes = static_cast<double>(elements) * 4;

  // The bare baseline: c10d directly, its own store and group.
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env.master_port + 1);
  store_options.isServer = env.rank == 0;
  store_options.numWorkers = env.world_size;
  auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
  auto options = c10d::ProcessGroupGloo::Options::create();
  options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  auto bare = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
  std::vector<at::Tensor> flat{torch::randn({elements})};

  const int runs = 5;
  for (const auto& [name, p] : parameters) p.grad().normal_();
  const double ours = best_seconds(runs, [&] {
    replicas.zero_grad();
    replicas.finish_gradient_sync();
  });
  // zero_grad is part of our step but not of the baseline: time it alone.
  const double zeroing = best_seconds(runs, [&] { replicas.zero_grad(); });
  const double baseline = best_seconds(runs, [&] { bare->allreduce(flat)->wait(); });

  if (env.rank == 0) {
    std::printf("| ranks | gradient bytes | bucket | trainer sync | bare c10d all-reduce | ratio (goal >= 0.9) |\n");
    std::printf("| --- | --- | --- | --- | --- | --- |\n");
    const double ours_sync = std::max(ours - zeroing, 1e-9);
    std::printf("| %d | %.0f MB | %.0f MB | %.3f s, %.2f GB/s | %.3f s, %.2f GB/s | %.2fx |\n", env.world_size,
                bytes / 1e6, bucket_mb, ours_sync, bytes / ours_sync / 1e9, baseline, bytes / baseline / 1e9,
                baseline / ours_sync);
  }
  return 0;
}
