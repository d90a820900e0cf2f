#pragma once
// Mixed precision as torch.autocast does it: inside a scope, matmuls and
// linear layers run in a lower precision (bf16) while the weights, the
// master copy, stay fp32; leaving the outermost scope restores the previous
// state and clears the cache of down-cast weights, as torch.autocast's
// __exit__ does. Torch-facing.

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace cpt::backend {

// True when this CPU has AVX-512 (oneDNN's bf16 kernels need it; without
// it bf16 is emulated and slower than fp32).
bool cpu_supports_bf16();

// The autocast settings of the calling thread for one device type.
struct AutocastState {
  bool enabled = false;
  c10::ScalarType dtype = c10::kBFloat16;
};
AutocastState autocast_state(c10::DeviceType device);

class AutocastScope {
 public:
  // Sets `state` for `device` until the scope ends.
  AutocastScope(c10::DeviceType device, AutocastState state);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  AutocastState previous_;
};

}  // namespace cpt::backend
