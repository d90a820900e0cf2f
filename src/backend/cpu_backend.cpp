#include <ATen/Parallel.h>

#include <fmt/format.h>
#include <fstream>
#include <string>

#include "backends.h"
#include "cpt/backend/autocast.h"

namespace cpt::backend {

namespace {

// VmHWM of /proc/self/status: the resident-set high-water mark.
int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  c10::Device device() const override { return c10::Device(c10::DeviceType::CPU); }
  bool supports_bf16() const override { return cpu_supports_bf16(); }
  std::string process_group_backend() const override { return "gloo"; }
  void synchronize() const override {}
  MemoryStats memory() const override { return {peak_rss_bytes(), "peak RSS"}; }
  // Writing 5 to clear_refs resets VmHWM (Linux >= 4.0).
  void reset_peak_memory() override { std::ofstream("/proc/self/clear_refs") << "5"; }
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
