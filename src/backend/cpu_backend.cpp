#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <atomic>
#include <fmt/format.h>
#include <string>

#include "backends.h"
#include "cpt/backend/autocast.h"

namespace cpt::backend {

namespace {

// Host memory in tensors, counted as CUDA's caching allocator counts device
// memory: LibTorch's own CPU allocation (c10::alloc_cpu, 64-byte aligned)
// behind a 64-byte header that records the size, adding each allocation
// to a live total and keeping its high-water mark. The resident set would
// count the libraries, the data loader's maps and malloc's free lists too,
// none of which the plan estimates. The data pointer is its own context
// (a "simple" pointer): oneDNN's scratch buffers need that (raw_allocate).
class CountingCpuAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kHeader = 64;  // keeps c10's 64-byte alignment

  c10::DataPtr allocate(size_t n) override {
    if (n == 0) return {nullptr, nullptr, &release, c10::Device(c10::DeviceType::CPU)};
    auto* base = static_cast<uint8_t*>(c10::alloc_cpu(n + kHeader));
    *reinterpret_cast<size_t*>(base) = n;
    void* data = base + kHeader;
    const int64_t live = live_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = peak_.load();
    while (live > peak && !peak_.compare_exchange_weak(peak, live)) {
    }
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(live_.load()); }

 private:
  static void release(void* data) {
    if (data == nullptr) return;
    auto* base = static_cast<uint8_t*>(data) - kHeader;
    live_.fetch_sub(static_cast<int64_t>(*reinterpret_cast<size_t*>(base)));
    c10::free_cpu(base);
  }

  static inline std::atomic<int64_t> live_{0};
  std::atomic<int64_t> peak_{0};
};

// Installed once, before the first model is built, for the whole process
// (an allocator must outlive every tensor it made).
CountingCpuAllocator& counting_allocator() {
  static CountingCpuAllocator* allocator = [] {
    auto* a = new CountingCpuAllocator();
    c10::SetCPUAllocator(a, /*priority=*/1);
    return a;
  }();
  return *allocator;
}

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  c10::Device device() const override { return c10::Device(c10::DeviceType::CPU); }
  bool supports_bf16() const override { return cpu_supports_bf16(); }
  std::string process_group_backend() const override { return "gloo"; }
  void synchronize() const override {}
  CpuBackend() { counting_allocator(); }
  MemoryStats memory() const override { return {counting_allocator().peak(), "peak allocated"}; }
  void reset_peak_memory() override { counting_allocator().reset_peak(); }
  at::Tensor to_device(const at::Tensor& host) const override { return host; }
};

}  // namespace

Availability probe_cpu() {
  return {"cpu", true,
          fmt::format("{} threads, bf16 autocast {}", at::get_num_threads(),
                      cpu_supports_bf16() ? "yes (AVX-512)" : "no (no AVX-512: fp32)")};
}

std::unique_ptr<Backend> create_cpu(int /*local_rank*/) { return std::make_unique<CpuBackend>(); }

}  // namespace cpt::backend
