#include "cpt/model/llama.h"

#include <torch/torch.h>

#include <cmath>

#include "cpt/backend/autocast.h"
#include "cpt/model/attention.h"
#include "weight_gradient.h"

namespace cpt::model {

namespace {

torch::nn::Linear linear(int64_t in, int64_t out, bool bias = false) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// Function::apply cannot carry undefined tensors: "none" travels as an
// empty one.
torch::Tensor unwrap(const torch::Tensor& t) { return t.numel() == 0 ? torch::Tensor() : t; }

// x W^T + b with weight_gradient's backward. Bias is empty where there is none.
struct ProjectionFunction : public torch::autograd::Function<ProjectionFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["bias"] = bias.numel() > 0;
    return at::linear(x, weight, unwrap(bias));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& g = grad_outputs[0];
    const auto g2d = g.reshape({-1, g.size(-1)});
    torch::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) grad_x = g.matmul(weight);
    if (ctx->needs_input_grad(1)) grad_weight = weight_gradient(weight, g2d, x.reshape({-1, x.size(-1)}));
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) grad_bias = g2d.sum(0);
    return {grad_x, grad_weight, grad_bias};
  }
};

// Under autocast the weights are cast on the way in, so they are not the
// leaves weight_gradient accumulates into: there, and where no gradient is
// wanted, the plain linear.
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {}) {
  if (!torch::GradMode::is_enabled() || !weight.requires_grad() ||
      backend::autocast_state(x.device().type()).enabled) {
    return at::linear(x, weight, bias);
  }
  return ProjectionFunction::apply(x, weight, bias.defined() ? bias : torch::empty({0}, weight.options()));
}

torch::Tensor project(const torch::Tensor& x, const torch::nn::Linear& layer) {
  return project(x, layer->weight, layer->bias);
}

// RoPE in HF's convention, x * cos + rotate_half(x) * sin with
// rotate_half(x1, x2) = (-x2, x1), written as x * cos + (x2, x1) * sin_signed
// where sin_signed = (-sin, sin) over the two halves of head_dim and
// (x2, x1) is a roll by half: one fused multiply-add, no negation pass.
// RoPE is linear in x, so backward needs only the tables, not x or its
// rolled copy (autograd of the composed ops would keep both):
// dL/dx = g * cos + roll(g * sin_signed), a roll by half being its own
// inverse.
struct RotaryFunction : public torch::autograd::Function<RotaryFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin_signed) {
    ctx->save_for_backward({cos, sin_signed});
    return torch::addcmul(x * cos, torch::roll(x, x.size(-1) / 2, -1), sin_signed);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& g = grad_outputs[0];
    auto grad_x = (g * saved[0]).add_(torch::roll(g * saved[1], g.size(-1) / 2, -1));
    return {grad_x, torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin_signed) {
  return RotaryFunction::apply(x, cos, sin_signed);
}

// RMSNorm with a hand-written backward: autograd of the composed ops
// (pow, mean, rsqrt, two muls) makes about fifteen passes over the
// activations in backward; this makes six. With n = x * r and
// r = 1 / sqrt(mean(x^2) + eps), y = w * n, and
//   dL/dw = sum over rows of g * n,
//   dL/dx = r * (g*w - n * mean(g*w*n)).
// Statistics in fp32; n is cast to the input dtype before the scale, as HF
// does.
struct RMSNormParts {
  torch::Tensor y, n, r;  // output; normalised input in x's dtype; fp32 1/rms, (..., 1)
};

RMSNormParts rms_norm_forward(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const auto h = x.to(torch::kFloat);
  const auto r = torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true).add_(eps));
  const auto n = (h * r).to(x.scalar_type());
  return {weight * n, n, r};
}

// Returns {dL/dx, dL/dw}.
std::pair<torch::Tensor, torch::Tensor> rms_norm_backward(const torch::Tensor& g, const torch::Tensor& n,
                                                          const torch::Tensor& r, const torch::Tensor& weight) {
  const auto g_n = (g * n).to(torch::kFloat);  // (..., dim)
  const auto grad_weight = g_n.reshape({-1, g_n.size(-1)}).sum(0).to(weight.scalar_type());
  const auto mean_gwn = (g_n * weight.to(torch::kFloat)).mean(-1, /*keepdim=*/true);  // mean(g*w*n)
  auto grad_x = (g * weight).to(torch::kFloat).addcmul_(n.to(torch::kFloat), mean_gwn, -1.0).mul_(r);
  return {grad_x.to(n.scalar_type()), grad_weight};  // n has x's dtype
}

