#pragma once
// The language-model loss. Torch-facing: include only from torch targets.

#include <ATen/core/Tensor.h>

namespace cpt::model {

// Mean cross-entropy of logits (rows, vocab), fp32, against target token ids
// (rows), int64: torch's cross_entropy without class weights, ignore index
// or smoothing, with a backward that makes two passes over the logits'
// size instead of four (the softmax from the saved log-probabilities, less
// one at the targets, times the upstream gradient over rows).
at::Tensor mean_cross_entropy(const at::Tensor& logits, const at::Tensor& targets);

// The same, and each token's loss (rows), detached: the values the mean is
// taken over, at no extra pass over the logits.
at::Tensor mean_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, at::Tensor& token_losses);

// The mean cross-entropy of hidden W^T, the LM head's logits, against the
// targets, as mean_cross_entropy(hidden.mm(weight.t()).to(fp32), targets)
// computes it, in one autograd node that never keeps the logits: forward
// turns them into their gradient in place, so memory holds one (rows,
// vocab) tensor instead of three, and the passes over it drop from seven
// to three. hidden (rows, hidden) and weight (vocab, hidden) share a dtype
// (fp32 or bf16; the loss is fp32). A weight with a .grad gets its
// gradient added there (as the model's projections do). token_losses, if
// given, receives each row's loss, detached.
at::Tensor fused_linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                      at::Tensor* token_losses = nullptr);

}  // namespace cpt::model
