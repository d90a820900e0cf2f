#include "cpt/model/llama.h"

#include <torch/torch.h>

#include <cmath>

#include "cpt/backend/autocast.h"

namespace cpt::model {

namespace {

torch::nn::Linear linear(int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); }

// HF's rotate_half: (x1, x2) -> (-x2, x1) over the two halves of head_dim.
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Explicit causal attention: on LibTorch 1.13 it is faster on CPU than the
// private SDPA, and it takes a document mask.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask) {
  // q, k, v: (batch, heads, seq, head_dim)
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  if (!mask.defined()) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false);
#else
  const int64_t seq = q.size(2);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  torch::Tensor allowed = mask.defined() ? mask
                                         : torch::ones({seq, seq}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).tril();
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  auto probs = torch::softmax(scores.to(torch::kFloat), -1).to(q.scalar_type());
  return torch::matmul(probs, v);
#endif
}

// Per-block activation checkpointing (LibTorch C++ has none built in): the
// forward runs the block without recording a graph; the backward runs it
// again with grad on a detached copy of its input and back-propagates
// through that, which accumulates the block's parameter gradients as a
// plain backward would. The recomputation runs under the autocast state
// of the forward (backward itself runs outside the autocast scope), so it
// reproduces the same bf16 activations. Blocks have no dropout, so no RNG
// state needs restoring.
struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, const torch::Tensor& mask, int64_t block_address) {
    auto* block = reinterpret_cast<BlockImpl*>(block_address);  // the module outlives the graph
    ctx->saved_data["block"] = block_address;
    const backend::AutocastState autocast = backend::autocast_state(x.device().type());
    ctx->saved_data["autocast"] = autocast.enabled;
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(autocast.dtype);
    ctx->save_for_backward({x, cos, sin, mask});
    torch::NoGradGuard no_grad;
    return block->forward(x, cos, sin, unwrap_mask(mask));
  }

  // Function::apply cannot carry undefined tensors: "no mask" travels as an
  // empty one.
  static torch::Tensor unwrap_mask(const torch::Tensor& mask) { return mask.numel() == 0 ? torch::Tensor() : mask; }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto* block = reinterpret_cast<BlockImpl*>(ctx->saved_data["block"].toInt());
    const auto saved = ctx->get_saved_variables();
    auto x = saved[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      const backend::AutocastScope autocast(
          x.device().type(), {ctx->saved_data["autocast"].toBool(),
                              static_cast<c10::ScalarType>(ctx->saved_data["autocast_dtype"].toInt())});
      torch::AutoGradMode grad_on(true);
      y = block->forward(x, saved[1], saved[2], unwrap_mask(saved[3]));
    }
    torch::autograd::backward({y}, {grad_outputs[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  const auto dtype = x.scalar_type();
  auto h = x.to(torch::kFloat);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight_ * h.to(dtype);
}

AttentionImpl::AttentionImpl(const Shape& s)
    : heads_(s.num_attention_heads), kv_heads_(s.num_key_value_heads), head_dim_(s.head_dim()) {
  q_proj_ = register_module("q_proj", linear(s.hidden_size, heads_ * head_dim_));
  k_proj_ = register_module("k_proj", linear(s.hidden_size, kv_heads_ * head_dim_));
  v_proj_ = register_module("v_proj", linear(s.hidden_size, kv_heads_ * head_dim_));
  o_proj_ = register_module("o_proj", linear(heads_ * head_dim_, s.hidden_size));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& mask) {
  const int64_t batch = x.size(0), seq = x.size(1);
  auto q = q_proj_(x).view({batch, seq, heads_, head_dim_}).transpose(1, 2);     // (batch, heads, seq, head_dim)
  auto k = k_proj_(x).view({batch, seq, kv_heads_, head_dim_}).transpose(1, 2);  // (batch, kv_heads, seq, head_dim)
  auto v = v_proj_(x).view({batch, seq, kv_heads_, head_dim_}).transpose(1, 2);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (kv_heads_ != heads_) {
    // GQA: each KV head serves heads/kv_heads consecutive query heads (HF's repeat_kv).
    k = k.repeat_interleave(heads_ / kv_heads_, 1);
    v = v.repeat_interleave(heads_ / kv_heads_, 1);
  }
  auto out = attend(q, k, v, mask);  // (batch, heads, seq, head_dim)
  return o_proj_(out.transpose(1, 2).reshape({batch, seq, heads_ * head_dim_}));
}

MlpImpl::MlpImpl(const Shape& s) {
  gate_proj_ = register_module("gate_proj", linear(s.hidden_size, s.intermediate_size));
  up_proj_ = register_module("up_proj", linear(s.hidden_size, s.intermediate_size));
  down_proj_ = register_module("down_proj", linear(s.intermediate_size, s.hidden_size));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return down_proj_(torch::silu(gate_proj_(x)) * up_proj_(x));
}

BlockImpl::BlockImpl(const Shape& s) {
  self_attn_ = register_module("self_attn", Attention(s));
  mlp_ = register_module("mlp", Mlp(s));
  input_layernorm_ = register_module("input_layernorm", RMSNorm(s.hidden_size, s.rms_norm_eps));
  post_attention_layernorm_ = register_module("post_attention_layernorm", RMSNorm(s.hidden_size, s.rms_norm_eps));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                 const torch::Tensor& mask) {
  auto h = x + self_attn_(input_layernorm_(x), cos, sin, mask);
  return h + mlp_(post_attention_layernorm_(h));
}

LlamaImpl::LlamaImpl(Shape shape) : shape_(shape) {
  auto model = std::make_shared<torch::nn::Module>();
  embed_tokens_ = model->register_module("embed_tokens", torch::nn::Embedding(shape_.vocab_size, shape_.hidden_size));
  layers_ = model->register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < shape_.num_hidden_layers; ++l) layers_->push_back(Block(shape_));
  norm_ = model->register_module("norm", RMSNorm(shape_.hidden_size, shape_.rms_norm_eps));
  register_module("model", model);
  lm_head_ = register_module("lm_head", linear(shape_.hidden_size, shape_.vocab_size));
  const int64_t half = shape_.head_dim() / 2;
  auto exponents = torch::arange(0, half, torch::kDouble) * 2.0 / static_cast<double>(shape_.head_dim());
  inv_freq_ = torch::pow(shape_.rope_theta, -exponents).to(torch::kFloat);  // 1 / theta^(2i/d)
}

void LlamaImpl::init_weights(uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.value().dim() >= 2) {
      p.value().normal_(0.0, 0.02);
    } else {
      p.value().fill_(1.0);
    }
  }
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& tokens, const torch::Tensor& positions, bool document_mask) {
  const int64_t batch = tokens.size(0), seq = tokens.size(1);
  torch::Tensor pos = positions.defined()
                          ? positions
                          : torch::arange(seq, torch::TensorOptions().dtype(torch::kLong).device(tokens.device()))
                                .unsqueeze(0)
                                .expand({batch, seq});
  // RoPE tables in fp32: (batch, 1, seq, head_dim), HF's cat(freqs, freqs).
  auto freqs = pos.to(torch::kFloat).unsqueeze(-1) * inv_freq_.to(tokens.device());
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);
  torch::Tensor mask;
  if (document_mask) {
    auto document = (pos == 0).cumsum(1);                                   // (batch, seq): document number
    auto same = document.unsqueeze(2) == document.unsqueeze(1);            // (batch, seq, seq)
    auto causal = torch::ones({seq, seq}, torch::TensorOptions().dtype(torch::kBool).device(tokens.device())).tril();
    mask = (same & causal).unsqueeze(1);                                   // (batch, 1, seq, seq)
  }
  auto h = embed_tokens_(tokens);  // (batch, seq, hidden)
  const auto cos = emb.cos().to(h.scalar_type()), sin = emb.sin().to(h.scalar_type());
  const bool recompute = checkpointing_ && torch::GradMode::is_enabled();
  for (const auto& layer : *layers_) {
    BlockImpl* block = layer->as<Block>();
    h = recompute ? CheckpointedBlock::apply(h, cos, sin, mask.defined() ? mask : torch::empty({0}),
                                             reinterpret_cast<int64_t>(block))
                  : block->forward(h, cos, sin, mask);
  }
  return lm_head_(norm_(h)).to(torch::kFloat);
}

}  // namespace cpt::model
