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
  if (!slices_.empty()) {
    step_count_vector_ = torch::zeros({static_cast<int64_t>(slices_.size())},
                                     torch::TensorOptions().dtype(torch::kFloat).device(slices_[0].param.device()));
    for (int64_t i = 0; i < step_count_vector_.size(0); ++i) step_counts_.push_back(step_count_vector_[i]);
  }
}

AdamW::AdamW(const NamedTensors& parameters, const OptimizerConfig& config) : AdamW(whole(parameters), config) {}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  if (step_counts_.empty()) return;
  step_count_vector_.fill_(static_cast<double>(steps_));
  // Two calls: matrices with weight decay, the rest (norms) without.
  struct Group {
    std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq, counts;
  } groups[2];
  for (size_t i = 0; i < slices_.size(); ++i) {
    const ParamSlice& slice = slices_[i];
    if (!slice.param.grad().defined()) continue;
    Group& g = groups[slice.param.dim() >= 2 ? 1 : 0];
    g.params.push_back(part(slice, slice.param.detach()));
    g.grads.push_back(part(slice, slice.param.grad()));
    g.exp_avg.push_back(exp_avg_[i]);
    g.exp_avg_sq.push_back(exp_avg_sq_[i]);
    g.counts.push_back(step_counts_[i]);
  }
  for (int decayed = 0; decayed < 2; ++decayed) {
    Group& g = groups[decayed];
    if (g.params.empty()) continue;
    at::_fused_adamw_(g.params, g.grads, g.exp_avg, g.exp_avg_sq, /*max_exp_avg_sqs=*/{}, g.counts, lr,
                      config_.betas[0], config_.betas[1], decayed ? config_.weight_decay : 0.0, config_.eps,
                      /*amsgrad=*/false, /*maximize=*/false);
  }
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
