#include "cpt/model/config.h"

#include <algorithm>
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
  return arch == o.arch && hidden_size == o.hidden_size && intermediate_size == o.intermediate_size &&
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

namespace {

const std::vector<std::string> kModelTypes = {"llama", "mistral", "qwen2"};

// transformers' config defaults for keys a config.json may omit, per family.
void apply_family_defaults(const std::string& model_type, Shape& s) {
  apply_hf_defaults(s);
  if (model_type == "mistral") {
    s.num_key_value_heads = 8;
    s.max_position_embeddings = 4096 * 32;
    s.arch.sliding_window = 4096;
  } else if (model_type == "qwen2") {
    s.max_position_embeddings = 32768;
  }
}

// rope_scaling (transformers 4.x) or rope_parameters (5.x): plain RoPE, or
// Llama-3.1's "llama3" scaling; anything else is refused.
void read_rope(const nlohmann::json& rope, const std::string& key, const std::string& path, nlohmann::json& json,
               Shape& shape) {
  if (!rope.is_object()) throw InputError(fmt::format("'{}': {} is {}, expected an object", path, key, rope.dump()));
  std::string type = "default";
  for (const char* name : {"rope_type", "type"}) {
    if (rope.contains(name)) {
      if (!rope[name].is_string()) throw InputError(fmt::format("'{}': {}.{} is {}, expected a string", path, key, name, rope[name].dump()));
      type = rope[name].get<std::string>();
    }
  }
  if (type != "default" && type != "llama3") {
    throw InputError(fmt::format("'{}' sets {}.rope_type \"{}\"; cpt-train implements plain RoPE (\"default\") and "
                                 "Llama-3.1's \"llama3\" scaling",
                                 path, key, type));
  }
  std::vector<std::string> known = {"rope_type", "type", "rope_theta"};
  if (type == "llama3") {
    const auto number = [&](const char* name) {
      if (!rope.contains(name) || !rope[name].is_number()) {
        throw InputError(fmt::format("'{}': {} of type llama3 needs a number \"{}\" (it has {})", path, key, name,
                                     rope.contains(name) ? rope[name].dump() : "none"));
      }
      return rope[name].get<double>();
    };
    Llama3RopeScaling& r = shape.arch.rope_scaling;
    r.factor = number("factor");
    r.low_freq_factor = number("low_freq_factor");
    r.high_freq_factor = number("high_freq_factor");
    if (!rope.contains("original_max_position_embeddings") || !rope["original_max_position_embeddings"].is_number_integer()) {
      throw InputError(fmt::format("'{}': {} of type llama3 needs an integer \"original_max_position_embeddings\"", path, key));
    }
    r.original_max_position_embeddings = rope["original_max_position_embeddings"].get<int64_t>();
    if (!(r.factor >= 1) || !(r.high_freq_factor > r.low_freq_factor) || !(r.low_freq_factor > 0) ||
        r.original_max_position_embeddings <= 0) {
      throw InputError(fmt::format("'{}': {} {} is not a valid llama3 scaling (factor >= 1, 0 < low_freq_factor < "
                                   "high_freq_factor, original_max_position_embeddings > 0)",
                                   path, key, rope.dump()));
    }
    known.insert(known.end(), {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"});
  }
  for (const auto& [name, value] : rope.items()) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw InputError(fmt::format("'{}' sets {}.{} {}, which cpt-train does not implement (it reads {})", path, key,
                                   name, value.dump(), join(known, ", ")));
    }
  }
  if (rope.contains("rope_theta")) {
    if (!rope["rope_theta"].is_number()) {
      throw InputError(fmt::format("'{}': {}.rope_theta is {}, expected a number", path, key, rope["rope_theta"].dump()));
    }
    if (json.contains("rope_theta") && !json["rope_theta"].is_null() && json["rope_theta"] != rope["rope_theta"]) {
      throw InputError(fmt::format("'{}': rope_theta {} and {}.rope_theta {} disagree", path, json["rope_theta"].dump(),
                                   key, rope["rope_theta"].dump()));
    }
    json["rope_theta"] = rope["rope_theta"];
  }
}

bool read_flag(const nlohmann::json& json, const char* key, const std::string& path) {
  if (!json.contains(key) || json[key].is_null()) return false;
  if (!json[key].is_boolean()) {
    throw InputError(fmt::format("'{}': \"{}\" is {}, expected true or false", path, key, json[key].dump()));
  }
  return json[key].get<bool>();
}

}  // namespace

