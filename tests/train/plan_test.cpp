#include "cpt/train/plan.h"

#include <gtest/gtest.h>

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
  const Plan p = make_plan(load({"train.global_batch_size=64", "train.activation_checkpointing=true"}, 8), 8);
  EXPECT_LE(p.memory.total(), 52LL << 30) << describe(p);
}

TEST(Plan, ActivationCheckpointingKeepsOnlyBlockInputs) {
  const Plan full = make_plan(load({}), 1);
  const Plan checkpointed = make_plan(load({"train.activation_checkpointing=true"}), 1);
  EXPECT_LT(checkpointed.memory.activations * 5, full.memory.activations);
  // Llama-2-7B, one 4096-token bf16 sequence: 32 blocks x 80,896 values per
  // token x 2 bytes, plus fp32 logits and their gradient.
  const int64_t blocks = 32LL * 4096 * (7 * 4096 + 2 * 4096 + 4 * 11008) * 2;
  const int64_t logits = 2LL * 4096 * 32000 * 4;
  EXPECT_EQ(full.memory.activations, blocks + logits);
}

TEST(Plan, JsonCarriesTheHeadlineNumbers) {
  const auto json = to_json(make_plan(load({"train.global_batch_size=2048"}), 1));
  EXPECT_EQ(json["parameters"], 6'738'415'616);
  EXPECT_EQ(json["tokens_per_step"], 8'388'608);
  EXPECT_TRUE(json["memory_per_rank"].contains("total_bytes"));
}

}  // namespace
}  // namespace cpt::train
