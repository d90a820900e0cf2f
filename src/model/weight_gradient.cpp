#include "weight_gradient.h"

#include <torch/torch.h>

namespace cpt::model {

at::Tensor weight_gradient(const at::Tensor& weight, const at::Tensor& g2d, const at::Tensor& x2d) {
  torch::Tensor grad = weight.grad();  // a saved leaf unpacks to the parameter itself
  if (grad.defined() && !torch::GradMode::is_enabled() && grad.scalar_type() == g2d.scalar_type() &&
      grad.sizes() == weight.sizes() && grad.is_contiguous()) {
    grad.addmm_(g2d.t(), x2d);
    return {};
  }
  return g2d.t().mm(x2d);
}

}  // namespace cpt::model
