#include "cpt/backend/build_info.h"

#include "cpt/backend/torch_features.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/cuda.h>

#include <fmt/format.h>

namespace cpt::backend {

BuildInfo build_info() {
  BuildInfo info;
  info.torch_version = kTorchVersion;
  // hasCUDART: libtorch_cuda is loaded (hasCUDA would also need a device).
  info.cuda_built = at::detail::getCUDAHooks().hasCUDART();
  if (info.cuda_built) {
    // Both are the versions LibTorch was compiled against (CUDART_VERSION
    // 13000 = 13.0, CUDNN_VERSION 92400 = 9.24.0): they need no device.
    const long cudart = at::detail::getCUDAHooks().versionCUDART();
    info.cuda_version = fmt::format("{}.{}", cudart / 1000, cudart % 1000 / 10);
    if (at::detail::getCUDAHooks().compiledWithCuDNN()) {
      const long cudnn = at::detail::getCUDAHooks().versionCuDNN();
      info.cudnn_version = fmt::format("{}.{}.{}", cudnn / 10000, cudnn % 10000 / 100, cudnn % 100);
    }
  }
  info.cuda_devices = torch::cuda::device_count();
  info.cpu_threads = at::get_num_threads();
  return info;
}

}  // namespace cpt::backend
