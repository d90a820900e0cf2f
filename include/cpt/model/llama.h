#pragma once
// The Llama-2 decoder in LibTorch. Module and parameter names are Hugging
// Face's ("model.layers.0.self_attn.q_proj.weight"), so named_parameters()
// is the HF state dict and checkpoints load and save without renaming.
// Torch-facing: include only from torch targets.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "cpt/model/config.h"

namespace cpt::model {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  // Statistics in fp32, result cast back to the input dtype, then scaled.
  torch::Tensor forward(const torch::Tensor& x);  // (..., dim)

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
  // mask: built once per forward by the model, in the form its attention
  // kernel takes (see attention_mask in llama.cpp); causal in every form.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);

 private:
  int64_t heads_, kv_heads_, head_dim_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const Shape& shape);
  torch::Tensor forward(const torch::Tensor& x);  // SwiGLU: down(silu(gate(x)) * up(x))

 private:
  torch::nn::Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const Shape& shape);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);

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
  // positions are 0). Returns logits (batch, seq, vocab) in fp32.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& positions = {}, bool document_mask = false);

  // Hugging Face's initialisation: every matrix N(0, 0.02), norms 1.
  void init_weights(uint64_t seed);

  const Shape& shape() const { return shape_; }

  // Recompute each block in backward instead of keeping its activations:
  // memory for one block's activations instead of all of them, for ~1/3
  // more compute.
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }

 private:
  Shape shape_;
  bool checkpointing_ = false;
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  RMSNorm norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  torch::Tensor inv_freq_;  // (head_dim / 2) fp32, a buffer
};
TORCH_MODULE(Llama);

}  // namespace cpt::model
