#pragma once
// The language-model loss. Torch-facing: include only from torch targets.

#include <ATen/core/Tensor.h>

namespace cpt::model {

// The mean cross-entropy of hidden W^T, the LM head's logits, against the
// target token ids (rows, int64): torch's cross_entropy of the logits in
// fp32, without class weights, ignore index or smoothing. One autograd
// node that never keeps the logits: forward turns them into their
// gradient in place, so memory holds one (rows, vocab) tensor where the
// head then the loss made three, two of them alive at once (the fp32
// logits, the log-softmax kept for backward, the softmax backward made),
// and the passes over it drop from seven to three. Without gradients (an evaluation) only the losses
// are computed. hidden (rows, hidden) and weight (vocab, hidden) share a
// dtype (fp32 or bf16; the loss is fp32). A weight with a .grad gets its
// gradient added there (as the model's projections do). token_losses, if
// given, receives each row's loss, detached.
at::Tensor fused_linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                      at::Tensor* token_losses = nullptr);

}  // namespace cpt::model
