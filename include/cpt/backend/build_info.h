#pragma once
// What this build of cpt-train was compiled against and what the machine
// offers; printed by `cpt-train version`.

#include <string>

namespace cpt::backend {

struct BuildInfo {
  std::string torch_version;  // LibTorch the binary links, e.g. "1.13.1"
  bool cuda_built = false;    // LibTorch compiled with CUDA
  int cuda_devices = 0;       // visible CUDA devices (0 without CUDA)
  int cpu_threads = 0;        // ATen intra-op threads
};

BuildInfo build_info();

}  // namespace cpt::backend
