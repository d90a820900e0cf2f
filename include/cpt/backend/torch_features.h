#pragma once
// The one header that knows LibTorch's version. cpt-train builds against
// LibTorch 2.11 (the GPU machines' torch 2.11.0+cu130) through the pinned
// 2.14.1; scripts/check-torch-headers.sh compiles the torch-facing sources
// against 2.11's headers to keep it so. What differs in that range is
// handled where it is used without a version test:
//   - grad_accumulator() returns std::shared_ptr<Node> before 2.13 and
//     c10::intrusive_ptr<Node> after: data_parallel.cpp holds it by decltype;
//   - 2.13+ headers need C++20, which the whole project is compiled as.

#include <torch/version.h>

#define CPT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

static_assert(CPT_TORCH_AT_LEAST(2, 11), "cpt-train needs LibTorch 2.11 or newer");

namespace cpt::backend {

// "2.14.1", as the headers LibTorch was built from say.
inline constexpr const char* kTorchVersion = TORCH_VERSION;

}  // namespace cpt::backend