std::string describe(const Architecture& a) {
  std::string text = architecture_name(a.model_type);
  if (a.tie_word_embeddings) text += ", tied embeddings";
  if (a.attention_bias) text += ", q/k/v biases";
  if (a.sliding_window > 0) text += fmt::format(", sliding window {}", a.sliding_window);
  if (a.rope_scaling.factor > 0) {
    text += fmt::format(", llama3 RoPE scaling (factor {}, low {}, high {}, original context {})", a.rope_scaling.factor,
                        a.rope_scaling.low_freq_factor, a.rope_scaling.high_freq_factor,
                        a.rope_scaling.original_max_position_embeddings);
  }
  return text;
}

nlohmann::json hf_config_json(const Shape& s, const std::string& torch_dtype) {
  const Architecture& a = s.arch;
  nlohmann::json j = {{"architectures", {architecture_name(a.model_type)}},
                      {"model_type", a.model_type},
                      {"hidden_size", s.hidden_size},
                      {"intermediate_size", s.intermediate_size},
                      {"num_hidden_layers", s.num_hidden_layers},
                      {"num_attention_heads", s.num_attention_heads},
                      {"num_key_value_heads", s.num_key_value_heads},
                      {"head_dim", s.head_dim()},
                      {"vocab_size", s.vocab_size},
                      {"max_position_embeddings", s.max_position_embeddings},
                      {"rms_norm_eps", s.rms_norm_eps},
                      {"rope_theta", s.rope_theta},
                      {"hidden_act", "silu"},
                      {"initializer_range", 0.02},
                      {"tie_word_embeddings", a.tie_word_embeddings},
                      {"bos_token_id", a.bos_token_id >= 0 ? nlohmann::json(a.bos_token_id) : nlohmann::json(nullptr)},
                      // transformers 5 reads "dtype", 4.x "torch_dtype".
                      {"dtype", torch_dtype},
                      {"torch_dtype", torch_dtype}};
  j["eos_token_id"] = a.eos_token_id.empty()       ? nlohmann::json(nullptr)
                      : a.eos_token_id.size() == 1 ? nlohmann::json(a.eos_token_id.front())
                                                   : nlohmann::json(a.eos_token_id);
  if (a.rope_scaling.factor > 0) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", a.rope_scaling.factor},
                         {"low_freq_factor", a.rope_scaling.low_freq_factor},
                         {"high_freq_factor", a.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", a.rope_scaling.original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (a.model_type == "llama") {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  } else if (a.model_type == "mistral") {
    j["sliding_window"] = a.sliding_window > 0 ? nlohmann::json(a.sliding_window) : nlohmann::json(nullptr);
  } else if (a.model_type == "qwen2") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = s.num_hidden_layers;
  }
  return j;
}

std::string architecture_name(const std::string& model_type) {
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  return "LlamaForCausalLM";
}

