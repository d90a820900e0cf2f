// AWS Trainium. Two things must be present, and both are looked for at run
// time so the binary never links the Neuron SDK:
//  1. NeuronCores, found by libcpt_neuron.so through the Neuron runtime;
//  2. a LibTorch device for them: TorchNeuron registers "neuron" as
//     PyTorch's PrivateUse1 device, from the library
//     named by CPT_NEURON_TORCH_LIBRARY, loaded into this process.
// Only with both is the backend available; otherwise it says which is
// missing. docs/trainium.md says what has been verified.

#include <c10/core/DeviceType.h>
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>

#include "backends.h"
#include "cpt/common/plugin.h"

namespace cpt::backend {

namespace {

constexpr const char* kPluginName = "libcpt_neuron.so";

struct CoreProbe {
  int cores = 0;
  std::string detail;
};

CoreProbe probe_cores() {
  std::string tried;
  for (const auto& path : plugin_candidates(kPluginName, "CPT_NEURON_PLUGIN")) {
    if (!std::filesystem::exists(path)) {
      tried += " " + path;
      continue;
    }
    void* plugin = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (plugin == nullptr) return {0, fmt::format("cannot load {}: {}", path, dlerror())};
    auto probe = reinterpret_cast<int (*)(char*, size_t)>(dlsym(plugin, "cpt_neuron_probe"));
    if (probe == nullptr) return {0, fmt::format("{} has no cpt_neuron_probe", path)};
    char message[512] = {};
    const int cores = probe(message, sizeof(message));
    return {cores, message};
  }
  return {0, fmt::format("the plugin {} is not installed (looked at{}); set CPT_NEURON_PLUGIN", kPluginName, tried)};
}

// The PrivateUse1 device's name once TorchNeuron's library is loaded.
std::string torch_device_problem() {
  if (const char* library = std::getenv("CPT_NEURON_TORCH_LIBRARY"); library != nullptr && *library != '\0') {
    if (dlopen(library, RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      return fmt::format("CPT_NEURON_TORCH_LIBRARY={} does not load: {}", library, dlerror());
    }
  }
  if (c10::get_privateuse1_backend() != "neuron") {
    return "no LibTorch 'neuron' device is registered: set CPT_NEURON_TORCH_LIBRARY to TorchNeuron's C++ library";
  }
  return "";
}

class NeuronBackend final : public Backend {
 public:
  explicit NeuronBackend(int local_rank) : device_(c10::DeviceType::PrivateUse1, static_cast<c10::DeviceIndex>(local_rank)) {}
  std::string name() const override { return "neuron"; }
  c10::Device device() const override { return device_; }
  bool supports_bf16() const override { return true; }  // Trainium computes in bf16 natively
  std::string process_group_backend() const override { return "gloo"; }  // until a Neuron c10d backend is wired
  void synchronize() const override {}
  MemoryStats memory() const override { return {-1, "not reported by the Neuron backend"}; }
  void reset_peak_memory() override {}
  at::Tensor to_device(const at::Tensor& host) const override { return host.to(device_); }

 private:
  c10::Device device_;
};

}  // namespace

Availability probe_neuron() {
  const CoreProbe cores = probe_cores();
  if (cores.cores == 0) return {"neuron", false, cores.detail};
  const std::string problem = torch_device_problem();
  if (!problem.empty()) return {"neuron", false, fmt::format("found {}, but {}", cores.detail, problem)};
  return {"neuron", true, cores.detail};
}

std::unique_ptr<Backend> create_neuron(int local_rank) { return std::make_unique<NeuronBackend>(local_rank); }

}  // namespace cpt::backend
