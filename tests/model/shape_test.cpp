#include "cpt/model/shape.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cpt/model/presets.h"
#include "support/python.h"
#include "support/temp_dir.h"
#include "support/run_command.h"

namespace cpt::model {
namespace {

// Counts published with the models (and in the HF model cards).
TEST(Shape, PresetParameterCountsMatchTheReleasedModels) {
  EXPECT_EQ(parameter_count(find_preset("llama2-7b").shape), 6'738'415'616);
  EXPECT_EQ(parameter_count(find_preset("llama2-13b").shape), 13'015'864'320);
  EXPECT_EQ(parameter_count(find_preset("llama2-70b").shape), 68'976'648'192);
  EXPECT_EQ(parameter_count(find_preset("mistral-7b").shape), 7'241'732'096);
  EXPECT_EQ(parameter_count(find_preset("llama3.1-8b").shape), 8'030'261'248);
  EXPECT_EQ(parameter_count(find_preset("qwen2.5-7b").shape), 7'615'616'512);  // with its q/k/v biases
}

// The same count from transformers' own model, built from the config.json
// we write for the shape (so that file is checked too): GQA shapes the
// presets do not all cover, each family, and tied embeddings.
TEST(Shape, ParameterCountMatchesTransformers) {
  ASSERT_TRUE(testing::python_has("transformers"));
  Shape gqa = find_preset("tiny").shape;
  gqa.num_key_value_heads = 2;
  Shape tied_qwen = find_preset("tiny").shape;
  tied_qwen.arch.model_type = "qwen2";
  tied_qwen.arch.attention_bias = true;
  tied_qwen.arch.tie_word_embeddings = true;
  Shape tied_llama = find_preset("tiny").shape;
  tied_llama.arch.tie_word_embeddings = true;
  tied_llama.arch.rope_scaling = find_preset("llama3.1-8b").shape.arch.rope_scaling;
  const std::vector<std::pair<Shape, std::string>> cases = {
      {find_preset("tiny").shape, "LlamaForCausalLM"},      {gqa, "LlamaForCausalLM"},
      {find_preset("llama2-70b").shape, "LlamaForCausalLM"}, {find_preset("mistral-7b").shape, "MistralForCausalLM"},
      {find_preset("llama3.1-8b").shape, "LlamaForCausalLM"}, {find_preset("qwen2.5-7b").shape, "Qwen2ForCausalLM"},
      {tied_qwen, "Qwen2ForCausalLM"},                      {tied_llama, "LlamaForCausalLM"}};
  for (const auto& [shape, architecture] : cases) {
    testing::TempDir dir;
    dir.write("config.json", hf_config_json(shape, "bfloat16").dump(2));
    const std::string command =
        fmt::format(CPT_PYTHON " {}/tests/model/transformers_param_count.py {}", CPT_SOURCE_DIR, dir.path());
    const testing::CommandResult result = testing::run_command(command);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(result.out, fmt::format("{} {}\n", parameter_count(shape), architecture)) << describe(shape.arch);
    // And our reader takes back what we wrote.
    EXPECT_TRUE(read_hf_config(dir.file("config.json")) == shape) << describe(shape.arch);
  }
}

TEST(Shape, TrainingFlopsFollowThePalmFormula) {
  const Shape s = find_preset("llama2-7b").shape;
  // 6 * (N - embedding) + 12 * layers * hidden * seq
  const double expected = 6.0 * (6'738'415'616.0 - 32000.0 * 4096.0) + 12.0 * 32 * 4096 * 4096;
  EXPECT_DOUBLE_EQ(training_flops_per_token(s, 4096), expected);
  EXPECT_NEAR(training_flops_per_token(s, 4096) / 1e9, 46.09, 0.01);
}

// A tied lm_head is one matrix fewer to store but the same matmul; a
// sliding window caps the keys each query attends to.
TEST(Shape, TiedHeadsAndSlidingWindowsInTheFlops) {
  const Shape untied = find_preset("llama3.1-8b").shape;
  Shape tied = untied;
  tied.arch.tie_word_embeddings = true;
  EXPECT_EQ(parameter_count(untied) - parameter_count(tied), 128256 * 4096);
  EXPECT_DOUBLE_EQ(training_flops_per_token(tied, 4096), training_flops_per_token(untied, 4096));
  const Shape mistral = find_preset("mistral-7b").shape;
  EXPECT_DOUBLE_EQ(training_flops_per_token(mistral, 8192) - training_flops_per_token(mistral, 4096), 0.0)
      << "past the 4096-token window each query sees 4096 keys";
  EXPECT_DOUBLE_EQ(training_flops_per_token(mistral, 2048),
                   6.0 * (7'241'732'096.0 - 32000.0 * 4096) + 12.0 * 32 * 4096 * 2048);
}

TEST(Shape, GroupedQueryAttentionShrinksKeyAndValueProjections) {
  Shape mha = find_preset("tiny").shape;
  Shape gqa = mha;
  gqa.num_key_value_heads = 2;
  const int64_t saved_per_layer = 2 * mha.hidden_size * (mha.num_key_value_heads - 2) * mha.head_dim();
  EXPECT_EQ(parameter_count(mha) - parameter_count(gqa), mha.num_hidden_layers * saved_per_layer);
}

}  // namespace
}  // namespace cpt::model
