// The configs in configs/ load, and plan what their comments promise.

#include <gtest/gtest.h>

#include "cpt/config/config.h"
#include "cpt/model/presets.h"
#include "cpt/model/shape.h"
#include "cpt/train/plan.h"

namespace cpt::config {
namespace {

Loaded load_shipped(const std::string& name) { return load_file(std::string(CPT_SOURCE_DIR) + "/configs/" + name); }

TEST(ShippedConfigs, MedicalIsTheSevenBillionParameterRecipe) {
  const Loaded loaded = load_shipped("medical.yaml");
  const Config& c = loaded.config;
  const train::Plan plan = train::make_plan(c, 1);
  EXPECT_EQ(plan.parameters, 6'738'415'616);
  EXPECT_EQ(plan.tokens_per_step, 8'388'608);
  EXPECT_EQ(plan.steps, 3500);
  EXPECT_EQ(plan.total_tokens, 29'360'128'000);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1.5e-5);
  EXPECT_EQ(c.data.seq_len, 4096);
  EXPECT_EQ(c.train.precision, "bf16");
  ASSERT_EQ(c.data.sources.size(), 2u);
  EXPECT_EQ(c.data.sources[1].name, "general");
  EXPECT_EQ(c.model.init_from, "/models/Llama-2-7b-hf");
  // The base model is not on this machine: planning still works, with a warning.
  ASSERT_FALSE(loaded.warnings.empty());
  EXPECT_EQ(loaded.warnings[0], "model.init_from '/models/Llama-2-7b-hf' does not exist yet");
}

TEST(ShippedConfigs, PatentTurnsItsTokenBudgetIntoSteps) {
  const Config c = load_shipped("patent.yaml").config;
  EXPECT_EQ(c.train.steps, 2814);  // ceil(11.8e9 / (1024 * 4096))
  EXPECT_EQ(c.schedule.decay, "wsd");
  EXPECT_EQ(model::parameter_count(c.model.shape), 6'738'415'616);
}

TEST(ShippedConfigs, MistralMedicalIsMistralSevenBWithItsWindow) {
  const Config c = load_shipped("mistral-medical.yaml").config;
  const train::Plan plan = train::make_plan(c, 8);
  EXPECT_EQ(plan.architecture, "MistralForCausalLM, sliding window 4096");
  EXPECT_EQ(plan.parameters, 7'241'732'096);
  EXPECT_EQ(plan.tokens_per_step, 4'194'304);
  EXPECT_EQ(plan.total_tokens, 20'971'520'000);
  // 6 per non-embedding parameter (GQA's 4x smaller K/V projections
  // included) plus 12·L·d·s, the window being no shorter than the row.
  EXPECT_DOUBLE_EQ(plan.flops_per_token, 6.0 * (7'241'732'096.0 - 32000.0 * 4096) + 12.0 * 32 * 4096 * 4096);
  EXPECT_EQ(c.data.seq_len, c.model.shape.arch.sliding_window);
}

TEST(ShippedConfigs, Llama3PatentIsLlama31EightBAtItsContext) {
  const Config c = load_shipped("llama3-patent.yaml").config;
  const train::Plan plan = train::make_plan(c, 8);
  EXPECT_EQ(plan.architecture, "LlamaForCausalLM, llama3 RoPE scaling (factor 8, low 1, high 4, original context 8192)");
  EXPECT_EQ(plan.parameters, 8'030'261'248);
  EXPECT_EQ(plan.tokens_per_step, 4'194'304);
  EXPECT_EQ(c.train.steps, 2814);
  EXPECT_EQ(c.data.seq_len, 8192);
  EXPECT_EQ(c.tokenizer, "/models/Meta-Llama-3.1-8B");
}

TEST(ShippedConfigs, TinyIsAFewMillionParameters) {
  const Config c = load_shipped("tiny.yaml").config;
  const int64_t parameters = model::parameter_count(c.model.shape);
  EXPECT_GT(parameters, 2'000'000);
  EXPECT_LT(parameters, 10'000'000);
  EXPECT_EQ(c.train.precision, "bf16") << "bf16 is the fast path on CPUs that have it, and falls back to fp32";
  EXPECT_EQ(c.data.eval.size(), 2u);
}

}  // namespace
}  // namespace cpt::config