struct RMSNormFunction : public torch::autograd::Function<RMSNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    RMSNormParts parts = rms_norm_forward(x, weight, eps);
    ctx->save_for_backward({parts.n, parts.r, weight});
    return parts.y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_x, grad_weight] = rms_norm_backward(grad_outputs[0], saved[0], saved[1], saved[2]);
    return {grad_x, grad_weight, torch::Tensor()};
  }
};

// The attention between the projections: q, k, v as the projections give
// them, (batch, seq, heads * head_dim) and (batch, seq, kv_heads *
// head_dim); RoPE, SDPA, and the heads merged back: (batch, seq, heads *
// head_dim), o_proj's input.
torch::Tensor attention_core(const torch::Tensor& q_proj, const torch::Tensor& k_proj, const torch::Tensor& v_proj,
                             const torch::Tensor& cos, const torch::Tensor& sin, const torch::Tensor& documents,
                             int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t window) {
  const int64_t batch = q_proj.size(0), seq = q_proj.size(1);
  auto q = q_proj.view({batch, seq, heads, head_dim}).transpose(1, 2);  // (batch, heads, seq, head_dim)
  auto k = k_proj.view({batch, seq, kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj.view({batch, seq, kv_heads, head_dim}).transpose(1, 2);
  q = rotary(q, cos, sin);
  k = rotary(k, cos, sin);
  auto out = causal_attention(q, k, v, documents, window);  // (batch, heads, seq, head_dim)
  return out.transpose(1, 2).reshape({batch, seq, heads * head_dim});
}

// Selective recompute, as Megatron's: what backward needs from the cheap
// operations around the matmuls is recomputed from the matmul outputs
// instead of kept. Each piece is an autograd Function whose forward runs
// without recording a graph and saves only its inputs.
//
// RMSNorm then two or three projections of its output (q/k/v, or gate/up):
// saves x, not the normalised x that the projections read; backward
// recomputes it, then y's gradient is the sum over the projections of
// g_i W_i and W_i's gradient g_i^T y, as Linear's backward computes them
// (and a bias's gradient the sum of g_i over the tokens). Biases are empty
// tensors where the projection has none.
struct NormThenProject : public torch::autograd::Function<NormThenProject> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                                const torch::Tensor& norm_weight, const torch::Tensor& w0,
                                                const torch::Tensor& w1, const torch::Tensor& w2,
                                                const torch::Tensor& b0, const torch::Tensor& b1,
                                                const torch::Tensor& b2, double eps) {
    ctx->save_for_backward({x, norm_weight, w0, w1, w2, b0, b1, b2});
    ctx->saved_data["eps"] = eps;
    const torch::Tensor y = rms_norm_forward(x, norm_weight, eps).y;
    torch::autograd::variable_list out = {at::linear(y, w0, unwrap(b0)), at::linear(y, w1, unwrap(b1))};
    if (w2.numel() > 0) out.push_back(at::linear(y, w2, unwrap(b2)));
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& norm_weight = saved[1];
    const RMSNormParts norm = rms_norm_forward(x, norm_weight, ctx->saved_data["eps"].toDouble());
    const auto y2d = norm.y.reshape({-1, norm.y.size(-1)});
    torch::Tensor grad_y;
    torch::autograd::variable_list grad_weights(3), grad_biases(3);
    for (size_t i = 0; i < grad_outputs.size(); ++i) {
      const auto& g = grad_outputs[i];
      if (!g.defined()) continue;
      const auto& w = saved[2 + i];
      const auto g2d = g.reshape({-1, g.size(-1)});
      grad_weights[i] = weight_gradient(w, g2d, y2d);
      if (saved[5 + i].numel() > 0) grad_biases[i] = g2d.sum(0).to(saved[5 + i].scalar_type());
      grad_y = grad_y.defined() ? grad_y.addmm_(g2d, w) : g2d.mm(w);
    }
    if (!grad_y.defined()) return torch::autograd::variable_list(9);
    auto [grad_x, grad_norm_weight] = rms_norm_backward(grad_y.view(x.sizes()), norm.n, norm.r, norm_weight);
    return {grad_x,         grad_norm_weight, grad_weights[0], grad_weights[1], grad_weights[2],
            grad_biases[0], grad_biases[1],   grad_biases[2],  torch::Tensor()};
  }
};

