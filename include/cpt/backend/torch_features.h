#pragma once
// The ATen features that arrived after LibTorch 1.13, the oldest LibTorch
// this project builds against, by the version that brought them.

#include <torch/version.h>

#define CPT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// at::_fused_adamw_ (torch.optim.AdamW(fused=True)), with a CUDA kernel.
#define CPT_HAS_FUSED_ADAMW_OP CPT_TORCH_AT_LEAST(2, 2)
#define CPT_HAS_FUSED_ADAMW_CUDA CPT_HAS_FUSED_ADAMW_OP
// ... and a CPU kernel.
#define CPT_HAS_FUSED_ADAMW_CPU CPT_TORCH_AT_LEAST(2, 4)
// c10::Event::elapsedTime and synchronize through the device-generic guard
// interface: device-event timing without the CUDA headers.
#define CPT_HAS_GENERIC_EVENT_TIMING CPT_TORCH_AT_LEAST(2, 7)
