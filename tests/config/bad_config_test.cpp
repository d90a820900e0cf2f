// Every kind of bad config, with the exact one-line error it gets.

#include <gtest/gtest.h>

#include "cpt/common/error.h"
#include "cpt/config/config.h"
#include "support/temp_dir.h"

namespace cpt::config {
namespace {

struct BadConfig {
  const char* name;
  std::string yaml;
  std::vector<std::string> overrides;
  int world_size;
  std::string expected;  // {file} stands for the config's path
};

const char* kSources = "data:\n  sources:\n    - {name: a, prefix: p}\n";

std::string with_sources(const std::string& rest) { return std::string(kSources) + rest; }

const std::vector<BadConfig>& cases() {
  static const std::vector<BadConfig> table = {
      {"misspelt_key", "data:\n  sources:\n    - {name: a, prefix: p}\noptimizer:\n  lrr: 0.1\n", {}, 1,
       "{file}:5: unknown key 'optimizer.lrr'; did you mean 'lr'? Valid keys under 'optimizer': lr, betas, eps, "
       "weight_decay, grad_clip"},
      {"misspelt_section", "data:\n  sources:\n    - {name: a, prefix: p}\noptimiser:\n  lr: 0.1\n", {}, 1,
       "{file}:4: unknown key 'optimiser'; did you mean 'optimizer'? Valid keys at the top level: run, model, "
       "tokenizer, data, train, optimizer, schedule, checkpoint, eval, distributed, backend, logging"},
      {"unknown_key_without_suggestion", "data:\n  sources:\n    - {name: a, prefix: p}\ntrain:\n  momentum: 0.9\n",
       {}, 1,
       "{file}:5: unknown key 'train.momentum' Valid keys under 'train': global_batch_size, micro_batch_size, steps, "
       "tokens, precision, activation_checkpointing, max_nonfinite_steps, document_mask"},
      {"unknown_key_in_a_source", "data:\n  sources:\n    - {name: a, prefix: p, wieght: 2}\n", {}, 1,
       "{file}:3: unknown key 'data.sources[0].wieght'; did you mean 'weight'? Valid keys under 'data.sources[0]': "
       "name, prefix, weight"},
      {"negative_lr", "data:\n  sources:\n    - {name: a, prefix: p}\noptimizer:\n  lr: -0.001\n", {}, 1,
       "{file}:5: optimizer.lr: -0.001 is invalid; the learning rate must be > 0"},
      {"zero_weight", "data:\n  sources:\n    - {name: a, prefix: p}\n    - {name: b, prefix: q, weight: 0}\n", {}, 1,
       "{file}:4: data.sources[1].weight: 0 is invalid; a weight must be > 0 (remove the source to stop using it)"},
      {"negative_weight", "data:\n  sources:\n    - {name: a, prefix: p, weight: -0.5}\n", {}, 1,
       "{file}:3: data.sources[0].weight: -0.5 is invalid; a weight must be > 0 (remove the source to stop using "
       "it)"},
      {"micro_batch_not_dividing", "data:\n  sources:\n    - {name: a, prefix: p}\ntrain:\n  global_batch_size: 10\n"
       "  micro_batch_size: 4\n", {}, 1,
       "{file}:6: train.micro_batch_size: 4 x 1 rank(s) = 4 sequences per micro-step does not divide "
       "train.global_batch_size 10; the global batch must be a whole number of micro-batches on every rank"},
      {"micro_batch_not_dividing_per_rank", "data:\n  sources:\n    - {name: a, prefix: p}\ntrain:\n"
       "  global_batch_size: 16\n  micro_batch_size: 4\n", {}, 3,
       "{file}:6: train.micro_batch_size: 4 x 3 rank(s) = 12 sequences per micro-step does not divide "
       "train.global_batch_size 16; the global batch must be a whole number of micro-batches on every rank"},
      {"seq_len_beyond_positions", "model:\n  preset: llama2-7b\ndata:\n  seq_len: 8192\n  sources:\n"
       "    - {name: a, prefix: p}\n", {}, 1,
       "{file}:4: data.seq_len: 8192 exceeds the model's max_position_embeddings 4096; use a seq_len <= 4096"},
      {"missing_sources", "run:\n  name: x\n", {}, 1,
       "{file}: data.sources: is missing; list at least one {name, prefix, weight} training source"},
      {"empty_sources", "data:\n  seq_len: 128\n  sources: []\n", {}, 1,
       "{file}:3: data.sources: is missing; list at least one {name, prefix, weight} training source"},
      {"source_without_prefix", "data:\n  sources:\n    - {name: a}\n", {}, 1,
       "{file}:3: data.sources[0].prefix: is missing; give the shard path without .bin/.idx"},
      {"duplicate_source_names", "data:\n  sources:\n    - {name: a, prefix: p}\n    - {name: a, prefix: q}\n", {}, 1,
       "{file}:4: data.sources[1].name: 'a' is used by two sources; names must be unique"},
      {"sources_not_a_list", "data:\n  sources: medical\n", {}, 1,
       "{file}:2: data.sources: expected a list of mappings"},
      {"steps_not_a_number", with_sources("train:\n  steps: many\n"), {}, 1,
       "{file}:5: train.steps: expected a whole number, got 'many'"},
      {"steps_fractional", with_sources("train:\n  steps: 10.5\n"), {}, 1,
       "{file}:5: train.steps: expected a whole number, got '10.5'"},
      {"bool_not_a_bool", with_sources("train:\n  document_mask: maybe\n"), {}, 1,
       "{file}:5: train.document_mask: expected true or false, got 'maybe'"},
      {"unknown_recompute", with_sources("train:\n  activation_checkpointing: some\n"), {}, 1,
       "{file}:5: train.activation_checkpointing: 'some' is not valid; use one of: none, full, selective"},
      {"recompute_as_a_bool", with_sources("train:\n  activation_checkpointing: true\n"), {}, 1,
       "{file}:5: train.activation_checkpointing: 'true' is no longer valid; use full (or selective)"},
      {"section_not_a_mapping", with_sources("optimizer: 0.1\n"), {}, 1,
       "{file}:4: optimizer: expected a mapping of keys, got '0.1'"},
      {"betas_wrong_length", with_sources("optimizer:\n  betas: [0.9]\n"), {}, 1,
       "{file}:5: optimizer.betas: expected a list of two numbers such as [0.9, 0.95], got a list"},
      {"beta_out_of_range", with_sources("optimizer:\n  betas: [0.9, 1.0]\n"), {}, 1,
       "{file}:5: optimizer.betas[1]: 1 is invalid; it must be in [0, 1)"},
      {"unknown_preset", with_sources("model:\n  preset: llama2-7\n"), {}, 1,
       "{file}:5: model.preset: 'llama2-7' is not a model preset; valid presets: tiny, llama2-7b, llama2-13b, "
       "llama2-70b, mistral-7b, llama3.1-8b, qwen2.5-7b (did you mean 'llama2-7b'?)"},
      {"heads_not_dividing_hidden", with_sources("model:\n  preset: tiny\n  num_attention_heads: 3\n"), {}, 1,
       "{file}:6: model.num_attention_heads: 3 does not divide hidden_size 256; heads must split the hidden size "
       "evenly"},
      {"kv_heads_not_grouping", with_sources("model:\n  num_key_value_heads: 3\n"), {}, 1,
       "{file}:5: model.num_key_value_heads: 3 does not divide num_attention_heads 8; each KV head must serve a "
       "whole group of query heads"},
      {"unknown_decay", with_sources("schedule:\n  decay: exponential\n"), {}, 1,
       "{file}:5: schedule.decay: 'exponential' is not valid; use one of: cosine, linear, constant, wsd"},
      {"unknown_precision", with_sources("train:\n  precision: fp16\n"), {}, 1,
       "{file}:5: train.precision: 'fp16' is not valid; use one of: fp32, bf16"},
      {"warmup_longer_than_training", with_sources("train:\n  steps: 50\n"), {}, 1,
       "{file}: schedule.warmup_steps: 100 is more than train.steps 50; warmup must end before training does"},
      {"shard_size_not_a_size", with_sources("checkpoint:\n  max_shard_size: 5 bananas\n"), {}, 1,
       "{file}:5: checkpoint.max_shard_size: expected a byte size such as 5GB, 500MB, 2GiB or 1000000, got '5 "
       "bananas'"},
      {"unknown_checkpoint_dtype", with_sources("checkpoint:\n  dtype: fp16\n"), {}, 1,
       "{file}:5: checkpoint.dtype: 'fp16' is not valid; use one of: fp32, bf16"},
      {"unknown_backend", with_sources("backend: tpu\n"), {}, 1,
       "{file}:4: backend: 'tpu' is not a backend; valid: auto, cpu, cuda, neuron"},
      {"unknown_process_group", with_sources("distributed:\n  backend: mpi\n"), {}, 1,
       "{file}:5: distributed.backend: 'mpi' is not a process-group backend; valid: auto, gloo, nccl"},
      {"port_out_of_range", with_sources("distributed:\n  master_port: 70000\n"), {}, 1,
       "{file}:5: distributed.master_port: 70000 is not a port; use 1..65535, or 0 to take MASTER_PORT or derive it"},
      {"empty_bucket", with_sources("distributed:\n  bucket_mb: 0\n"), {}, 1,
       "{file}:5: distributed.bucket_mb: 0 is invalid; use a size in (0, 4096] MB"},
      {"duplicate_key", with_sources("train:\n  steps: 10\n  steps: 20\n"), {}, 1,
       "{file}:6: train.steps: duplicate key (first set on line 5)"},
      {"yaml_syntax_error", "data: [unclosed\n", {}, 1, "{file}:2:1: YAML syntax error: end of sequence flow not found"},
      {"top_level_not_a_mapping", "- a\n- b\n", {}, 1,
       "{file}: the top level must be a mapping of sections (run, model, data, …)"},
      {"set_unknown_key", kSources, {"optimizer.lrr=1"}, 1,
       "--set optimizer.lrr=1: unknown key 'optimizer.lrr'; did you mean 'lr'? Valid keys under 'optimizer': lr, "
       "betas, eps, weight_decay, grad_clip"},
      {"set_invalid_value", kSources, {"optimizer.lr=-1"}, 1,
       "--set optimizer.lr=-1: optimizer.lr: -1 is invalid; the learning rate must be > 0"},
      {"set_wrong_type", kSources, {"train.steps=[1,2]"}, 1,
       "--set train.steps=[1,2]: train.steps: expected a whole number, got a list"},
      {"set_without_equals", kSources, {"optimizer.lr"}, 1,
       "--set optimizer.lr: expected KEY=VALUE, e.g. --set optimizer.lr=3e-5"},
      {"set_index_out_of_range", kSources, {"data.sources.3.weight=2"}, 1,
       "--set data.sources.3.weight=2: 'data.sources' is a list of 1 entries; '3' is not an index into it"},
      {"set_into_a_scalar", kSources, {"data.sources.0.name.first=x"}, 1,
       "--set data.sources.0.name.first=x: 'data.sources[0].name' is a single value, so it has no key 'first'"},
      {"set_reshapes_a_scalar_into_a_mapping", kSources, {"backend.name=cpu"}, 1,
       "--set backend.name=cpu: backend: expected a string, got a mapping"},
  };
  return table;
}

void PrintTo(const BadConfig& c, std::ostream* out) { *out << c.name; }

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, FailsWithOneLineNamingKeyFileAndLine) {
  const BadConfig& c = GetParam();
  testing::TempDir dir;
  const std::string path = dir.write("bad.yaml", c.yaml);
  LoadOptions options;
  options.overrides = c.overrides;
  options.world_size = c.world_size;
  std::string expected = c.expected;
  if (auto at = expected.find("{file}"); at != std::string::npos) expected.replace(at, 6, path);
  try {
    load_file(path, options);
    FAIL() << "expected an error: " << expected;
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), expected);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line only";
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadConfigTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BadConfig, StepsAndTokensDisagree) {
  const char* yaml = "data:\n  seq_len: 1024\n  sources: [{name: a, prefix: p}]\ntrain:\n  global_batch_size: 8\n"
                     "  steps: 100\n  tokens: 1e6\n";
  try {
    load_text(yaml, "t.yaml");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "t.yaml:6: train.steps: 100 disagrees with train.tokens 1000000, which takes 123 steps of 8192 "
                 "tokens; set only one of them");
  }
}

TEST(BadConfig, UnreadableFileIsNamed) {
  try {
    load_file("/nonexistent/run.yaml");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "cannot read config file '/nonexistent/run.yaml': No such file or directory");
  }
}

}  // namespace
}  // namespace cpt::config
