#pragma once
// Parameter and FLOP arithmetic for a Llama decoder: pure C++, so a plan for a
// 70B run needs no LibTorch and no weights.

#include <cstdint>

#include "cpt/model/config.h"

namespace cpt::model {

// Every trainable parameter: embeddings, blocks (with Qwen2's q/k/v biases),
// final norm, and lm_head unless it is tied to the embeddings.
int64_t parameter_count(const Shape& shape);

// The token embedding table alone; lookups are not matmuls, so MFU excludes it.
int64_t embedding_parameter_count(const Shape& shape);

// Training FLOPs (forward + backward) per token at `seq_len`, as PaLM and
// torchtitan count them: 6 per non-embedding parameter plus 12·L·d·s for the
// attention scores and weighted values (the full square, not the causal half;
// a sliding window caps the keys at its width). A tied lm_head counts: it is
// still a matmul.
double training_flops_per_token(const Shape& shape, int64_t seq_len);

}  // namespace cpt::model
