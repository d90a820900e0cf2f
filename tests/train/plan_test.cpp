#include "cpt/train/plan.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "cpt/config/config.h"

namespace cpt::train {
namespace {

config::Config load(std::vector<std::string> overrides, int world_size = 1) {
  config::LoadOptions options;
  options.overrides = std::move(overrides);
  options.world_size = world_size;
  return config::load_text("model: {preset: llama2-7b}\ndata:\n  sources: [{name: a, prefix: p}]\n", "plan.yaml",
                           options)
      .config;
}

TEST(Plan, CountsTokensAndAccumulation) {
  const Plan p = make_plan(load({"train.global_batch_size=2048", "train.micro_batch_size=2", "train.steps=10", "schedule.warmup_steps=0"}, 8), 8);
  EXPECT_EQ(p.tokens_per_step, 2048 * 4096);
  EXPECT_EQ(p.total_tokens, 10LL * 2048 * 4096);
  EXPECT_EQ(p.micro_batches_per_rank, 2048 / (2 * 8));
  EXPECT_EQ(p.world_size, 8);
}

// bf16 (the default): bf16 parameters and gradients on every rank; the
// fp32 master weights, main gradients and moments (16 bytes a parameter)
// sharded by ZeRO-1.
TEST(Plan, ZeroOneShardsTheMasterStateInBf16) {
  const config::Config c = load({"train.global_batch_size=64"}, 8);
  const Plan p = make_plan(c, 8);
  const int64_t owned = (p.parameters + 7) / 8;
  EXPECT_TRUE(p.bf16);
  EXPECT_EQ(p.memory_without_zero1.optimizer, 8 * p.parameters);
  EXPECT_EQ(p.memory_with_zero1.optimizer, 8 * owned);
  EXPECT_EQ(p.memory_without_zero1.weights, 6 * p.parameters);
  EXPECT_EQ(p.memory_with_zero1.weights, 2 * p.parameters + 4 * owned);
  EXPECT_EQ(p.memory_with_zero1.gradients, 2 * p.parameters + 4 * owned + 8 * 25 * 1024 * 1024);
  EXPECT_EQ(p.memory.total(), p.memory_with_zero1.total());  // zero1 defaults on
  const Plan replicated = make_plan(load({"train.global_batch_size=64", "distributed.zero1=false"}, 8), 8);
  EXPECT_EQ(replicated.memory.total(), replicated.memory_without_zero1.total());
}

// One process on the CPU in bf16 keeps no fp32 main gradients (its
// optimizer reads the bf16 ones); "auto" may be a GPU and is planned with them.
TEST(Plan, Bf16OnOneCpuProcessHasNoMainGradients) {
  const Plan cpu = make_plan(load({"train.global_batch_size=64", "backend=cpu"}, 1), 1);
  EXPECT_EQ(cpu.memory.gradients, 2 * cpu.parameters);
  EXPECT_EQ(cpu.memory.weights, 6 * cpu.parameters) << "the fp32 master stays";
  const Plan maybe_gpu = make_plan(load({"train.global_batch_size=64"}, 1), 1);
  EXPECT_EQ(maybe_gpu.memory.gradients, 6 * maybe_gpu.parameters);
  const Plan two_cpu_ranks =
      make_plan(load({"train.global_batch_size=64", "backend=cpu", "distributed.zero1=false"}, 2), 2);
  EXPECT_EQ(two_cpu_ranks.memory.gradients, 6 * two_cpu_ranks.parameters) << "ranks reduce into fp32";
}

TEST(Plan, ZeroOneInFp32ShardsTheMoments) {
  const Plan p = make_plan(load({"train.global_batch_size=64", "train.precision=fp32"}, 8), 8);
  const int64_t owned = (p.parameters + 7) / 8;
  EXPECT_EQ(p.memory_with_zero1.weights, 4 * p.parameters);
  EXPECT_EQ(p.memory_with_zero1.gradients, 4 * p.parameters + 4 * owned) << "plus the reduce-scatter's output";
  EXPECT_EQ(p.memory_with_zero1.optimizer, 8 * owned);
}

// The bound: Llama-2-7B at seq 4096 on 8 ranks with full recompute
// (configs/medical.yaml's recipe) plans at most 52 GiB per rank.
TEST(Plan, Llama2On8RanksWithRecomputeFitsIn52GiB) {
  const Plan p = make_plan(load({"train.global_batch_size=64", "train.activation_checkpointing=full"}, 8), 8);
  EXPECT_LE(p.memory.total(), 52LL << 30) << describe(p);
}

// Llama-2-7B, one 4096-token bf16 sequence, per mode: what each block
// keeps per token (none 7d + 2kv + 4f, selective 4d + 2kv + 2f, full the
// block input d) times 2 bytes, and the logits' gradient in bf16, all the
// fused head and loss keep of the logits (with full recompute it is gone
// before the first block is rerun).
TEST(Plan, ActivationsByRecomputeMode) {
  const int64_t tokens = 4096, none_block = tokens * (7 * 4096 + 2 * 4096 + 4 * 11008) * 2;
  const int64_t logits = tokens * 32000 * 2;
  const Plan none = make_plan(load({}), 1);
  const Plan selective = make_plan(load({"train.activation_checkpointing=selective"}), 1);
  const Plan full = make_plan(load({"train.activation_checkpointing=full"}), 1);
  EXPECT_EQ(none.memory.activations, 32 * none_block + logits);
  EXPECT_EQ(selective.memory.activations, 32 * tokens * (4 * 4096 + 2 * 4096 + 2 * 11008) * 2 + logits);
  EXPECT_EQ(full.memory.activations, 32 * tokens * 4096 * 2 + std::max(none_block, logits));
  EXPECT_LT(full.memory.activations * 5, none.memory.activations);
  // Every plan carries all three, whichever is configured.
  for (const Plan* p : {&none, &selective, &full}) {
    ASSERT_EQ(p->by_recompute[0].mode, "none");
    EXPECT_EQ(p->by_recompute[0].activations, none.memory.activations);
    ASSERT_EQ(p->by_recompute[1].mode, "full");
    EXPECT_EQ(p->by_recompute[1].activations, full.memory.activations);
    EXPECT_EQ(p->by_recompute[2].activations, selective.memory.activations);
  }
  EXPECT_EQ(full.recompute, "full");
}

// Recomputation's extra forward FLOPs, outside the model FLOPs MFU counts:
// selective repeats attention's scores and weighted values (4·L·d·s a
// token), full the whole forward of every block (2 per block parameter
// plus the same attention). At seq 4096 on 7B: ~+4% against ~+33%.
TEST(Plan, RecomputeFlopsByMode) {
  const Plan p = make_plan(load({}), 1);
  const double attention = 4.0 * 32 * 4096 * 4096;
  const double block_parameters = 32.0 * (4 * 4096.0 * 4096 + 3 * 4096.0 * 11008 + 2 * 4096);
  EXPECT_EQ(p.by_recompute[0].recompute_flops_per_token, 0.0);
  EXPECT_DOUBLE_EQ(p.by_recompute[2].recompute_flops_per_token, attention);  // selective
  EXPECT_DOUBLE_EQ(p.by_recompute[1].recompute_flops_per_token, 2 * block_parameters + attention);  // full
  EXPECT_NEAR(p.by_recompute[2].recompute_flops_per_token / p.flops_per_token, 0.045, 0.01);
  EXPECT_NEAR(p.by_recompute[1].recompute_flops_per_token / p.flops_per_token, 0.33, 0.02);
  EXPECT_NE(describe(p).find("selective"), std::string::npos) << describe(p);
}

TEST(Plan, JsonCarriesTheHeadlineNumbers) {
  const auto json = to_json(make_plan(load({"train.global_batch_size=2048"}), 1));
  EXPECT_EQ(json["parameters"], 6'738'415'616);
  EXPECT_EQ(json["tokens_per_step"], 8'388'608);
  EXPECT_TRUE(json["memory_per_rank"].contains("total_bytes"));
}

}  // namespace
}  // namespace cpt::train
