// model.init_from: an HF directory's config.json defines the shape, and
// anything the YAML says about the shape must agree with it.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

// The config.json files the models were released with read back as the
// presets: the presets carry the released numbers.
TEST(HfConfig, ReadsEachFamilysReleasedConfigAsItsPreset) {
  testing::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> released = {
      {"llama3.1-8b", R"({"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
        "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
        "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})"},
      {"mistral-7b", R"({"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
        "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0",
        "use_cache": true, "vocab_size": 32000})"},
      {"qwen2.5-7b", R"({"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
        "intermediate_size": 18944, "max_position_embeddings": 131072, "max_window_layers": 28, "model_type": "qwen2",
        "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1", "use_cache": true, "use_mrope": false, "use_sliding_window": false,
        "vocab_size": 152064})"}};
  for (const auto& [preset, json] : released) {
    const Shape shape = read_hf_config(dir.write("config.json", json));
    EXPECT_TRUE(shape == find_preset(preset).shape) << preset << ": " << describe(shape.arch);
  }
  const Shape llama31 = find_preset("llama3.1-8b").shape;
  EXPECT_EQ(llama31.arch.rope_scaling.factor, 8.0);
  EXPECT_EQ(describe(find_preset("mistral-7b").shape.arch), "MistralForCausalLM, sliding window 4096");
  EXPECT_EQ(describe(find_preset("qwen2.5-7b").shape.arch), "Qwen2ForCausalLM, q/k/v biases");
  // Mistral-7B-v0.3 has no window; Qwen2.5's small models tie their embeddings.
  EXPECT_EQ(read_hf_config(dir.write("config.json", R"({"model_type": "mistral", "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
      "vocab_size": 100, "sliding_window": null})")).arch.sliding_window, 0);
  EXPECT_TRUE(read_hf_config(dir.write("config.json", R"({"model_type": "qwen2", "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
      "vocab_size": 100, "tie_word_embeddings": true, "eos_token_id": [7, 8]})")).arch.tie_word_embeddings);
}

// A preset of another family than init_from's is refused, naming both.
TEST(HfConfig, APresetOfAnotherArchitectureIsAnError) {
  testing::TempDir dir;
  Shape mistral = find_preset("mistral-7b").shape;
  dir.write("base/config.json", hf_config_json(mistral, "bfloat16").dump());
  Config config;
  config.preset = "llama2-7b";
  config.overrides.num_key_value_heads = 8;
  config.overrides.intermediate_size = 14336;
  config.overrides.max_position_embeddings = 32768;
  config.init_from = dir.file("base");
  std::vector<std::string> warnings;
  try {
    resolve_shape(config, warnings);
    FAIL() << "a Llama preset over a Mistral checkpoint was accepted";
  } catch (const ConfigValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'llama2-7b' is LlamaForCausalLM, but " + dir.file("base/config.json") +
                                         " says MistralForCausalLM, sliding window 4096"),
              std::string::npos)
        << e.what();
  }
}

TEST(HfConfig, RejectsWhatTheModelCannotRepresent) {
  testing::TempDir dir;
  const std::string path = dir.file("config.json");
  for (const char* json : {R"({"model_type": "gpt2", "hidden_size": 8})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10, "rope_scaling": {"type": "linear"}})",
                           R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10, "tie_word_embeddings": "yes"})",
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
  // What another family or option would need, named in the error.
  const std::string sizes = R"("hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "vocab_size": 10)";
  for (const auto& [json, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"model_type": "gemma2", )" + sizes + "}", "model_type \"gemma2\"; cpt-train trains the model types llama, mistral, qwen2"},
           {R"({"model_type": "mistral", "architectures": ["LlamaForCausalLM"], )" + sizes + "}",
            "architectures [\"LlamaForCausalLM\"]; model_type \"mistral\" is trained as [\"MistralForCausalLM\"]"},
           {R"({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}, )" + sizes + "}",
            "rope_scaling.rope_type \"yarn\"; cpt-train implements plain RoPE (\"default\") and Llama-3.1's \"llama3\""},
           {R"({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}, )" + sizes + "}",
            "rope_scaling of type llama3 needs a number \"low_freq_factor\""},
           {R"({"model_type": "qwen2", "use_sliding_window": true, )" + sizes + "}", "sets use_sliding_window true"},
           {R"({"attention_bias": true, )" + sizes + "}", "sets attention_bias true, which cpt-train does not implement"},
           {R"({"model_type": "mistral", "sliding_window": 0, )" + sizes + "}",
            "\"sliding_window\" is 0, expected a positive integer or null"}}) {
    dir.write("config.json", json);
    try {
      read_hf_config(path);
      ADD_FAILURE() << "accepted: " << json;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace cpt::model
