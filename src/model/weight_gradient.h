#pragma once
// Weight gradients that accumulate into .grad: the model's projections and
// the fused LM-head loss share it. Internal to src/model; torch-facing.

#include <ATen/core/Tensor.h>

namespace cpt::model {

// W's gradient g^T x for a projection y = x W^T (g, x as 2-D (tokens,
// features)). Where W already has a .grad of its dtype (DataParallel gives
// every parameter one, a view of its flat buffer), the GEMM adds into it
// (addmm_, beta 1), as Megatron's gradient accumulation fusion does, and
// nothing is returned: autograd would otherwise compute the product into a
// fresh tensor and then add it into .grad, two more passes over the
// gradient and a fresh allocation per matrix per step. DataParallel's
// hooks run after W's accumulator, which still runs (with no input), so
// they see the sum. Without a .grad (a first backward outside
// DataParallel), or while autograd records the backward itself, the
// product is returned as Linear's backward returns it. So
// torch::autograd::grad() with respect to a weight that has a .grad would
// not see it: nothing here asks for weight gradients that way.
at::Tensor weight_gradient(const at::Tensor& weight, const at::Tensor& g2d, const at::Tensor& x2d);

}  // namespace cpt::model
