#include "cpt/backend/autocast.h"

#include <ATen/autocast_mode.h>

namespace cpt::backend {

namespace {

void apply(c10::DeviceType device, const AutocastState& state) {
  at::autocast::set_autocast_enabled(device, state.enabled);
  at::autocast::set_autocast_dtype(device, state.dtype);
}

}  // namespace

bool cpu_supports_bf16() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

AutocastState autocast_state(c10::DeviceType device) {
  return {at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)};
}

AutocastScope::AutocastScope(c10::DeviceType device, AutocastState state)
    : device_(device), previous_(autocast_state(device)) {
  apply(device_, state);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  // Weights cast to bf16 are cached for the scope; drop them when the
  // outermost scope ends, or they would go stale after the optimizer step.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  apply(device_, previous_);
}

}  // namespace cpt::backend
