#include "cpt/train/optimizer.h"

#include <torch/torch.h>

#include <cmath>
#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::train {

namespace {

std::vector<ParamSlice> whole(const NamedTensors& parameters) {
  std::vector<ParamSlice> slices;
  for (const auto& [name, p] : parameters) slices.push_back({name, p, {}, 0, p.dim() >= 2});
  return slices;
}

}  // namespace

AdamW::AdamW(std::vector<ParamSlice> slices, const OptimizerConfig& config)
    : slices_(std::move(slices)), config_(config) {
  torch::NoGradGuard no_grad;
  for (const auto& slice : slices_) {
    exp_avg_.push_back(torch::zeros_like(slice.master.detach(), torch::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(torch::zeros_like(exp_avg_.back()));
  }
  if (!slices_.empty()) {
    step_count_vector_ = torch::zeros({static_cast<int64_t>(slices_.size())},
                                     torch::TensorOptions().dtype(torch::kFloat).device(slices_[0].master.device()));
    for (int64_t i = 0; i < step_count_vector_.size(0); ++i) step_counts_.push_back(step_count_vector_[i]);
  }
}

AdamW::AdamW(const NamedTensors& parameters, const OptimizerConfig& config) : AdamW(whole(parameters), config) {}

int64_t AdamW::steps() const {
  if (step_counts_.empty()) return host_steps_;
  return static_cast<int64_t>(step_count_vector_[0].item<double>());
}

void AdamW::step(double lr, const torch::Tensor& found_inf) {
  torch::NoGradGuard no_grad;
  if (step_counts_.empty()) {
    ++host_steps_;
    return;
  }
  // The count moves only for an update that happens; the kernel itself
  // returns early when found_inf is 1.
  if (found_inf.defined()) {
    step_count_vector_.add_(1.0 - found_inf);
  } else {
    step_count_vector_.add_(1.0);
  }
  // Two calls: matrices with weight decay, the rest (norms) without.
  struct Group {
    std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq, counts;
  } groups[2];
  for (size_t i = 0; i < slices_.size(); ++i) {
    const ParamSlice& slice = slices_[i];
    const torch::Tensor grad = slice.grad.defined() ? slice.grad : slice.master.grad();
    if (!grad.defined()) continue;
    Group& g = groups[slice.decayed ? 1 : 0];
    g.params.push_back(slice.master.detach());
    g.grads.push_back(grad);
    g.exp_avg.push_back(exp_avg_[i]);
    g.exp_avg_sq.push_back(exp_avg_sq_[i]);
    g.counts.push_back(step_counts_[i]);
  }
  const std::optional<at::Tensor> skip = found_inf.defined() ? std::optional<at::Tensor>(found_inf) : std::nullopt;
  for (int decayed = 0; decayed < 2; ++decayed) {
    Group& g = groups[decayed];
    if (g.params.empty()) continue;
    at::_fused_adamw_(g.params, g.grads, g.exp_avg, g.exp_avg_sq, /*max_exp_avg_sqs=*/{}, g.counts, lr,
                      config_.betas[0], config_.betas[1], decayed ? config_.weight_decay : 0.0, config_.eps,
                      /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt, skip);
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
  host_steps_ = steps;
  if (step_count_vector_.defined()) step_count_vector_.fill_(static_cast<double>(steps));
}

}  // namespace cpt::train
