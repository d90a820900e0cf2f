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

}  // namespace cpt::model