Shape hf_config_shape(const nlohmann::json& parsed, const std::string& path) {
  nlohmann::json json = parsed;  // the RoPE theta of rope_parameters is folded in below
  if (!json.is_object()) throw InputError(fmt::format("'{}' must hold a JSON object", path));
  std::string model_type = "llama";  // conversions of Llama-2 may omit it
  if (json.contains("model_type")) {
    if (!json["model_type"].is_string() ||
        std::find(kModelTypes.begin(), kModelTypes.end(), json["model_type"].get<std::string>()) == kModelTypes.end()) {
      throw InputError(fmt::format("'{}' has model_type {}; cpt-train trains the model types {}", path,
                                   json["model_type"].dump(), join(kModelTypes, ", ")));
    }
    model_type = json["model_type"].get<std::string>();
  }
  if (json.contains("architectures") && !json["architectures"].is_null()) {
    const auto& list = json["architectures"];
    if (!list.is_array() || list.size() != 1 || list[0] != architecture_name(model_type)) {
      throw InputError(fmt::format("'{}' has architectures {}; model_type \"{}\" is trained as [\"{}\"]", path,
                                   list.dump(), model_type, architecture_name(model_type)));
    }
  }
  Shape shape;
  shape.arch.model_type = model_type;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (json.contains(key) && !json[key].is_null()) read_rope(json[key], key, path, json, shape);
  }
  if (json.contains("head_dim") && !json["head_dim"].is_null() && json["hidden_size"].is_number_integer() &&
      json["num_attention_heads"].is_number_integer() && json["num_attention_heads"].get<int64_t>() > 0 &&
      json["head_dim"] != json["hidden_size"].get<int64_t>() / json["num_attention_heads"].get<int64_t>()) {
    throw InputError(fmt::format("'{}' sets head_dim {}; cpt-train's decoder has head_dim = hidden_size / "
                                 "num_attention_heads = {}",
                                 path, json["head_dim"].dump(),
                                 json["hidden_size"].get<int64_t>() / json["num_attention_heads"].get<int64_t>()));
  }
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"}) {
    if (!json.contains(key)) throw InputError(fmt::format("'{}' has no \"{}\"; is it a {} config.json?", path, key, architecture_name(model_type)));
  }
  for (const char* key : {"hidden_size", "num_attention_heads"}) {
    if (!json[key].is_number_integer()) throw InputError(fmt::format("'{}': \"{}\" must be an integer", path, key));
  }
  shape.num_attention_heads = json["num_attention_heads"].get<int64_t>();
  apply_family_defaults(model_type, shape);
  for_each_field(shape, [&](const char* key, auto& field) {
    if (!json.contains(key) || json[key].is_null()) return;
    using T = std::decay_t<decltype(field)>;
    const auto& value = json[key];
    bool ok = std::is_integral_v<T> ? value.is_number_integer() : value.is_number();
    if (!ok) throw InputError(fmt::format("'{}': \"{}\" is {}, expected a number", path, key, value.dump()));
    field = value.get<T>();
  });

  shape.arch.tie_word_embeddings = read_flag(json, "tie_word_embeddings", path);
  if (model_type == "qwen2") {
    shape.arch.attention_bias = true;  // Qwen2's q/k/v always have biases
    if (read_flag(json, "use_sliding_window", path)) {
      throw InputError(fmt::format("'{}' sets use_sliding_window true; cpt-train implements Qwen2 with full "
                                   "attention only (as the released Qwen2.5 models use it)",
                                   path));
    }
  }
  // Llama's attention_bias also adds one to o_proj, and mlp_bias to the MLP:
  // no released base uses them.
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (model_type != "qwen2" && read_flag(json, key, path)) {
      throw InputError(fmt::format("'{}' sets {} true, which cpt-train does not implement", path, key));
    }
  }
  if (model_type == "mistral" && json.contains("sliding_window")) {
    const auto& window = json["sliding_window"];
    if (window.is_null()) {
      shape.arch.sliding_window = 0;
    } else if (window.is_number_integer() && window.get<int64_t>() > 0) {
      shape.arch.sliding_window = window.get<int64_t>();
    } else {
      throw InputError(fmt::format("'{}': \"sliding_window\" is {}, expected a positive integer or null", path, window.dump()));
    }
  }
  // Absent: the family's default (Qwen2Config has none); null stays null.
  if (model_type == "qwen2") {
    shape.arch.bos_token_id = -1;
    shape.arch.eos_token_id.clear();
  }
  if (json.contains("bos_token_id")) {
    if (json["bos_token_id"].is_number_integer()) shape.arch.bos_token_id = json["bos_token_id"].get<int64_t>();
    if (json["bos_token_id"].is_null()) shape.arch.bos_token_id = -1;
  }
  if (json.contains("eos_token_id")) {
    const auto& eos = json["eos_token_id"];
    if (eos.is_null()) {
      shape.arch.eos_token_id.clear();
    } else if (eos.is_number_integer()) {
      shape.arch.eos_token_id = {eos.get<int64_t>()};
    } else if (eos.is_array() && !eos.empty() &&
               std::all_of(eos.begin(), eos.end(), [](const nlohmann::json& e) { return e.is_number_integer(); })) {
      shape.arch.eos_token_id = eos.get<std::vector<int64_t>>();
    }
  }
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
    // The special tokens are the checkpoint's (an instruct model's extra EOS ids).
    config.shape.arch.bos_token_id = from_checkpoint->arch.bos_token_id;
    config.shape.arch.eos_token_id = from_checkpoint->arch.eos_token_id;
    if (config.shape.arch != from_checkpoint->arch) {
      throw ConfigValueError("model.preset", fmt::format("'{}' is {}, but {} says {}; remove model.preset to take the "
                                                         "architecture from the checkpoint",
                                                         config.preset, describe(config.shape.arch), config_json,
                                                         describe(from_checkpoint->arch)));
    }
  }
  validate(config.shape);
}

}  // namespace cpt::model
