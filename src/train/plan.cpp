#include "cpt/train/plan.h"

#include <algorithm>
#include <fmt/format.h>

#include "cpt/common/strings.h"
#include "cpt/model/shape.h"
#include "cpt/train/config.h"

namespace cpt::train {

namespace {

// Per token, the values one block keeps for backward, by what backward
// recomputes (see plan.h).
int64_t block_values_per_token(const model::Shape& s, const std::string& recompute) {
  const int64_t d = s.hidden_size, kv = s.num_key_value_heads * s.head_dim(), ffn = s.intermediate_size;
  if (recompute == "selective") return 4 * d + 2 * kv + 2 * ffn;
  return 7 * d + 2 * kv + 4 * ffn;
}

// Activations saved for backward on one rank, one micro-batch in flight.
int64_t activation_bytes(const config::Config& c, const std::string& recompute) {
  const model::Shape& s = c.model.shape;
  const int64_t tokens = c.train.micro_batch_size * c.data.seq_len;
  const int64_t bytes = c.train.precision == "bf16" ? 2 : 4;  // activations: the parameters' dtype
  const int64_t per_block = tokens * block_values_per_token(s, "none") * bytes;
  // The fused head and loss keep one (tokens, vocab) tensor, the logits'
  // gradient, from the loss's forward to the head's backward.
  const int64_t logits = tokens * s.vocab_size * bytes;
  // Full: the logits' gradient is gone before the first block is
  // recomputed, so the larger of the two sits on top of the inputs.
  if (recompute == "full") return s.num_hidden_layers * tokens * s.hidden_size * bytes + std::max(per_block, logits);
  return s.num_hidden_layers * tokens * block_values_per_token(s, recompute) * bytes + logits;
}

// Forward FLOPs per token that backward runs again: each whole block
// (full), or attention's scores and weighted values (selective; the
// elementwise work it also repeats is not counted).
double recompute_flops_per_token(const model::Shape& s, int64_t seq_len, const std::string& recompute) {
  const double attention_forward = 4.0 * static_cast<double>(s.num_hidden_layers) *
                                   static_cast<double>(s.hidden_size) * static_cast<double>(seq_len);
  if (recompute == "selective") return attention_forward;
  if (recompute != "full") return 0.0;
  const int64_t embedding_and_head = model::embedding_parameter_count(s) * (s.arch.tie_word_embeddings ? 1 : 2);
  const double block_parameters = static_cast<double>(model::parameter_count(s) - embedding_and_head - s.hidden_size);
  return 2.0 * block_parameters + attention_forward;
}

MemoryEstimate estimate(const config::Config& c, int64_t parameters, int world_size, bool zero1) {
  const bool bf16 = c.train.precision == "bf16";

  // DataParallel's buffers: parameters and accumulated gradients in the
  // compute dtype; in bf16, fp32 master weights and main gradients for the
  // rank's range (all of it without ZeRO-1); with ZeRO-1 on several ranks,
  // the reduce-scatter's fp32 output for the range (and in bf16 one chunk
  // of fp32 copies per rank in flight). One process on the CPU in bf16 has
  // no main gradients: its optimizer reads the bf16 ones (adamw_kernel.h).
  // "auto" is planned as a GPU would run it, the larger.
  const int64_t owned = zero1 ? (parameters + world_size - 1) / world_size : parameters;
  const int64_t chunk_bytes = static_cast<int64_t>(c.distributed.bucket_mb * 1024 * 1024);
  const bool main_gradients = bf16 && !(world_size == 1 && c.backend == "cpu");
  MemoryEstimate m;
  m.weights = bf16 ? 2 * parameters + 4 * owned : 4 * parameters;
  m.gradients = bf16 ? 2 * parameters + (main_gradients ? 4 * owned : 0)
                     : 4 * parameters + (zero1 && world_size > 1 ? 4 * owned : 0);
  if (bf16 && zero1 && world_size > 1) m.gradients += world_size * std::min(chunk_bytes, 4 * owned);
  m.optimizer = 8 * owned;
  m.activations = activation_bytes(c, c.train.activation_checkpointing);
  return m;
}

nlohmann::ordered_json memory_json(const MemoryEstimate& m) {
  return {{"weights_bytes", m.weights},
          {"gradients_bytes", m.gradients},
          {"optimizer_bytes", m.optimizer},
          {"activations_bytes", m.activations},
          {"total_bytes", m.total()}};
}

}  // namespace

Plan make_plan(const config::Config& c, int world_size) {
  Plan p;
  p.parameters = model::parameter_count(c.model.shape);
  p.architecture = model::describe(c.model.shape.arch);
  p.flops_per_token = model::training_flops_per_token(c.model.shape, c.data.seq_len);
  p.tokens_per_step = c.train.global_batch_size * c.data.seq_len;
  p.steps = c.train.steps;
  p.total_tokens = p.tokens_per_step * p.steps;
  p.world_size = world_size;
  p.bf16 = c.train.precision == "bf16";
  p.micro_batches_per_rank = c.train.global_batch_size / (c.train.micro_batch_size * world_size);
  p.memory_without_zero1 = estimate(c, p.parameters, world_size, false);
  p.memory_with_zero1 = estimate(c, p.parameters, world_size, true);
  p.memory = c.distributed.zero1 ? p.memory_with_zero1 : p.memory_without_zero1;
  p.recompute = c.train.activation_checkpointing;
  for (size_t i = 0; i < std::size(kActivationCheckpointing); ++i) {
    p.by_recompute[i] = {kActivationCheckpointing[i], activation_bytes(c, kActivationCheckpointing[i]),
                         recompute_flops_per_token(c.model.shape, c.data.seq_len, kActivationCheckpointing[i])};
  }
  return p;
}

nlohmann::ordered_json to_json(const Plan& p) {
  return {{"architecture", p.architecture},
          {"parameters", p.parameters},
          {"flops_per_token", p.flops_per_token},
          {"tokens_per_step", p.tokens_per_step},
          {"steps", p.steps},
          {"total_tokens", p.total_tokens},
          {"world_size", p.world_size},
          {"micro_batches_per_rank", p.micro_batches_per_rank},
          {"memory_per_rank", memory_json(p.memory)},
          {"memory_per_rank_without_zero1", memory_json(p.memory_without_zero1)},
          {"memory_per_rank_with_zero1", memory_json(p.memory_with_zero1)},
          {"activation_checkpointing", p.recompute},
          {"activation_checkpointing_options", [&] {
             auto options = nlohmann::ordered_json::array();
             for (const auto& r : p.by_recompute) {
               options.push_back({{"mode", r.mode},
                                  {"activations_bytes", r.activations},
                                  {"recompute_flops_per_token", r.recompute_flops_per_token}});
             }
             return options;
           }()}};
}

std::string describe(const Plan& p) {
  auto row = [](const char* name, const std::string& value) { return fmt::format("  {:<28} {}\n", name, value); };
  std::string out = "plan:\n";
  out += row("architecture", p.architecture);
  out += row("parameters", with_thousands(p.parameters));
  out += row("training FLOPs per token", fmt::format("{:.4g}", p.flops_per_token));
  out += row("tokens per step", with_thousands(p.tokens_per_step));
  out += row("steps", with_thousands(p.steps));
  out += row("total tokens", fmt::format("{} ({:.3g})", with_thousands(p.total_tokens), double(p.total_tokens)));
  out += row("world size", std::to_string(p.world_size));
  out += row("micro-batches per rank", std::to_string(p.micro_batches_per_rank));
  out += "memory per rank (estimate):  with ZeRO-1 / without\n";
  auto mem = [&](const char* name, int64_t with, int64_t without) {
    out += fmt::format("  {:<28} {:>12} / {}\n", name, human_bytes(double(with)), human_bytes(double(without)));
  };
  mem(p.bf16 ? "weights (bf16 + fp32 master)" : "fp32 weights", p.memory_with_zero1.weights,
      p.memory_without_zero1.weights);
  mem(p.bf16 ? "gradients (bf16 + fp32 main)" : "fp32 gradients", p.memory_with_zero1.gradients,
      p.memory_without_zero1.gradients);
  mem("AdamW moments", p.memory_with_zero1.optimizer, p.memory_without_zero1.optimizer);
  mem("activations", p.memory_with_zero1.activations, p.memory_without_zero1.activations);
  mem("total", p.memory_with_zero1.total(), p.memory_without_zero1.total());
  out += fmt::format("activation checkpointing: {} (activations; extra forward FLOPs in backward)\n", p.recompute);
  for (const auto& r : p.by_recompute) {
    out += fmt::format("  {:<28} {:>12} ; +{:.1f}% FLOPs\n", r.mode, human_bytes(double(r.activations)),
                       100.0 * r.recompute_flops_per_token / p.flops_per_token);
  }
  return out;
}

}  // namespace cpt::train
