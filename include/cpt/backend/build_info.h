#pragma once
// What this build of cpt-train was compiled against and what the machine
// offers; printed by `cpt-train version`.

#include <string>

namespace cpt::backend {

struct BuildInfo {
  std::string torch_version;  // LibTorch the binary links, e.g. "2.14.1"
  bool cuda_built = false;    // LibTorch compiled with CUDA
  std::string cuda_version;   // CUDA runtime LibTorch was built with, e.g. "13.0"; empty without CUDA
  std::string cudnn_version;  // cuDNN LibTorch was built with, e.g. "9.24.0"; empty without it
  int cuda_devices = 0;       // visible CUDA devices (0 without a GPU or driver)
  int cpu_threads = 0;        // ATen intra-op threads
};

BuildInfo build_info();

}  // namespace cpt::backend
