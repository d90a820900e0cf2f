#include "cpt/model/loss.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "weight_gradient.h"

namespace cpt::model {

namespace {

// Rows of logits (rows, vocab) into each row's loss, and in place into the
// gradient of the mean over all `rows`: (softmax - one_hot(target)) / rows.
// One exp per logit: e = exp(x - max) overwrites x, and the loss is
// log(sum e) + max - x[target]. bf16 logits go through an fp32 copy of
// the rows (the loss in fp32, as transformers' .float() gives it).
// Without `gradient`, only the losses (an evaluation).
void loss_and_gradient(const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& token_losses,
                       int64_t rows, bool gradient) {
  const bool fp32 = logits.scalar_type() == at::kFloat;
  at::Tensor x = fp32 ? logits : logits.to(at::kFloat);
  const auto t = targets.unsqueeze(1);
  const auto max = x.amax(1, /*keepdim=*/true);
  const auto picked = x.gather(1, t);
  x.sub_(max).exp_();
  const auto sum = x.sum(1, /*keepdim=*/true);
  token_losses.copy_((sum.log() + max - picked).squeeze(1));
  if (!gradient) return;
  const double inv_rows = 1.0 / static_cast<double>(rows);
  x.mul_(sum.reciprocal().mul_(inv_rows));
  x.scatter_add_(1, t, at::full_like(picked, -inv_rows));
  if (!fp32) logits.copy_(x);
}

// Rows per piece of loss_and_gradient. On a CPU, 1 MiB of fp32 logits (32
// rows of an 8k vocab, 8 of a 32k one), half a core's L2 on recent Xeons,
// so that the passes over a piece after the first read it from there.
// On a GPU the pieces only bound the fp32 copy of bf16 logits: 64 MiB
// (130 rows of Llama-3's 128k vocab), a few kernels each.
int64_t rows_per_piece(const at::Tensor& logits) {
  const int64_t elements = logits.is_cpu() ? int64_t{1} << 18 : int64_t{1} << 24;
  return std::max<int64_t>(1, elements / std::max<int64_t>(logits.size(1), 1));
}

// Each row's loss (fp32) of logits (rows, vocab), in pieces of rows; with
// `gradient`, the logits become the gradient of the mean loss.
at::Tensor losses_over_pieces(const at::Tensor& logits, const at::Tensor& targets, bool gradient) {
  const int64_t rows = logits.size(0);
  auto token_losses = at::empty({rows}, logits.options().dtype(at::kFloat));
  const int64_t piece = rows_per_piece(logits);
  const auto pieces = [&](int64_t begin, int64_t end) {
    for (int64_t first = begin; first < end; first += piece) {
      const int64_t n = std::min(piece, end - first);
      loss_and_gradient(logits.narrow(0, first, n), targets.narrow(0, first, n), token_losses.narrow(0, first, n), rows,
                        gradient);
    }
  };
  if (logits.is_cpu()) {
    at::parallel_for(0, rows, piece, pieces);  // each thread its own pieces; the ops inside run on it alone
  } else {
    pieces(0, rows);
  }
  return token_losses;
}

// The LM head and the mean cross-entropy in one autograd node.
// Forward computes the logits, then each row's loss and, in place over
// the logits, the gradient of the mean: backward is the head's two GEMMs
// and nothing else. Unfused, the logits are written, read for the
// log-softmax, which is written and kept, read for the softmax, which is
// written again and scaled: seven passes over (rows, vocab), against
// three here, and on a CPU the passes after the GEMM run on L2-sized
// pieces of rows. The upstream gradient (a scalar) scales the two small
// operands, the hidden states and the gradient of the hidden states,
// not the logits'.
struct LinearCrossEntropy : public torch::autograd::Function<LinearCrossEntropy> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                                const torch::Tensor& weight, const torch::Tensor& targets) {
    auto gradient = at::mm(hidden, weight.t());  // the logits, until loss_and_gradient
    auto token_losses = losses_over_pieces(gradient, targets, /*gradient=*/true);
    ctx->save_for_backward({gradient, hidden, weight});
    auto mean = token_losses.mean();
    ctx->mark_non_differentiable({token_losses});
    return {mean, token_losses};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& gradient = saved[0];
    const auto& hidden = saved[1];
    const auto& weight = saved[2];
    // 0-dim fp32 on the device. Not cast to bf16: the share of a micro-batch
    // (1/3, say) would then scale every gradient by its rounding.
    const auto& scale = grad_outputs[0];
    torch::Tensor grad_hidden, grad_weight;
    if (ctx->needs_input_grad(0)) grad_hidden = at::mm(gradient, weight).mul_(scale);
    if (ctx->needs_input_grad(1)) grad_weight = weight_gradient(weight, gradient, hidden * scale);
    return {grad_hidden, grad_weight, torch::Tensor()};
  }
};

}  // namespace

at::Tensor fused_linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                      at::Tensor* token_losses) {
  TORCH_CHECK(hidden.dim() == 2 && targets.dim() == 1 && hidden.size(0) == targets.size(0),
              "fused_linear_cross_entropy: hidden (rows, hidden) and targets (rows), got ", hidden.sizes(), " and ",
              targets.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(1) && weight.scalar_type() == hidden.scalar_type(),
              "fused_linear_cross_entropy: weight (vocab, ", hidden.size(1), ") of the hidden states' dtype ",
              hidden.scalar_type(), ", got ", weight.sizes(), " ", weight.scalar_type());
  if (!torch::GradMode::is_enabled() || !(hidden.requires_grad() || weight.requires_grad())) {
    // An evaluation: no node, no gradient, and the logits die here.
    auto losses = losses_over_pieces(at::mm(hidden, weight.t()), targets, /*gradient=*/false);
    if (token_losses != nullptr) *token_losses = losses;
    return losses.mean();
  }
  auto outputs = LinearCrossEntropy::apply(hidden, weight, targets);
  if (token_losses != nullptr) *token_losses = outputs[1];
  return outputs[0];
}

}  // namespace cpt::model
