// NVIDIA GPUs through LibTorch's CUDA build. Everything but the allocator
// statistics goes through the device-generic ATen API; those need c10_cuda,
// which the build always has (the torch wheel is the CUDA one) but the
// torch 2.11 CPU wheel used for the header compile check has not.

#include <torch/cuda.h>

#include <fmt/format.h>

#include "backends.h"

#if defined(CPT_WITH_CUDA_ALLOCATOR)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace cpt::backend {

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int local_rank)
      : device_(c10::DeviceType::CUDA,
                static_cast<c10::DeviceIndex>(local_rank % static_cast<int>(torch::cuda::device_count()))) {}

  std::string name() const override { return "cuda"; }
  std::string model_name() const override {
#if defined(CPT_WITH_CUDA_ALLOCATOR)
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, device_.index()) == cudaSuccess) return properties.name;
#endif
    return name();
  }
  c10::Device device() const override { return device_; }
  // Every GPU this project targets (A100, H100, H200) has bf16 tensor cores.
  bool supports_bf16() const override { return true; }
  std::string process_group_backend() const override { return "nccl"; }
  void synchronize() const override { torch::cuda::synchronize(device_.index()); }

  MemoryStats memory() const override {
#if defined(CPT_WITH_CUDA_ALLOCATOR)
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
    const auto all = static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE);
    return {stats.allocated_bytes[all].peak, "peak allocated"};
#else
    return {-1, "peak allocated (not built: no c10_cuda)"};
#endif
  }

  void reset_peak_memory() override {
#if defined(CPT_WITH_CUDA_ALLOCATOR)
    c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
#endif
  }

  // Pinned staging lets the copy run asynchronously to the host thread.
  at::Tensor to_device(const at::Tensor& host) const override {
    return host.pin_memory().to(device_, /*non_blocking=*/true);
  }

  // CUDA events: the host queues the next step instead of waiting.
  std::unique_ptr<DeviceTimer> start_timer() const override { return start_event_timer(*this); }

 private:
  c10::Device device_;
};

}  // namespace

Availability probe_cuda() {
  if (!torch::cuda::is_available()) {
    return {"cuda", false, "no CUDA device (none visible to the driver, or CUDA_VISIBLE_DEVICES hides them)"};
  }
  return {"cuda", true, fmt::format("{} device(s)", torch::cuda::device_count())};
}

std::unique_ptr<Backend> create_cuda(int local_rank) { return std::make_unique<CudaBackend>(local_rank); }

}  // namespace cpt::backend
