#include "cpt/backend/cpu_blas.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cpt::backend {

namespace {

using SetThreads = void (*)(int);
using GetThreads = int (*)();

struct OpenBlas {
  SetThreads set = nullptr;
  GetThreads get = nullptr;
};

// OpenMP's team size for the calling thread, through the libgomp that
// LibTorch loads (ATen's own setter is process-wide).
void set_omp_threads_here(int threads) {
  static const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  at::get_num_threads();  // ATen sets a thread's team size on its first parallel call: before ours
  if (set != nullptr) set(threads);
}

const OpenBlas& openblas() {
  static const OpenBlas found = [] {
    OpenBlas o;
    o.set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    o.get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (o.set == nullptr || o.get == nullptr) o = {};
    return o;
  }();
  return found;
}

// Serialises the regions: the thread count is process-wide.
std::mutex g_region;

}  // namespace

void configure_cpu_threads(char** argv) {
  constexpr const char* kDone = "CPT_CPU_THREADS_CONFIGURED";
  if (openblas().get == nullptr || std::getenv(kDone) != nullptr) return;
  // Ranks on one node share its cores. torchrun says how many there are;
  // srun binds each task to its own CPUs, which OpenBLAS counts already.
  int per_process = std::max(1, openblas().get());
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE")) {
    per_process = std::max(1, per_process / std::max(1, std::atoi(local)));
  }
  const std::string count = std::to_string(per_process);
  const char* threads[][2] = {{"OPENBLAS_THREAD_TIMEOUT", "4"},
                              {"OMP_WAIT_POLICY", "PASSIVE"},
                              {"OMP_NUM_THREADS", count.c_str()},
                              {"OPENBLAS_NUM_THREADS", count.c_str()}};
  bool changed = false;
  for (const auto& [name, value] : threads) {
    if (std::getenv(name) == nullptr) {
      setenv(name, value, 1);
      changed = true;
    }
  }
  if (!changed) return;
  setenv(kDone, "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run with the defaults
}

std::string describe_cpu_threads() {
  std::string settings;
  for (const char* name : {"OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY"}) {
    if (const char* value = std::getenv(name)) settings += std::string(", ") + name + "=" + value;
  }
  return std::to_string(at::get_num_threads()) + " CPU threads (OpenBLAS " + std::to_string(openblas_threads()) +
         settings + ")";
}

int openblas_threads() { return openblas().get != nullptr ? openblas().get() : 0; }

void parallel_over_items(int64_t count, const std::function<void(int64_t, int64_t)>& body) {
  const int blas_threads = openblas_threads();
  const int threads = static_cast<int>(std::min<int64_t>(blas_threads, count));
  if (threads <= 1) {
    body(0, count);
    return;
  }
  const std::lock_guard<std::mutex> region(g_region);
  openblas().set(1);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  auto run_part = [&](int part) {
    try {
      const at::AutoGradMode no_grad(false);
      // One thread per part already: ATen's own loops inside stay serial.
      set_omp_threads_here(1);
      body(count * part / threads, count * (part + 1) / threads);
    } catch (...) {
      errors[static_cast<size_t>(part)] = std::current_exception();
    }
  };
  std::vector<std::thread> helpers;
  for (int part = 1; part < threads; ++part) helpers.emplace_back(run_part, part);
  const int omp_threads = at::get_num_threads();
  run_part(0);
  set_omp_threads_here(omp_threads);
  for (auto& helper : helpers) helper.join();
  openblas().set(blas_threads);
  for (const auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

}  // namespace cpt::backend
