#include "cpt/model/config.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cpt/common/error.h"
#include "cpt/io/model_dir.h"
#include "cpt/common/strings.h"
#include "cpt/model/presets.h"

namespace fs = std::filesystem;

namespace cpt::model {

namespace {

std::string show(int64_t v) { return std::to_string(v); }
std::string show(double v) { return fmt::format("{}", v); }

// transformers' LlamaConfig defaults for keys a config.json may omit.
void apply_hf_defaults(Shape& s) {
  s.num_key_value_heads = s.num_attention_heads;
  s.max_position_embeddings = 2048;
  s.rms_norm_eps = 1e-6;
  s.rope_theta = 10000.0;
}

}  // namespace

bool Shape::operator==(const Shape& o) const {
  return hidden_size == o.hidden_size && intermediate_size == o.intermediate_size &&
         num_hidden_layers == o.num_hidden_layers && num_attention_heads == o.num_attention_heads &&
         num_key_value_heads == o.num_key_value_heads && vocab_size == o.vocab_size &&
         max_position_embeddings == o.max_position_embeddings && rms_norm_eps == o.rms_norm_eps &&
         rope_theta == o.rope_theta;
}

bool ShapeOverrides::any() const {
  bool found = false;
  for_each_field(*this, [&](const char*, const auto& v) { found = found || v.has_value(); });
  return found;
}

void ShapeOverrides::apply_to(Shape& s) const {
  auto set = [](auto& field, const auto& value) {
    if (value) field = *value;
  };
  set(s.hidden_size, hidden_size);
  set(s.intermediate_size, intermediate_size);
  set(s.num_hidden_layers, num_hidden_layers);
  set(s.num_attention_heads, num_attention_heads);
  set(s.num_key_value_heads, num_key_value_heads);
  set(s.vocab_size, vocab_size);
  set(s.max_position_embeddings, max_position_embeddings);
  set(s.rms_norm_eps, rms_norm_eps);
  set(s.rope_theta, rope_theta);
}

Shape read_hf_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("'{}' is not valid JSON: {}", path, e.what()));
  }
  return hf_config_shape(json, path);
}

Shape hf_config_shape(const nlohmann::json& parsed, const std::string& path) {
  nlohmann::json json = parsed;  // rope_parameters' theta is folded in below
  if (!json.is_object()) throw InputError(fmt::format("'{}' must hold a JSON object", path));
  if (json.contains("model_type") && json["model_type"] != "llama") {
    throw InputError(fmt::format("'{}' has model_type {}; cpt-train trains Llama models (model_type \"llama\")",
                                 path, json["model_type"].dump()));
  }
  if (json.contains("rope_scaling") && !json["rope_scaling"].is_null()) {
    throw InputError(fmt::format("'{}' sets rope_scaling {}; scaled RoPE is not supported, only plain RoPE", path,
                                 json["rope_scaling"].dump()));
  }
  // transformers 5 writes RoPE as rope_parameters {rope_theta, rope_type}
  // (4.x wrote a top-level rope_theta, which 5 still reads).
  if (json.contains("rope_parameters") && !json["rope_parameters"].is_null()) {
    const auto& rope = json["rope_parameters"];
    if (!rope.is_object()) {
      throw InputError(fmt::format("'{}': rope_parameters is {}, expected an object", path, rope.dump()));
    }
    for (const auto& [key, value] : rope.items()) {
      if (key == "rope_type") {
        if (value != "default") {
          throw InputError(fmt::format("'{}' sets rope_parameters.rope_type {}; scaled RoPE is not supported, only "
                                       "plain RoPE (\"default\")",
                                       path, value.dump()));
        }
      } else if (key == "rope_theta") {
        if (!value.is_number()) {
          throw InputError(fmt::format("'{}': rope_parameters.rope_theta is {}, expected a number", path, value.dump()));
        }
        if (json.contains("rope_theta") && !json["rope_theta"].is_null() && json["rope_theta"] != value) {
          throw InputError(fmt::format("'{}': rope_theta {} and rope_parameters.rope_theta {} disagree", path,
                                       json["rope_theta"].dump(), value.dump()));
        }
      } else {
        throw InputError(fmt::format("'{}' sets rope_parameters.{} {}; only rope_theta and rope_type \"default\" "
                                     "(plain RoPE) are supported",
                                     path, key, value.dump()));
      }
    }
    if (rope.contains("rope_theta")) json["rope_theta"] = rope["rope_theta"];
  }
  if (json.contains("head_dim") && !json["head_dim"].is_null() && json["hidden_size"].is_number_integer() &&
      json["num_attention_heads"].is_number_integer() && json["num_attention_heads"].get<int64_t>() > 0 &&
      json["head_dim"] != json["hidden_size"].get<int64_t>() / json["num_attention_heads"].get<int64_t>()) {
    throw InputError(fmt::format("'{}' sets head_dim {}; cpt-train's Llama has head_dim = hidden_size / "
                                 "num_attention_heads = {}",
                                 path, json["head_dim"].dump(),
                                 json["hidden_size"].get<int64_t>() / json["num_attention_heads"].get<int64_t>()));
  }
  if (json.contains("tie_word_embeddings") && !json["tie_word_embeddings"].is_null() &&
      !json["tie_word_embeddings"].is_boolean()) {
    throw InputError(fmt::format("'{}': \"tie_word_embeddings\" is {}, expected true or false", path,
                                 json["tie_word_embeddings"].dump()));
  }
  if (json.value("tie_word_embeddings", false)) {
    throw InputError(fmt::format("'{}' sets tie_word_embeddings true; Llama-2 checkpoints have an untied lm_head", path));
  }
  Shape shape;
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"}) {
    if (!json.contains(key)) throw InputError(fmt::format("'{}' has no \"{}\"; is it a Llama config.json?", path, key));
  }
  for (const char* key : {"hidden_size", "num_attention_heads"}) {
    if (!json[key].is_number_integer()) throw InputError(fmt::format("'{}': \"{}\" must be an integer", path, key));
  }
  shape.num_attention_heads = json["num_attention_heads"].get<int64_t>();
  apply_hf_defaults(shape);
  for_each_field(shape, [&](const char* key, auto& field) {
    if (!json.contains(key) || json[key].is_null()) return;
    using T = std::decay_t<decltype(field)>;
    const auto& value = json[key];
    bool ok = std::is_integral_v<T> ? value.is_number_integer() : value.is_number();
    if (!ok) throw InputError(fmt::format("'{}': \"{}\" is {}, expected a number", path, key, value.dump()));
    field = value.get<T>();
  });
  return shape;
}

