#include "cpt/backend/cpu_threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>

namespace cpt::backend {

int allowed_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

void configure_cpu_threads() {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return;
  int threads = allowed_cpus();
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE")) threads = std::max(1, threads / std::max(1, std::atoi(local)));
  at::set_num_threads(threads);
}

std::string describe_cpu_threads() {
  const int threads = at::get_num_threads();
  return std::to_string(threads) + (threads == 1 ? " CPU thread" : " CPU threads");
}

}  // namespace cpt::backend
