#pragma once
// The Llama decoder in LibTorch, with what Mistral (a sliding window),
// Llama-3.1 (scaled RoPE, tied embeddings in the small ones) and Qwen2 (q/k/v
// biases) change in it (Shape::arch). Module and parameter names are Hugging
// Face's ("model.layers.0.self_attn.q_proj.weight"), so named_parameters()
// is the HF state dict and checkpoints load and save without renaming.
// Torch-facing: include only from torch targets.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <string>

#include "cpt/model/config.h"

namespace cpt::model {

// What backward recomputes instead of keeping (train.activation_checkpointing).
enum class Recompute {
  kNone,       // keep every activation backward needs
  kFull,       // keep each block's input; rerun the whole block in backward
  kSelective,  // keep the matmul outputs; rerun norms, RoPE, attention and SwiGLU
};

// "none", "full" or "selective"; throws std::invalid_argument otherwise.
Recompute parse_recompute(const std::string& name);

// Document masking's documents, as model::document_segments() gives them
// (attention.h); undefined: one document per row, plain causal attention.
struct DocumentSegments {
  torch::Tensor segments;
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  // Statistics in fp32, result cast back to the input dtype, then scaled.
  torch::Tensor forward(const torch::Tensor& x);  // (..., dim)
  const torch::Tensor& weight() const { return weight_; }
  double eps() const { return eps_; }

 private:
  torch::Tensor weight_;  // (dim)
  double eps_;
};
TORCH_MODULE(RMSNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const Shape& shape);
  // x: (batch, seq, hidden); cos, sin: (batch, 1, seq, head_dim) RoPE
  // tables, sin with its first half negated (see rotary() in llama.cpp);
  // documents: DocumentSegments::segments (undefined: one per row);
  // attention is causal within each document.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& documents);

 private:
  friend class BlockImpl;  // selective recompute calls the projections' weights directly
  int64_t heads_, kv_heads_, head_dim_;
  int64_t window_;  // Mistral's sliding window; 0: none
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const Shape& shape);
  torch::Tensor forward(const torch::Tensor& x);  // SwiGLU: down(silu(gate(x)) * up(x))

 private:
  friend class BlockImpl;
  torch::nn::Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const Shape& shape);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& documents);
  // The same function, keeping only the block input, q/k/v, attention's
  // output, the residual after attention and SwiGLU's gate and up for
  // backward; everything else is recomputed there.
  torch::Tensor forward_selective(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                  const torch::Tensor& documents);

 private:
  RMSNorm input_layernorm_{nullptr}, post_attention_layernorm_{nullptr};
  Attention self_attn_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(Block);

class LlamaImpl : public torch::nn::Module {
 public:
  explicit LlamaImpl(Shape shape);

  // tokens: (batch, seq) int64. positions: (batch, seq) int64, empty for
  // 0..seq-1; the loader's positions restart at 0 at each document start.
  // document_mask: attend only within a document (documents start where
  // positions are 0), finding them costs a device-to-host read of the
  // positions. Returns logits (batch, seq, vocab) in fp32.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& positions = {}, bool document_mask = false);
  // The same with the documents found beforehand on the host
  // (document_segments() of the host positions): no device sync.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& positions,
                        const DocumentSegments& documents);

  // forward() without the LM head: the final norm's output (batch, seq,
  // hidden) in the parameters' dtype, for a loss that applies the head
  // itself (fused_linear_cross_entropy).
  torch::Tensor hidden_states(const torch::Tensor& tokens, const torch::Tensor& positions,
                              const DocumentSegments& documents);
  // The LM head's matrix (vocab, hidden): embed_tokens' where they are tied.
  const torch::Tensor& lm_head_weight() const;

  // Hugging Face's initialisation: every matrix N(0, 0.02), norms 1.
  void init_weights(uint64_t seed);

  const Shape& shape() const { return shape_; }

  // kFull: memory for the block inputs and one block's activations, for
  // ~1/3 more compute. kSelective: about half the activations of kNone, for
  // a few percent more (attention's forward is run twice).
  void set_activation_checkpointing(Recompute recompute) { recompute_ = recompute; }

 private:
  Shape shape_;
  Recompute recompute_ = Recompute::kNone;
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  RMSNorm norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};  // null when tied to embed_tokens
  torch::Tensor inv_freq_;  // (head_dim / 2) fp32, a buffer
};
TORCH_MODULE(Llama);

}  // namespace cpt::model
