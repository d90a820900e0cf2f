#include "cpt/model/llama.h"

#include <torch/torch.h>

#include <cmath>

#include "cpt/backend/autocast.h"

namespace cpt::model {

namespace {

torch::nn::Linear linear(int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); }

// RoPE in HF's convention, x * cos + rotate_half(x) * sin with
// rotate_half(x1, x2) = (-x2, x1), written as x * cos + (x2, x1) * sin_signed
// where sin_signed = (-sin, sin) over the two halves of head_dim and
// (x2, x1) is a roll by half: one fused multiply-add, no negation pass, and
// a roll back as the swap's whole backward.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin_signed) {
  return torch::addcmul(x * cos, torch::roll(x, x.size(-1) / 2, -1), sin_signed);
}

// The attention mask for document masking: SDPA's (batch, 1, seq, seq)
// bool mask, true = attend: causal, and within the token's own document.
torch::Tensor document_attention_mask(const torch::Tensor& document, int64_t seq) {
  // document: (batch, seq) document number of each token
  const auto causal = torch::ones({seq, seq}, document.options().dtype(torch::kBool)).tril();
  return (document.unsqueeze(2) == document.unsqueeze(1)).logical_and(causal).unsqueeze(1);
}

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask) {
  // q: (batch, heads, seq, head_dim); k, v: (batch, kv_heads, seq, head_dim).
  // GQA inside SDPA (enable_gqa): each KV head serves heads/kv_heads
  // consecutive query heads, HF's repeat_kv order, without copying K and V.
  // Without a mask SDPA's is_causal picks flash attention where it can.
  const bool gqa = k.size(1) != q.size(1);
  if (!mask.defined()) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, std::nullopt, gqa);
  }
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt, gqa);
}

// RMSNorm with a hand-written backward: autograd of the composed ops
// (pow, mean, rsqrt, two muls) makes about fifteen passes over the
// activations in backward; this makes six. With n = x * r and
// r = 1 / sqrt(mean(x^2) + eps), y = w * n, and
//   dL/dw = sum over rows of g * n,
//   dL/dx = r * (g*w - n * mean(g*w*n)).
// Statistics in fp32; n is cast to the input dtype before the scale, as HF
// does.
struct RMSNormFunction : public torch::autograd::Function<RMSNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    const auto h = x.to(torch::kFloat);
    const auto r = torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true).add_(eps));  // (..., 1)
    const auto n = (h * r).to(x.scalar_type());
    ctx->save_for_backward({n, r, weight});
    return weight * n;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& n = saved[0];
    const auto& r = saved[1];
    const auto& weight = saved[2];
    const auto g = grad_outputs[0];
    const auto g_n = (g * n).to(torch::kFloat);  // (..., dim)
    const auto grad_weight = g_n.reshape({-1, g_n.size(-1)}).sum(0).to(weight.scalar_type());
    const auto mean_gwn = (g_n * weight.to(torch::kFloat)).mean(-1, /*keepdim=*/true);  // mean(g*w*n)
    auto grad_x = (g * weight).to(torch::kFloat).addcmul_(n.to(torch::kFloat), mean_gwn, -1.0).mul_(r);
    return {grad_x.to(n.scalar_type()), grad_weight, torch::Tensor()};  // n has x's dtype
  }
};

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

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) { return RMSNormFunction::apply(x, weight_, eps_); }

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
  q = rotary(q, cos, sin);
  k = rotary(k, cos, sin);
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
  // 1 / theta^(2i/d); a buffer, so it moves with the module and is on the
  // device at every forward (not a parameter: checkpoints do not hold it).
  inv_freq_ = register_buffer("inv_freq", torch::pow(shape_.rope_theta, -exponents).to(torch::kFloat));
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
  // RoPE tables, computed in fp32: (batch, 1, seq, head_dim), HF's
  // cos(cat(freqs, freqs)), and sin with its first half negated (rotary()).
  // .to() is a no-op unless the whole module was cast (module->to(bf16)): the tables stay fp32.
  const auto freqs = pos.to(torch::kFloat).unsqueeze(-1) * inv_freq_.to(torch::kFloat);  // (batch, seq, head_dim/2)
  const auto freqs_cos = freqs.cos(), freqs_sin = freqs.sin();
  auto h = embed_tokens_(tokens);  // (batch, seq, hidden)
  const torch::Tensor mask = document_mask ? document_attention_mask((pos == 0).cumsum(1), seq) : torch::Tensor();
  const auto cos = torch::cat({freqs_cos, freqs_cos}, -1).unsqueeze(1).to(h.scalar_type());
  const auto sin = torch::cat({-freqs_sin, freqs_sin}, -1).unsqueeze(1).to(h.scalar_type());
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
