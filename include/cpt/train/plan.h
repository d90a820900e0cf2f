#pragma once
// What a config will cost before anything runs: sizes, token budget and a
// per-rank memory estimate, so a 7B run can be planned on a laptop.

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "cpt/config/config.h"

namespace cpt::train {

struct MemoryEstimate {
  int64_t weights = 0;      // parameters; in bf16 also the fp32 master weights (sharded under ZeRO-1)
  int64_t gradients = 0;    // accumulated gradients; in bf16 also the fp32 main gradients (sharded under ZeRO-1)
  int64_t optimizer = 0;    // AdamW first and second moments (sharded under ZeRO-1)
  int64_t activations = 0;  // saved for backward, one micro-batch in flight
  int64_t total() const { return weights + gradients + optimizer + activations; }
};

struct RecomputeOption {
  std::string mode;                       // none | full | selective
  int64_t activations = 0;                // bytes per rank, as MemoryEstimate::activations
  double recompute_flops_per_token = 0;   // forward FLOPs backward runs again (not in flops_per_token)
};

struct Plan {
  std::string architecture;            // model::describe of the model's family and options
  int64_t parameters = 0;
  double flops_per_token = 0;          // training FLOPs, forward + backward
  int64_t tokens_per_step = 0;         // global_batch_size * seq_len
  int64_t steps = 0;
  int64_t total_tokens = 0;
  int world_size = 1;
  bool bf16 = false;                   // train.precision bf16: bf16 parameters over fp32 master weights
  int64_t micro_batches_per_rank = 0;  // gradient-accumulation steps on each rank
  MemoryEstimate memory;               // per rank, as configured
  MemoryEstimate memory_without_zero1; // per rank, replicated optimizer state
  MemoryEstimate memory_with_zero1;    // per rank, optimizer state sharded over the world
  std::string recompute;               // train.activation_checkpointing
  std::array<RecomputeOption, 3> by_recompute;  // each mode, for the same config
};

// Activations are counted per token for the tensors a Llama block keeps for
// backward, in the parameters' dtype, plus the logits' gradient in that
// dtype (the fused head and loss keep nothing else of the logits). With
// d = hidden, kv = the K/V width and f = intermediate:
// none keeps 7d + 2kv + 4f (norm outputs and normalised inputs, rotated q
// and k, v, attention's output and its merged-heads copy, gate, up,
// silu(gate) and their product); selective keeps 4d + 2kv + 2f (block
// input, q, k, v, attention output, mid-block residual, gate, up); full
// keeps each block's input, and on top the larger of the logits (until
// lm_head's backward) and one block's none set while it is recomputed.
// Attention scores are not counted: fused attention (SDPA/flash) does not
// store them.
Plan make_plan(const config::Config& config, int world_size);

nlohmann::ordered_json to_json(const Plan& plan);

// A short human-readable table.
std::string describe(const Plan& plan);

}  // namespace cpt::train
