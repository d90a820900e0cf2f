#pragma once
// Llama decoder shape and where its weights come from. Field names are
// Hugging Face's config.json names so users can copy them across.

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cpt::model {

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

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  bool operator==(const Shape& other) const;
};

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

// Reads a Hugging Face LlamaForCausalLM config.json. Absent optional keys get
// transformers' LlamaConfig defaults. Throws InputError naming the file.
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
