#include "cpt/config/config.h"

#include <gtest/gtest.h>

#include "cpt/common/error.h"
#include "cpt/config/serialize.h"
#include "cpt/model/presets.h"
#include "support/temp_dir.h"

namespace cpt::config {
namespace {

const char* kMinimal = R"(data:
  sources:
    - {name: web, prefix: shards/web}
)";

TEST(Config, EveryKeyButTheDataSourcesHasADefault) {
  const Loaded loaded = load_text(kMinimal, "minimal.yaml");
  const Config& c = loaded.config;
  EXPECT_EQ(c.run.name, "cpt-run");
  EXPECT_EQ(c.run.output_dir, "runs/cpt");
  EXPECT_EQ(c.run.seed, 1234);
  EXPECT_EQ(c.model.preset, "tiny");
  EXPECT_EQ(c.model.shape, model::find_preset("tiny").shape);
  EXPECT_EQ(c.tokenizer, "");
  EXPECT_EQ(c.data.seq_len, 4096);
  ASSERT_EQ(c.data.sources.size(), 1u);
  EXPECT_EQ(c.data.sources[0].weight, 1.0);
  EXPECT_TRUE(c.data.eval.empty());
  EXPECT_EQ(c.train.global_batch_size, 256);
  EXPECT_EQ(c.train.micro_batch_size, 1);
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.train.precision, "bf16");
  EXPECT_EQ(c.train.activation_checkpointing, "none");
  EXPECT_FALSE(c.train.document_mask);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 3e-5);
  EXPECT_DOUBLE_EQ(c.optimizer.betas[0], 0.9);
  EXPECT_DOUBLE_EQ(c.optimizer.betas[1], 0.95);
  EXPECT_DOUBLE_EQ(c.optimizer.eps, 1e-8);
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(c.optimizer.grad_clip, 1.0);
  EXPECT_EQ(c.schedule.warmup_steps, 100);
  EXPECT_EQ(c.schedule.decay, "cosine");
  EXPECT_DOUBLE_EQ(c.schedule.min_lr_ratio, 0.1);
  EXPECT_EQ(c.checkpoint.every_steps, 500);
  EXPECT_EQ(c.checkpoint.keep_last, 3);
  EXPECT_EQ(c.checkpoint.max_shard_size.value, 5'000'000'000);
  EXPECT_EQ(c.eval.every_steps, 250);
  EXPECT_EQ(c.distributed.backend, "auto");
  EXPECT_TRUE(c.distributed.zero1);
  EXPECT_EQ(c.distributed.timeout_s, 600);
  EXPECT_EQ(c.backend, "auto");
  EXPECT_EQ(c.logging.every_steps, 10);
}

TEST(Config, ExplicitSizesOverrideThePreset) {
  const Loaded loaded = load_text(R"(model:
  preset: llama2-7b
  num_hidden_layers: 2
  rope_theta: 500000
data:
  sources: [{name: web, prefix: shards/web}]
)",
                                  "sizes.yaml");
  model::Shape expected = model::find_preset("llama2-7b").shape;
  expected.num_hidden_layers = 2;
  expected.rope_theta = 500000;
  EXPECT_EQ(loaded.config.model.shape, expected);
}

TEST(Config, TokenBudgetBecomesSteps) {
  const Loaded loaded = load_text(R"(data:
  seq_len: 1024
  sources: [{name: web, prefix: shards/web}]
train:
  global_batch_size: 8
  tokens: 1e6
)",
                                  "tokens.yaml");
  // ceil(1e6 / (8 * 1024)) = 123
  EXPECT_EQ(loaded.config.train.steps, 123);
}

TEST(Config, StepsThatAgreeWithTheTokenBudgetAreAccepted) {
  EXPECT_NO_THROW(load_text(R"(data:
  seq_len: 1024
  sources: [{name: web, prefix: shards/web}]
train: {global_batch_size: 8, tokens: 1e6, steps: 123}
)",
                            "tokens.yaml"));
}

TEST(Config, ResolvedYamlLoadsBackToTheSameConfig) {
  LoadOptions options;
  options.overrides = {"optimizer.betas=[0.8, 0.99]", "checkpoint.max_shard_size=2GiB", "run.name='with: colon'"};
  const Loaded first = load_file(std::string(CPT_SOURCE_DIR) + "/configs/medical.yaml", options);
  const std::string yaml = to_yaml(first.config);
  const Loaded second = load_text(yaml, "resolved.yaml");
  EXPECT_EQ(to_json(first.config), to_json(second.config));
  EXPECT_EQ(second.config.run.name, "with: colon");
  EXPECT_EQ(second.config.checkpoint.max_shard_size.value, 2LL << 30);
  EXPECT_DOUBLE_EQ(second.config.optimizer.betas[0], 0.8);
}

TEST(Config, WriteResolvedCreatesTheOutputDirectoryAndAReloadableFile) {
  testing::TempDir dir;
  LoadOptions options;
  options.overrides = {"run.output_dir=" + dir.file("run/out")};
  const Loaded loaded = load_text(kMinimal, "minimal.yaml", options);
  const std::string path = write_resolved(loaded.config, "minimal.yaml");
  EXPECT_EQ(path, dir.file("run/out/config.resolved.yaml"));
  const std::string text = testing::read_file(path);
  EXPECT_EQ(text.rfind("# Resolved by cpt-train from minimal.yaml", 0), 0u) << text;
  EXPECT_EQ(to_json(load_file(path).config), to_json(loaded.config));
}

TEST(Config, MissingInputsAreListedNotFatal) {
  testing::TempDir dir;
  dir.write("shards/web.bin", "");
  dir.write("shards/web.idx", "");
  LoadOptions options;
  options.overrides = {"data.sources=[{name: web, prefix: " + dir.file("shards/web") + "}, {name: code, prefix: " +
                           dir.file("shards/code") + "}]",
                       "tokenizer=" + dir.file("tok.model")};
  const Loaded loaded = load_text("{}", "empty.yaml", options);
  const auto missing = missing_inputs(loaded.config);
  ASSERT_EQ(missing.size(), 2u);
  EXPECT_EQ(missing[0], "tokenizer '" + dir.file("tok.model") + "' does not exist yet");
  EXPECT_EQ(missing[1], "data.sources[1].prefix: " + dir.file("shards/code") +
                            ".bin does not exist yet (make it with cpt-train tokenize)");
}

TEST(Config, WorldSizeMustSplitTheGlobalBatch) {
  LoadOptions options;
  options.world_size = 4;
  options.overrides = {"train.global_batch_size=16", "train.micro_batch_size=4"};
  EXPECT_NO_THROW(load_text(kMinimal, "minimal.yaml", options));
  options.world_size = 8;
  EXPECT_THROW(load_text(kMinimal, "minimal.yaml", options), InputError);
}

}  // namespace
}  // namespace cpt::config
