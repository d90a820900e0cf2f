#include "cpt/train/optimizer.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "cpt/common/error.h"
#include "cpt/train/adamw_kernel.h"

namespace cpt::train {

namespace {

std::vector<ParamSlice> whole(const NamedTensors& parameters) {
  std::vector<ParamSlice> slices;
  for (const auto& [name, p] : parameters) slices.push_back({name, p, {}, 0, p.dim() >= 2, {}});
  return slices;
}

}  // namespace

AdamW::AdamW(std::vector<ParamSlice> slices, const OptimizerConfig& config)
    : slices_(std::move(slices)), config_(config) {
  torch::NoGradGuard no_grad;
  on_host_ = std::any_of(slices_.begin(), slices_.end(), [](const ParamSlice& s) { return s.publish.defined(); });
  for (const auto& slice : slices_) {
    if (!on_host_) break;
    TORCH_CHECK(slice.publish.defined() && slice.grad.defined(), "AdamW: ", slice.name,
                ": either every slice publishes its bf16 parameter, with its gradient, or none does");
    for (const torch::Tensor* t : {&slice.master, &slice.grad, &slice.publish}) {
      TORCH_CHECK(t->is_cpu() && t->is_contiguous() && t->numel() == slice.master.numel(), "AdamW: ", slice.name,
                  ": the one-pass update needs contiguous host tensors of the master's size");
    }
    TORCH_CHECK(slice.master.scalar_type() == torch::kFloat && slice.publish.scalar_type() == torch::kBFloat16 &&
                    (slice.grad.scalar_type() == torch::kBFloat16 || slice.grad.scalar_type() == torch::kFloat),
                "AdamW: ", slice.name,
                ": the one-pass update takes an fp32 master, bf16 or fp32 gradients and a bf16 parameter");
  }
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

void AdamW::step(double lr, const torch::Tensor& found_inf, const torch::Tensor& grad_scale) {
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
  if (on_host_) {
    step_on_host(lr, found_inf, grad_scale);
    return;
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
  // The kernel divides by its grad_scale (AMP's unscaling).
  const std::optional<at::Tensor> divide_by =
      grad_scale.defined() ? std::optional<at::Tensor>(grad_scale.reciprocal().to(torch::kFloat)) : std::nullopt;
  for (int decayed = 0; decayed < 2; ++decayed) {
    Group& g = groups[decayed];
    if (g.params.empty()) continue;
    at::_fused_adamw_(g.params, g.grads, g.exp_avg, g.exp_avg_sq, /*max_exp_avg_sqs=*/{}, g.counts, lr,
                      config_.betas[0], config_.betas[1], decayed ? config_.weight_decay : 0.0, config_.eps,
                      /*amsgrad=*/false, /*maximize=*/false, divide_by, skip);
  }
}

void AdamW::step_on_host(double lr, const torch::Tensor& found_inf, const torch::Tensor& grad_scale) {
  if (found_inf.defined() && found_inf.item<double>() != 0.0) return;
  const float scale = grad_scale.defined() ? grad_scale.item<float>() : 1.0f;
  const auto counts = step_count_vector_.accessor<float, 1>();
  // Elements per task: large enough that a task's start is noise, small
  // enough that both cores get work from one matrix.
  constexpr int64_t kGrain = 1 << 16;
  for (size_t i = 0; i < slices_.size(); ++i) {
    const ParamSlice& slice = slices_[i];
    // Bias corrections in double, then fp32, as the fused kernel does.
    const double t = counts[static_cast<int64_t>(i)];
    AdamWStepScalars s;
    s.step_size = static_cast<float>(lr / (1.0 - std::pow(config_.betas[0], t)));
    s.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(config_.betas[1], t)));
    s.beta1 = static_cast<float>(config_.betas[0]);
    s.beta2 = static_cast<float>(config_.betas[1]);
    s.eps = static_cast<float>(config_.eps);
    s.decay_factor = static_cast<float>(1.0 - lr * (slice.decayed ? config_.weight_decay : 0.0));
    s.grad_scale = scale;
    float* param = slice.master.data_ptr<float>();
    float* m = exp_avg_[i].data_ptr<float>();
    float* v = exp_avg_sq_[i].data_ptr<float>();
    auto* out = reinterpret_cast<uint16_t*>(slice.publish.data_ptr<at::BFloat16>());
    const bool bf16_grad = slice.grad.scalar_type() == torch::kBFloat16;
    const void* grad = slice.grad.data_ptr();
    at::parallel_for(0, slice.master.numel(), kGrain, [&](int64_t begin, int64_t end) {
      const auto n = static_cast<size_t>(end - begin);
      float *p = param + begin, *mb = m + begin, *vb = v + begin;
      if (bf16_grad) {
        adamw_update(s, n, static_cast<const uint16_t*>(grad) + begin, p, mb, vb, out + begin);
      } else {
        adamw_update(s, n, static_cast<const float*>(grad) + begin, p, mb, vb, out + begin);
      }
    });
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
