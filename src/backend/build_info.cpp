#include "cpt/backend/build_info.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

namespace cpt::backend {

BuildInfo build_info() {
  BuildInfo info;
  info.torch_version = TORCH_VERSION;
  info.cuda_built = at::hasCUDA();
  info.cuda_devices = info.cuda_built ? static_cast<int>(torch::cuda::device_count()) : 0;
  info.cpu_threads = at::get_num_threads();
  return info;
}

}  // namespace cpt::backend