void validate(const Shape& s) {
  auto positive = [](const char* key, int64_t v) {
    if (v <= 0) throw ConfigValueError(std::string("model.") + key, fmt::format("{} is invalid; it must be > 0", v));
  };
  positive("hidden_size", s.hidden_size);
  positive("intermediate_size", s.intermediate_size);
  positive("num_hidden_layers", s.num_hidden_layers);
  positive("num_attention_heads", s.num_attention_heads);
  positive("num_key_value_heads", s.num_key_value_heads);
  positive("vocab_size", s.vocab_size);
  positive("max_position_embeddings", s.max_position_embeddings);
  if (s.hidden_size % s.num_attention_heads != 0) {
    throw ConfigValueError("model.num_attention_heads",
                           fmt::format("{} does not divide hidden_size {}; heads must split the hidden size evenly",
                                       s.num_attention_heads, s.hidden_size));
  }
  if (s.head_dim() % 2 != 0) {
    throw ConfigValueError("model.num_attention_heads",
                           fmt::format("{} gives head_dim {}; RoPE needs an even head_dim", s.num_attention_heads,
                                       s.head_dim()));
  }
  if (s.num_attention_heads % s.num_key_value_heads != 0) {
    throw ConfigValueError("model.num_key_value_heads",
                           fmt::format("{} does not divide num_attention_heads {}; each KV head must serve a whole "
                                       "group of query heads",
                                       s.num_key_value_heads, s.num_attention_heads));
  }
  if (!(s.rms_norm_eps > 0.0)) {
    throw ConfigValueError("model.rms_norm_eps", fmt::format("{} is invalid; it must be > 0", s.rms_norm_eps));
  }
  if (!(s.rope_theta > 0.0)) {
    throw ConfigValueError("model.rope_theta", fmt::format("{} is invalid; it must be > 0", s.rope_theta));
  }
}

void resolve_shape(Config& config, std::vector<std::string>& warnings) {
  std::optional<Shape> from_checkpoint;
  std::string config_json;
  if (!config.init_from.empty()) {
    // A run directory or checkpoints/latest means its latest checkpoint;
    // the resolved config records which one.
    config.init_from = io::resolve_model_dir(config.init_from);
    config_json = (fs::path(config.init_from) / "config.json").string();
    if (fs::exists(config_json)) {
      from_checkpoint = read_hf_config(config_json);
    } else if (fs::exists(config.init_from)) {
      throw ConfigValueError("model.init_from", fmt::format("'{}' has no config.json; it must be a Hugging Face "
                                                            "model directory or a cpt-train checkpoint",
                                                            config.init_from));
    } else {
      warnings.push_back(fmt::format("model.init_from '{}' does not exist yet", config.init_from));
    }
  }

  if (!config.preset.empty()) {
    config.shape = find_preset(config.preset).shape;
  } else if (from_checkpoint) {
    config.shape = *from_checkpoint;
  } else if (config.init_from.empty()) {
    config.preset = "tiny";
    config.shape = find_preset(config.preset).shape;
  } else {
    throw ConfigValueError("model.init_from",
                           fmt::format("'{}' has no config.json yet, so the model shape is unknown; set model.preset "
                                       "to plan before the weights exist",
                                       config.init_from));
  }
  config.overrides.apply_to(config.shape);

  if (from_checkpoint) {
    // The checkpoint's own config.json is the truth; anything written in the
    // YAML must agree with it rather than silently reshape the weights.
    std::vector<std::string> names;
    std::vector<std::string> ours, theirs;
    std::vector<bool> explicit_field;
    for_each_field(config.shape, [&](const char* name, const auto& v) {
      names.push_back(name);
      ours.push_back(show(v));
    });
    for_each_field(*from_checkpoint, [&](const char*, const auto& v) { theirs.push_back(show(v)); });
    for_each_field(config.overrides, [&](const char*, const auto& v) { explicit_field.push_back(v.has_value()); });
    for (size_t i = 0; i < names.size(); ++i) {
      if (ours[i] == theirs[i]) continue;
      if (explicit_field[i]) {
        throw ConfigValueError("model." + names[i],
                               fmt::format("{} disagrees with {}, which says {} {}; remove it or make them agree",
                                           ours[i], config_json, names[i], theirs[i]));
      }
      throw ConfigValueError("model.preset",
                             fmt::format("'{}' has {} {}, but {} says {}; remove model.preset to take the shape from "
                                         "the checkpoint",
                                         config.preset, names[i], ours[i], config_json, theirs[i]));
    }
  }
  validate(config.shape);
}

}  // namespace cpt::model
