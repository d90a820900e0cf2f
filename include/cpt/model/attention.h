#pragma once
// Causal self-attention, over whole rows or within the documents packed in
// them, without a (batch, 1, seq, seq) mask: each document runs as its own
// causal SDPA call, so the kernel is the one unmasked attention gets (flash
// attention on CUDA, the fused flash kernel on the CPU).
// Torch-facing: include only from torch targets.

#include <ATen/core/Tensor.h>

namespace cpt::model {

// Where each row's documents lie: an int64 host tensor (n, 3) of
// (row, begin, end), rows in order, documents in order within a row. A
// document starts where its position is 0 (the loader's convention).
// positions: (batch, seq) int64 on the host.
at::Tensor document_segments(const at::Tensor& positions);

// q: (batch, heads, seq, head_dim); k, v: (batch, kv_heads, seq, head_dim),
// each KV head serving heads / kv_heads consecutive query heads (HF's
// repeat_kv order). segments: as document_segments gives, or undefined for
// one document per row. window > 0: each query sees only itself and the
// window - 1 keys before it (Mistral's sliding window; an explicit mask,
// built only when a document is longer than the window). Returns (batch,
// heads, seq, head_dim).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& segments = {}, int64_t window = 0);

}  // namespace cpt::model
