#include "cpt/train/optimizer.h"

#include <torch/torch.h>

#include <cmath>
#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::train {

AdamW::AdamW(NamedTensors parameters, const OptimizerConfig& config)
    : parameters_(std::move(parameters)), config_(config) {
  for (const auto& [name, p] : parameters_) {
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double beta1 = config_.betas[0], beta2 = config_.betas[1];
  const double correction1 = 1.0 - std::pow(beta1, static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(beta2, static_cast<double>(steps_));
  const double step_size = lr / correction1;
  const double correction2_sqrt = std::sqrt(correction2);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    torch::Tensor& p = parameters_[i].second;
    const torch::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    // Decoupled decay, on matrices only: norms and (absent) biases are not decayed.
    if (p.dim() >= 2 && config_.weight_decay != 0) p.mul_(1.0 - lr * config_.weight_decay);
    exp_avg_[i].lerp_(grad, 1.0 - beta1);
    exp_avg_sq_[i].mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
    const auto denom = (exp_avg_sq_[i].sqrt() / correction2_sqrt).add_(config_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    out.emplace_back("exp_avg." + parameters_[i].first, exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + parameters_[i].first, exp_avg_sq_[i]);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& state, int64_t steps) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    for (auto [prefix, target] : {std::pair{"exp_avg.", &exp_avg_[i]}, std::pair{"exp_avg_sq.", &exp_avg_sq_[i]}}) {
      const std::string key = prefix + parameters_[i].first;
      auto it = state.find(key);
      if (it == state.end()) throw InputError(fmt::format("optimizer state has no '{}'", key));
      if (it->second.sizes() != target->sizes()) {
        throw InputError(fmt::format("optimizer state '{}' has the wrong shape", key));
      }
      target->copy_(it->second);
    }
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
