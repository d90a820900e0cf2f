// libcpt_neuron.so: the Trainium side, loaded at run time so that the main
// binary never links the Neuron SDK. It finds the Neuron runtime (libnrt,
// from aws-neuronx-runtime-lib) itself, also by dlopen, and reports the
// NeuronCores this process may use. C interface, no LibTorch.

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

// nrt.h: NRT_STATUS nrt_get_visible_nc_count(uint32_t *nc_count); callable
// before nrt_init(); NRT_STATUS 0 is success.
using NcCount = int (*)(uint32_t*);

void put(char* out, size_t size, const std::string& text) {
  if (size == 0) return;
  std::snprintf(out, size, "%s", text.c_str());
}

}  // namespace

extern "C" {

// Returns the number of visible NeuronCores (>= 1), or 0 with `message`
// saying what is missing.
__attribute__((visibility("default"))) int cpt_neuron_probe(char* message, size_t size) {
  const char* candidates[] = {"libnrt.so.1", "/opt/aws/neuron/lib/libnrt.so.1"};
  void* runtime = nullptr;
  std::string errors;
  for (const char* path : candidates) {
    runtime = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (runtime != nullptr) break;
    errors += std::string(errors.empty() ? "" : "; ") + dlerror();
  }
  if (runtime == nullptr) {
    put(message, size,
        "the Neuron runtime libnrt.so.1 is not installed (aws-neuronx-runtime-lib, /opt/aws/neuron/lib): " + errors);
    return 0;
  }
  auto visible = reinterpret_cast<NcCount>(dlsym(runtime, "nrt_get_visible_nc_count"));
  if (visible == nullptr) {
    put(message, size, "libnrt.so.1 has no nrt_get_visible_nc_count (Neuron runtime older than 2.x)");
    return 0;
  }
  uint32_t cores = 0;
  const int status = visible(&cores);
  if (status != 0 || cores == 0) {
    put(message, size,
        "the Neuron runtime sees no NeuronCore (status " + std::to_string(status) +
            "; is this a trn1/trn2 instance with the aws-neuronx-dkms driver loaded?)");
    return 0;
  }
  put(message, size, std::to_string(cores) + " NeuronCore(s)");
  return static_cast<int>(cores);
}

}  // extern "C"
