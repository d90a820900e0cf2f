#pragma once
// Llama decoder shape and where its weights come from. Field names are
// Hugging Face's config.json names so users can copy them across.

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cpt::model {

// Llama-3.1's rope_scaling (rope_type "llama3"): long wavelengths are
// divided by `factor`, short ones kept, the band between interpolated.
struct Llama3RopeScaling {
  double factor = 0;  // 0: plain RoPE
  double low_freq_factor = 0;
  double high_freq_factor = 0;
  int64_t original_max_position_embeddings = 0;
  bool operator==(const Llama3RopeScaling&) const = default;
};

// What a model family changes in the Llama decoder, from its config.json.
struct Architecture {
  std::string model_type = "llama";  // llama, mistral or qwen2 (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)
  bool tie_word_embeddings = false;  // lm_head is embed_tokens' matrix (no lm_head.weight of its own)
  bool attention_bias = false;       // q/k/v projections carry biases (Qwen2; Llama's attention_bias)
  int64_t sliding_window = 0;        // attend to the last N positions only (Mistral v0.1); 0: no window
  Llama3RopeScaling rope_scaling;
  // Written back to config.json; the tokenizer's own files say the same.
  int64_t bos_token_id = 1;                 // -1: null
  std::vector<int64_t> eos_token_id = {2};  // empty: null
  bool operator==(const Architecture&) const = default;
};

// config.json's architectures entry for a model_type.
std::string architecture_name(const std::string& model_type);
// "MistralForCausalLM, sliding window 4096": for plans and errors.
std::string describe(const Architecture& arch);

struct Shape {
  int64_t hidden_size = 0;              // d_model
  int64_t intermediate_size = 0;        // SwiGLU inner width
  int64_t num_hidden_layers = 0;        // decoder blocks
  int64_t num_attention_heads = 0;      // query heads
  int64_t num_key_value_heads = 0;      // < num_attention_heads means GQA
  int64_t vocab_size = 0;               // embedding and lm_head rows
  int64_t max_position_embeddings = 0;  // longest sequence RoPE is trained for
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  Architecture arch;  // not a YAML key: a preset or init_from's config.json sets it

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  bool operator==(const Shape& other) const;
};

// config.json of this shape and architecture, as transformers writes it
// for the family; torch_dtype is "float32", "bfloat16", ….
nlohmann::json hf_config_json(const Shape& shape, const std::string& torch_dtype);

// Sizes written explicitly in the YAML; each one replaces the preset's value.
struct ShapeOverrides {
  std::optional<int64_t> hidden_size;
  std::optional<int64_t> intermediate_size;
  std::optional<int64_t> num_hidden_layers;
  std::optional<int64_t> num_attention_heads;
  std::optional<int64_t> num_key_value_heads;
  std::optional<int64_t> vocab_size;
  std::optional<int64_t> max_position_embeddings;
  std::optional<double> rms_norm_eps;
  std::optional<double> rope_theta;

  bool any() const;
  void apply_to(Shape& shape) const;
};

struct Config {
  std::string preset;        // name in the preset table; empty: init_from's config.json, else "tiny"
  std::string init_from;     // HF directory or one of our checkpoints; empty = random init
  ShapeOverrides overrides;  // explicit sizes from the YAML or --set
  Shape shape;               // resolved by resolve_shape()

  // The YAML keys; `shape` is derived, so it is not one of them.
  template <class V>
  void fields(V& v);
};

// Calls f(name, field) for every size, in config.json order. Works on Shape
// and ShapeOverrides alike, so reading, comparing and printing share one list.
template <class S, class F>
void for_each_field(S& shape, F&& f) {
  f("hidden_size", shape.hidden_size);
  f("intermediate_size", shape.intermediate_size);
  f("num_hidden_layers", shape.num_hidden_layers);
  f("num_attention_heads", shape.num_attention_heads);
  f("num_key_value_heads", shape.num_key_value_heads);
  f("vocab_size", shape.vocab_size);
  f("max_position_embeddings", shape.max_position_embeddings);
  f("rms_norm_eps", shape.rms_norm_eps);
  f("rope_theta", shape.rope_theta);
}

template <class V>
void Config::fields(V& v) {
  v("preset", preset);
  v("init_from", init_from);
  for_each_field(overrides, v);
}

// Reads a Hugging Face config.json of LlamaForCausalLM (Llama 2 and 3.x),
// MistralForCausalLM or Qwen2ForCausalLM. Absent optional keys get
// transformers' defaults for that family. What cpt-train does not implement
// (another architecture, a rope_scaling type, Qwen2's use_sliding_window, a
// tied lm_head that is also stored apart) is refused, naming the key and
// value: never approximated. Throws InputError naming the file.
Shape read_hf_config(const std::string& config_json_path);
// The same for a config.json already parsed (a merge's, before it is
// written); `source` names it in errors.
Shape hf_config_shape(const nlohmann::json& config_json, const std::string& source);

// Fills config.shape: preset, then explicit sizes, then checks against
// init_from's config.json, which alone defines the shape when neither is
// given. An init_from that does not exist yet adds a warning instead, so a
// dry run can plan before the weights are downloaded. Throws
// ConfigValueError (key "model.<field>") on disagreement or invalid sizes.
void resolve_shape(Config& config, std::vector<std::string>& warnings);

// Rules every shape must satisfy (heads divide hidden size, GQA grouping, …).
void validate(const Shape& shape);

}  // namespace cpt::model
