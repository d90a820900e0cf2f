// model.init_from: an HF directory's config.json defines the shape, and
// anything the YAML says about the shape must agree with it.

#include <gtest/gtest.h>

#include "cpt/common/error.h"
#include "cpt/config/config.h"
#include "cpt/model/presets.h"
#include "support/temp_dir.h"

namespace cpt::model {
namespace {

// Llama-2-7b-hf's config.json as released (rope_theta absent).
const char* kLlama2Config = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
  "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
  "num_hidden_layers": 32, "rms_norm_eps": 1e-05, "max_position_embeddings": 4096,
  "vocab_size": 32000, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "initializer_range": 0.02, "tie_word_embeddings": false, "torch_dtype": "float16",
  "rope_scaling": null
})";

config::Loaded load(const std::string& model_yaml) {
  return config::load_text("model:\n" + model_yaml + "data:\n  sources: [{name: a, prefix: p}]\n", "run.yaml");
}

TEST(HfConfig, ReadsLlama2WithDefaultsForAbsentKeys) {
  testing::TempDir dir;
  const Shape shape = read_hf_config(dir.write("config.json", kLlama2Config));
  EXPECT_EQ(shape, find_preset("llama2-7b").shape);
}

TEST(HfConfig, ShapeComesFromInitFromWhenNoPresetIsGiven) {
  testing::TempDir dir;
  dir.write("base/config.json", kLlama2Config);
  const auto loaded = load("  init_from: " + dir.file("base") + "\n");
  EXPECT_EQ(loaded.config.model.shape, find_preset("llama2-7b").shape);
  EXPECT_TRUE(loaded.warnings.empty());
}

TEST(HfConfig, AnAgreeingPresetIsAccepted) {
  testing::TempDir dir;
  dir.write("base/config.json", kLlama2Config);
  EXPECT_NO_THROW(load("  preset: llama2-7b\n  init_from: " + dir.file("base") + "\n"));
}

TEST(HfConfig, ADisagreeingPresetIsAnError) {
  testing::TempDir dir;
  dir.write("base/config.json", kLlama2Config);
  try {
    load("  preset: llama2-13b\n  init_from: " + dir.file("base") + "\n");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "run.yaml:2: model.preset: 'llama2-13b' has hidden_size 5120, but " +
                                         dir.file("base/config.json") +
                                         " says 4096; remove model.preset to take the shape from the checkpoint");
  }
}

TEST(HfConfig, ADisagreeingExplicitSizeIsAnError) {
  testing::TempDir dir;
  dir.write("base/config.json", kLlama2Config);
  try {
    load("  init_from: " + dir.file("base") + "\n  num_hidden_layers: 16\n");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "run.yaml:3: model.num_hidden_layers: 16 disagrees with " +
                                         dir.file("base/config.json") +
                                         ", which says num_hidden_layers 32; remove it or make them agree");
  }
}

TEST(HfConfig, AMissingInitFromIsAWarningWhenAPresetGivesTheShape) {
  testing::TempDir dir;
  const auto loaded = load("  preset: llama2-7b\n  init_from: " + dir.file("not-downloaded") + "\n");
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_EQ(loaded.warnings[0], "model.init_from '" + dir.file("not-downloaded") + "' does not exist yet");
}

TEST(HfConfig, AMissingInitFromWithoutAPresetCannotBePlanned) {
  testing::TempDir dir;
  EXPECT_THROW(load("  init_from: " + dir.file("not-downloaded") + "\n"), InputError);
}

TEST(HfConfig, ADirectoryWithoutConfigJsonIsAnError) {
  testing::TempDir dir;
  dir.write("empty/README", "");
  try {
    load("  init_from: " + dir.file("empty") + "\n");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "run.yaml:2: model.init_from: '" + dir.file("empty") +
                                         "' has no config.json; it must be a Hugging Face model directory or a "
                                         "cpt-train checkpoint");
  }
}

// transformers 5's save_pretrained writes RoPE as rope_parameters.
TEST(HfConfig, ReadsTransformers5RopeParameters) {
  testing::TempDir dir;
  const Shape shape = read_hf_config(dir.write("config.json", R"({"model_type": "llama", "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
      "vocab_size": 100, "head_dim": 8, "dtype": "bfloat16",
      "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}})"));
  EXPECT_EQ(shape.rope_theta, 500000.0);
  EXPECT_EQ(shape.num_key_value_heads, 2);
}

TEST(HfConfig, RejectsWhatTheModelCannotRepresent) {
  testing::TempDir dir;
  const std::string path = dir.file("config.json");
  for (const char* json : {R"({"model_type": "gpt2", "hidden_size": 8})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10, "rope_scaling": {"type": "linear"}})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10, "tie_word_embeddings": true})",
                           R"({"hidden_size": 64})", R"({"hidden_size": "64", "intermediate_size": 1,
                               "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 10})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10,
                               "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0}})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10,
                               "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.5}})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10, "rope_theta": 10000.0,
                               "rope_parameters": {"rope_theta": 500000.0}})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10, "head_dim": 32})",
                           "not json"}) {
    dir.write("config.json", json);
    EXPECT_THROW(read_hf_config(path), InputError) << json;
  }
}

}  // namespace
}  // namespace cpt::model
