#include "cpt/train/optimizer.h"

#include <torch/torch.h>

#include <cmath>
#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::train {

namespace {

std::vector<ParamSlice> whole(const NamedTensors& parameters) {
  std::vector<ParamSlice> slices;
  for (const auto& [name, p] : parameters) slices.push_back({name, p, 0, p.numel()});
  return slices;
}

// The slice's part of `t` (the parameter or its gradient), sharing storage.
torch::Tensor part(const ParamSlice& slice, const torch::Tensor& t) {
  return slice.whole() ? t : t.view({-1}).narrow(0, slice.offset, slice.numel);
}

}  // namespace

AdamW::AdamW(std::vector<ParamSlice> slices, const OptimizerConfig& config)
    : slices_(std::move(slices)), config_(config) {
  torch::NoGradGuard no_grad;
  for (const auto& slice : slices_) {
    exp_avg_.push_back(torch::zeros_like(part(slice, slice.param.detach()), torch::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(torch::zeros_like(exp_avg_.back()));
  }
}

AdamW::AdamW(const NamedTensors& parameters, const OptimizerConfig& config) : AdamW(whole(parameters), config) {}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double beta1 = config_.betas[0], beta2 = config_.betas[1];
  const double correction1 = 1.0 - std::pow(beta1, static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(beta2, static_cast<double>(steps_));
  const double step_size = lr / correction1;
  const double correction2_sqrt = std::sqrt(correction2);
  // One list per operand, so each update below is one multi-tensor call
  // (torch.optim.AdamW's foreach form): a handful of kernel launches for
  // the whole model on a GPU instead of several per parameter.
  std::vector<torch::Tensor> params, decayed, grads, exp_avg, exp_avg_sq;
  for (size_t i = 0; i < slices_.size(); ++i) {
    const ParamSlice& slice = slices_[i];
    if (!slice.param.grad().defined()) continue;
    params.push_back(part(slice, slice.param.detach()));
    grads.push_back(part(slice, slice.param.grad()));
    exp_avg.push_back(exp_avg_[i]);
    exp_avg_sq.push_back(exp_avg_sq_[i]);
    // Decoupled decay, on matrices only: norms and (absent) biases are not decayed.
    if (slice.param.dim() >= 2) decayed.push_back(params.back());
  }
  if (params.empty()) return;
  if (config_.weight_decay != 0 && !decayed.empty()) at::_foreach_mul_(decayed, 1.0 - lr * config_.weight_decay);
  at::_foreach_mul_(exp_avg, beta1);
  at::_foreach_add_(exp_avg, grads, 1.0 - beta1);
  at::_foreach_mul_(exp_avg_sq, beta2);
  at::_foreach_addcmul_(exp_avg_sq, grads, grads, 1.0 - beta2);
  std::vector<torch::Tensor> denom = at::_foreach_sqrt(exp_avg_sq);
  at::_foreach_div_(denom, correction2_sqrt);
  at::_foreach_add_(denom, config_.eps);
  at::_foreach_addcdiv_(params, exp_avg, denom, -step_size);
}

std::vector<MomentSlice> AdamW::state() const {
  std::vector<MomentSlice> out;
  for (size_t i = 0; i < slices_.size(); ++i) {
    out.push_back({"exp_avg." + slices_[i].name, slices_[i].offset, exp_avg_[i]});
    out.push_back({"exp_avg_sq." + slices_[i].name, slices_[i].offset, exp_avg_sq_[i]});
  }
  return out;
}

void AdamW::load_state(const MomentReader& read, int64_t steps) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < slices_.size(); ++i) {
    read("exp_avg." + slices_[i].name, slices_[i].offset, exp_avg_[i]);
    read("exp_avg_sq." + slices_[i].name, slices_[i].offset, exp_avg_sq_[i]);
  }
  steps_ = steps;
}

double clip_grad_norm(const NamedTensors& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& [name, p] : parameters) {
    if (p.grad().defined()) norms.push_back(p.grad().norm(2).to(torch::kFloat));
  }
  if (norms.empty()) return 0.0;
  const double total = torch::stack(norms).norm(2).item<double>();
  if (max_norm > 0) {
    const double coefficient = max_norm / (total + 1e-6);
    if (coefficient < 1.0) {
      for (const auto& [name, p] : parameters) {
        if (p.grad().defined()) p.grad().mul_(coefficient);
      }
    }
  }
  return total;
}

}  // namespace cpt::train
