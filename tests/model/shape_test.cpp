#include "cpt/model/shape.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fmt/format.h>

#include "cpt/model/presets.h"
#include "support/python.h"
#include "support/run_command.h"

namespace cpt::model {
namespace {

// Counts published with the models (and in the HF model cards).
TEST(Shape, PresetParameterCountsMatchTheReleasedModels) {
  EXPECT_EQ(parameter_count(find_preset("llama2-7b").shape), 6'738'415'616);
  EXPECT_EQ(parameter_count(find_preset("llama2-13b").shape), 13'015'864'320);
  EXPECT_EQ(parameter_count(find_preset("llama2-70b").shape), 68'976'648'192);
}

// The same count from transformers' own LlamaForCausalLM, including GQA
// shapes the presets above do not all cover.
TEST(Shape, ParameterCountMatchesTransformers) {
  ASSERT_TRUE(testing::python_has("transformers"));
  Shape gqa = find_preset("tiny").shape;
  gqa.num_key_value_heads = 2;
  for (const Shape& shape : {find_preset("tiny").shape, gqa, find_preset("llama2-70b").shape}) {
    const std::string command =
        fmt::format(CPT_PYTHON " {}/tests/model/transformers_param_count.py {} {} {} {} {} {}", CPT_SOURCE_DIR,
                    shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers, shape.num_attention_heads,
                    shape.num_key_value_heads, shape.vocab_size);
    const testing::CommandResult result = testing::run_command(command);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(std::stoll(result.out), parameter_count(shape)) << command;
  }
}

TEST(Shape, TrainingFlopsFollowThePalmFormula) {
  const Shape s = find_preset("llama2-7b").shape;
  // 6 * (N - embedding) + 12 * layers * hidden * seq
  const double expected = 6.0 * (6'738'415'616.0 - 32000.0 * 4096.0) + 12.0 * 32 * 4096 * 4096;
  EXPECT_DOUBLE_EQ(training_flops_per_token(s, 4096), expected);
  EXPECT_NEAR(training_flops_per_token(s, 4096) / 1e9, 46.09, 0.01);
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
