#include "cpt/config/serialize.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fmt/format.h>
#include <optional>
#include <system_error>

#include "cpt/common/bytes.h"
#include "cpt/common/error.h"
#include "cpt/config/fields.h"
#include "cpt/io/atomic_file.h"

namespace fs = std::filesystem;

namespace cpt::config {

namespace {

class JsonWriter {
 public:
  explicit JsonWriter(nlohmann::ordered_json& out) : out_(out) {}

  template <class T>
  void operator()(const char* key, T& value) {
    out_[key] = encode(value);
  }

 private:
  template <class T>
  static nlohmann::ordered_json encode(T& value) {
    if constexpr (is_section<T>::value) {
      nlohmann::ordered_json object = nlohmann::ordered_json::object();
      JsonWriter writer(object);
      value.fields(writer);
      return object;
    } else if constexpr (is_section_list<T>::value) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (auto& item : value) list.push_back(encode(item));
      return list;
    } else if constexpr (std::is_same_v<T, Bytes>) {
      return value.value;
    } else if constexpr (std::is_same_v<T, std::optional<int64_t>> || std::is_same_v<T, std::optional<double>>) {
      return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
    } else {
      return value;
    }
  }

  nlohmann::ordered_json& out_;
};

void emit(YAML::Emitter& out, const nlohmann::ordered_json& value, bool flow) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [key, item] : value.items()) {
      out << YAML::Key << key << YAML::Value;
      emit(out, item, false);
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    bool scalars = true;
    for (const auto& item : value) scalars = scalars && !item.is_structured();
    if (scalars || flow) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const auto& item : value) emit(out, item, flow);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    out << value.get<std::string>();
  } else if (value.is_boolean()) {
    out << (value.get<bool>() ? "true" : "false");
  } else if (value.is_number_float()) {
    out << fmt::format("{}", value.get<double>());
  } else if (value.is_null()) {
    out << YAML::Null;
  } else {
    out << value.dump();
  }
}

}  // namespace

nlohmann::ordered_json to_json(const Config& config) {
  Config copy = config;
  // Write the resolved shape as explicit sizes; they agree with the preset
  // and with init_from's config.json, so loading the result is a no-op.
  const model::Shape& s = copy.model.shape;
  model::ShapeOverrides& o = copy.model.overrides;
  o.hidden_size = s.hidden_size;
  o.intermediate_size = s.intermediate_size;
  o.num_hidden_layers = s.num_hidden_layers;
  o.num_attention_heads = s.num_attention_heads;
  o.num_key_value_heads = s.num_key_value_heads;
  o.vocab_size = s.vocab_size;
  o.max_position_embeddings = s.max_position_embeddings;
  o.rms_norm_eps = s.rms_norm_eps;
  o.rope_theta = s.rope_theta;
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  JsonWriter writer(out);
  copy.fields(writer);
  return out;
}

std::string to_yaml(const Config& config) {
  YAML::Emitter out;
  out.SetIndent(2);
  emit(out, to_json(config), false);
  return std::string(out.c_str()) + "\n";
}

std::string resolved_yaml(const Config& config, const std::string& source) {
  return fmt::format("# Resolved by cpt-train from {}: every key with the value this run uses.\n", source) +
         to_yaml(config);
}

std::string write_resolved(const Config& config, const std::string& source, const std::string& file_name) {
  std::error_code error;
  fs::create_directories(config.run.output_dir, error);
  if (error) {
    throw InputError(fmt::format("run.output_dir '{}' cannot be created: {}", config.run.output_dir, error.message()));
  }
  const std::string path = (fs::path(config.run.output_dir) / file_name).string();
  io::write_file_atomic(path, resolved_yaml(config, source));
  return path;
}

}  // namespace cpt::config