// RoPE and attention: saves q, k and v as the projections gave them; the
// rotated q and k, and SDPA's own saved state, are recomputed in backward
// (attention's forward runs twice: the "softmax side" Megatron recomputes).
struct AttentionCoreFunction : public torch::autograd::Function<AttentionCoreFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& cos, const torch::Tensor& sin,
                               const torch::Tensor& documents, int64_t heads, int64_t kv_heads, int64_t window) {
    ctx->save_for_backward({q, k, v, cos, sin, documents});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["kv_heads"] = kv_heads;
    ctx->saved_data["window"] = window;
    const int64_t head_dim = q.size(-1) / heads;
    return attention_core(q, k, v, cos, sin, unwrap(documents), heads, kv_heads, head_dim, window);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const int64_t heads = ctx->saved_data["heads"].toInt(), kv_heads = ctx->saved_data["kv_heads"].toInt();
    const int64_t window = ctx->saved_data["window"].toInt();
    auto q = saved[0].detach().requires_grad_(true);
    auto k = saved[1].detach().requires_grad_(true);
    auto v = saved[2].detach().requires_grad_(true);
    torch::autograd::variable_list grads;
    {
      torch::AutoGradMode grad_on(true);
      const auto out = attention_core(q, k, v, saved[3], saved[4], unwrap(saved[5]), heads, kv_heads,
                                      q.size(-1) / heads, window);
      grads = torch::autograd::grad({out}, {q, k, v}, {grad_outputs[0]});
    }
    return {grads[0],        grads[1],        grads[2],        torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// SwiGLU then down_proj: saves gate and up (matmul outputs); silu(gate) * up,
// down_proj's input, is recomputed in backward.
struct SwiGluDown : public torch::autograd::Function<SwiGluDown> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gate,
                               const torch::Tensor& up, const torch::Tensor& w_down) {
    ctx->save_for_backward({gate, up, w_down});
    return at::linear(torch::silu(gate) * up, w_down);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    auto gate = saved[0].detach().requires_grad_(true);
    auto up = saved[1].detach().requires_grad_(true);
    const auto& w_down = saved[2];
    const auto& g = grad_outputs[0];
    const auto g2d = g.reshape({-1, g.size(-1)});
    torch::autograd::variable_list grads;
    torch::Tensor grad_w_down;
    {
      torch::AutoGradMode grad_on(true);
      const auto product = torch::silu(gate) * up;
      grad_w_down = weight_gradient(w_down, g2d, product.detach().reshape({-1, product.size(-1)}));
      grads = torch::autograd::grad({product}, {gate, up}, {g2d.mm(w_down).view(product.sizes())});
    }
    return {grads[0], grads[1], grad_w_down};
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
                               const torch::Tensor& sin, const torch::Tensor& documents, int64_t block_address) {
    auto* block = reinterpret_cast<BlockImpl*>(block_address);  // the module outlives the graph
    ctx->saved_data["block"] = block_address;
    const backend::AutocastState autocast = backend::autocast_state(x.device().type());
    ctx->saved_data["autocast"] = autocast.enabled;
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(autocast.dtype);
    ctx->save_for_backward({x, cos, sin, documents});
    torch::NoGradGuard no_grad;
    return block->forward(x, cos, sin, unwrap(documents));
  }

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
      y = block->forward(x, saved[1], saved[2], unwrap(saved[3]));
    }
    torch::autograd::backward({y}, {grad_outputs[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

Recompute parse_recompute(const std::string& name) {
  if (name == "none") return Recompute::kNone;
  if (name == "full") return Recompute::kFull;
  if (name == "selective") return Recompute::kSelective;
  throw std::invalid_argument("activation checkpointing '" + name + "': use none, full or selective");
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) { return RMSNormFunction::apply(x, weight_, eps_); }

AttentionImpl::AttentionImpl(const Shape& s)
    : heads_(s.num_attention_heads), kv_heads_(s.num_key_value_heads), head_dim_(s.head_dim()),
      window_(s.arch.sliding_window) {
  const bool bias = s.arch.attention_bias;
  q_proj_ = register_module("q_proj", linear(s.hidden_size, heads_ * head_dim_, bias));
  k_proj_ = register_module("k_proj", linear(s.hidden_size, kv_heads_ * head_dim_, bias));
  v_proj_ = register_module("v_proj", linear(s.hidden_size, kv_heads_ * head_dim_, bias));
  o_proj_ = register_module("o_proj", linear(heads_ * head_dim_, s.hidden_size));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& documents) {
  return project(attention_core(project(x, q_proj_), project(x, k_proj_), project(x, v_proj_), cos, sin, documents,
                                heads_, kv_heads_, head_dim_, window_),
                 o_proj_);
}

MlpImpl::MlpImpl(const Shape& s) {
  gate_proj_ = register_module("gate_proj", linear(s.hidden_size, s.intermediate_size));
  up_proj_ = register_module("up_proj", linear(s.hidden_size, s.intermediate_size));
  down_proj_ = register_module("down_proj", linear(s.intermediate_size, s.hidden_size));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return project(torch::silu(project(x, gate_proj_)) * project(x, up_proj_), down_proj_);
}

BlockImpl::BlockImpl(const Shape& s) {
  self_attn_ = register_module("self_attn", Attention(s));
  mlp_ = register_module("mlp", Mlp(s));
  input_layernorm_ = register_module("input_layernorm", RMSNorm(s.hidden_size, s.rms_norm_eps));
  post_attention_layernorm_ = register_module("post_attention_layernorm", RMSNorm(s.hidden_size, s.rms_norm_eps));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                 const torch::Tensor& documents) {
  auto h = x + self_attn_(input_layernorm_(x), cos, sin, documents);
  return h + mlp_(post_attention_layernorm_(h));
}

torch::Tensor BlockImpl::forward_selective(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                           const torch::Tensor& documents) {
  if (backend::autocast_state(x.device().type()).enabled) {
    // Its backward computes the matmuls itself, in the parameters' dtype.
    throw std::logic_error("selective recompute runs on the parameters' dtype (bf16 parameters), not under autocast");
  }
  Attention& attn = self_attn_;
  const auto empty = torch::empty({0}, x.options());
  const auto bias = [&](const torch::nn::Linear& projection) {
    return projection->bias.defined() ? projection->bias : empty;
  };
  const auto qkv = NormThenProject::apply(x, input_layernorm_->weight(), attn->q_proj_->weight, attn->k_proj_->weight,
                                          attn->v_proj_->weight, bias(attn->q_proj_), bias(attn->k_proj_),
                                          bias(attn->v_proj_), input_layernorm_->eps());
  const auto attended = AttentionCoreFunction::apply(qkv[0], qkv[1], qkv[2], cos, sin,
                                                     documents.defined() ? documents : torch::empty({0}), attn->heads_,
                                                     attn->kv_heads_, attn->window_);
  const auto h = x + project(attended, attn->o_proj_);
  const auto gate_up = NormThenProject::apply(h, post_attention_layernorm_->weight(), mlp_->gate_proj_->weight,
                                              mlp_->up_proj_->weight, empty, empty, empty, empty,
                                              post_attention_layernorm_->eps());
  return h + SwiGluDown::apply(gate_up[0], gate_up[1], mlp_->down_proj_->weight);
}

LlamaImpl::LlamaImpl(Shape shape) : shape_(shape) {
  auto model = std::make_shared<torch::nn::Module>();
  embed_tokens_ = model->register_module("embed_tokens", torch::nn::Embedding(shape_.vocab_size, shape_.hidden_size));
  layers_ = model->register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < shape_.num_hidden_layers; ++l) layers_->push_back(Block(shape_));
  norm_ = model->register_module("norm", RMSNorm(shape_.hidden_size, shape_.rms_norm_eps));
  register_module("model", model);
  // A tied lm_head is embed_tokens' matrix: no parameter of its own, and no
  // lm_head.weight in the checkpoint (as transformers saves it).
  if (!shape_.arch.tie_word_embeddings) lm_head_ = register_module("lm_head", linear(shape_.hidden_size, shape_.vocab_size));
  const int64_t half = shape_.head_dim() / 2;
  // 1 / theta^(2i/d), in fp32 as transformers computes it; a buffer, so it
  // moves with the module and is on the device at every forward (not a
  // parameter: checkpoints do not hold it).
  auto exponents = torch::arange(0, 2 * half, 2, torch::kLong).to(torch::kFloat) / static_cast<float>(shape_.head_dim());
  auto inv_freq = 1.0 / torch::pow(shape_.rope_theta, exponents);
  const Llama3RopeScaling& scaling = shape_.arch.rope_scaling;
  if (scaling.factor > 0) {
    // Llama-3.1: wavelengths past the original context's low-frequency bound
    // are stretched by `factor`, those under its high-frequency bound kept,
    // and the band between interpolated (transformers' llama3 rope_type).
    const double context = static_cast<double>(scaling.original_max_position_embeddings);
    const double low_wavelen = context / scaling.low_freq_factor, high_wavelen = context / scaling.high_freq_factor;
    const auto wavelen = 2 * M_PI / inv_freq;
    auto scaled = torch::where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq);
    const auto smooth = (context / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
    const auto smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
    const auto medium = wavelen.ge(high_wavelen).logical_and(wavelen.le(low_wavelen));
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  inv_freq_ = register_buffer("inv_freq", inv_freq.to(torch::kFloat));
}

void LlamaImpl::init_weights(uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    if (p.value().dim() >= 2) {
      p.value().normal_(0.0, 0.02);
    } else if (p.key().size() >= 5 && p.key().compare(p.key().size() - 5, 5, ".bias") == 0) {
      p.value().zero_();
    } else {
      p.value().fill_(1.0);  // RMSNorm scales
    }
  }
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& tokens, const torch::Tensor& positions, bool document_mask) {
  if (!document_mask) return forward(tokens, positions, DocumentSegments{});
  TORCH_CHECK(positions.defined(), "document masking needs the positions (documents start where they are 0)");
  return forward(tokens, positions, DocumentSegments{document_segments(positions.to(torch::kCPU))});
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& tokens, const torch::Tensor& positions,
                                 const DocumentSegments& document_segments) {
  return project(hidden_states(tokens, positions, document_segments), lm_head_weight()).to(torch::kFloat);
}

const torch::Tensor& LlamaImpl::lm_head_weight() const { return lm_head_ ? lm_head_->weight : embed_tokens_->weight; }

torch::Tensor LlamaImpl::hidden_states(const torch::Tensor& tokens, const torch::Tensor& positions,
                                       const DocumentSegments& document_segments) {
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
  const torch::Tensor& documents = document_segments.segments;  // undefined: one document per row
  const auto cos = torch::cat({freqs_cos, freqs_cos}, -1).unsqueeze(1).to(h.scalar_type());
  const auto sin = torch::cat({-freqs_sin, freqs_sin}, -1).unsqueeze(1).to(h.scalar_type());
  const Recompute recompute = torch::GradMode::is_enabled() ? recompute_ : Recompute::kNone;
  for (const auto& layer : *layers_) {
    BlockImpl* block = layer->as<Block>();
    switch (recompute) {
      case Recompute::kNone:
        h = block->forward(h, cos, sin, documents);
        break;
      case Recompute::kFull:
        h = CheckpointedBlock::apply(h, cos, sin, documents.defined() ? documents : torch::empty({0}),
                                     reinterpret_cast<int64_t>(block));
        break;
      case Recompute::kSelective:
        h = block->forward_selective(h, cos, sin, documents);
        break;
    }
  }
  return norm_(h);
}

}  // namespace cpt::model
