#include "cpt/model/loss.h"

#include <torch/torch.h>

namespace cpt::model {

namespace {

struct MeanCrossEntropy : public torch::autograd::Function<MeanCrossEntropy> {
  // {the mean, each row's loss}; only the mean has a gradient.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                                                const torch::Tensor& targets) {
    const auto log_probs = torch::log_softmax(logits, -1);
    ctx->save_for_backward({log_probs, targets});
    auto token_losses = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1);
    auto mean = token_losses.mean();
    ctx->mark_non_differentiable({token_losses});
    return {mean, token_losses};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& log_probs = saved[0];
    const auto targets = saved[1].unsqueeze(1);
    auto grad = log_probs.exp();  // the softmax
    grad.scatter_add_(1, targets, torch::full(targets.sizes(), -1.0, grad.options()));
    grad.mul_(grad_outputs[0] / static_cast<double>(log_probs.size(0)));
    return {grad, torch::Tensor()};
  }
};

}  // namespace

at::Tensor mean_cross_entropy(const at::Tensor& logits, const at::Tensor& targets) {
  TORCH_CHECK(logits.dim() == 2 && targets.dim() == 1 && logits.size(0) == targets.size(0),
              "mean_cross_entropy: logits (rows, vocab) and targets (rows), got ", logits.sizes(), " and ",
              targets.sizes());
  return MeanCrossEntropy::apply(logits, targets)[0];
}

at::Tensor mean_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, at::Tensor& token_losses) {
  TORCH_CHECK(logits.dim() == 2 && targets.dim() == 1 && logits.size(0) == targets.size(0),
              "mean_cross_entropy: logits (rows, vocab) and targets (rows), got ", logits.sizes(), " and ",
              targets.sizes());
  auto outputs = MeanCrossEntropy::apply(logits, targets);
  token_losses = outputs[1];
  return outputs[0];
}

}  // namespace cpt::model
