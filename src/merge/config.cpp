#include "cpt/merge/config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>

#include "cpt/common/error.h"
#include "cpt/io/model_dir.h"
#include "cpt/common/strings.h"

namespace cpt::merge {

namespace {

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& message) const {
    throw InputError(fmt::format("{}:{}: {}: {}", source_, node.Mark().line + 1, key, message));
  }

  void check_keys(const YAML::Node& map, const std::string& where, const std::vector<std::string>& supported,
                  const std::vector<std::string>& unsupported = {}) const {
    for (const auto& entry : map) {
      const std::string key = key_name(entry.first, where);
      if (std::find(supported.begin(), supported.end(), key) != supported.end()) continue;
      const std::string path = where.empty() ? key : where + "." + key;
      if (std::find(unsupported.begin(), unsupported.end(), key) != unsupported.end()) {
        fail(entry.first, path, fmt::format("is a mergekit feature cpt-train does not support; supported keys: {}",
                                            join(supported, ", ")));
      }
      std::string message = "unknown key";
      if (auto guess = closest_match(key, supported)) message += fmt::format("; did you mean '{}'?", *guess);
      fail(entry.first, path, message + fmt::format(" Supported keys: {}", join(supported, ", ")));
    }
  }

  // YAML allows a list or a mapping as a key ("? [a, b]: 1"); no key of ours is one.
  std::string key_name(const YAML::Node& key, const std::string& where) const {
    if (!key.IsScalar()) fail(key, where.empty() ? "(top level)" : where, "keys must be plain names, not a list or mapping");
    return key.Scalar();
  }

  std::string text(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "expected a string");
    return node.Scalar();
  }

  double number(const YAML::Node& node, const std::string& key) const {
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      if (s == "true" || s == "True") return 1;
      if (s == "false" || s == "False") return 0;
      char* end = nullptr;
      errno = 0;
      const double value = std::strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0' && errno == 0) return value;
    }
    fail(node, key, "expected a number");
  }

  bool is_number(const YAML::Node& node) const {
    if (!node.IsScalar()) return false;
    const std::string& s = node.Scalar();
    if (s == "true" || s == "false" || s == "True" || s == "False") return true;
    char* end = nullptr;
    std::strtod(s.c_str(), &end);
    return !s.empty() && *end == '\0';
  }

  Setting setting(const YAML::Node& node, const std::string& key) const {
    Setting s;
    if (node.IsScalar()) {
      if (is_number(node)) {
        s.kind = Setting::Kind::kNumber;
        s.number = number(node, key);
      } else {
        s.kind = Setting::Kind::kText;
        s.text = node.Scalar();
      }
      return s;
    }
    if (node.IsMap()) {  // a single {filter, value}
      s.kind = Setting::Kind::kConditional;
      s.conditions.push_back(condition(node, key));
      return s;
    }
    if (!node.IsSequence() || node.size() == 0) fail(node, key, "expected a number, a list of numbers or {filter, value} entries");
    bool numbers = true;
    for (const auto& item : node) numbers = numbers && is_number(item);
    if (numbers) {
      s.kind = Setting::Kind::kGradient;
      for (size_t i = 0; i < node.size(); ++i) s.gradient.push_back(number(node[i], key));
      return s;
    }
    s.kind = Setting::Kind::kConditional;
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsMap()) fail(node[i], key, "mixes numbers and {filter, value} entries");
      s.conditions.push_back(condition(node[i], fmt::format("{}[{}]", key, i)));
    }
    return s;
  }

  Setting::Condition condition(const YAML::Node& node, const std::string& key) const {
    check_keys(node, key, {"filter", "value"});
    if (!node["value"]) fail(node, key, "a conditional parameter needs a value");
    Setting::Condition c;
    if (node["filter"] && !node["filter"].IsNull()) c.filter = text(node["filter"], key + ".filter");
    c.value = setting(node["value"], key + ".value");
    return c;
  }

  Parameters parameters(const YAML::Node& node, const std::string& key) const {
    Parameters out;
    if (!node || node.IsNull()) return out;
    if (!node.IsMap()) fail(node, key, "expected a mapping of parameter names to values");
    for (const auto& entry : node) {
      const std::string name = key_name(entry.first, key);
      out[name] = setting(entry.second, key + "." + name);
    }
    return out;
  }

  InputSlice input(const YAML::Node& node, const std::string& key, bool with_range) const {
    if (!node.IsMap()) fail(node, key, "expected a mapping with a model");
    if (with_range) {
      check_keys(node, key, {"model", "layer_range", "parameters"});
    } else {
      check_keys(node, key, {"model", "parameters"});
    }
    if (!node["model"]) fail(node, key, "needs a model");
    InputSlice slice;
    slice.model = text(node["model"], key + ".model");
    slice.parameters = parameters(node["parameters"], key + ".parameters");
    if (with_range) {
      const YAML::Node range = node["layer_range"];
      if (!range || !range.IsSequence() || range.size() != 2) fail(node, key + ".layer_range", "needs [begin, end]");
      const double begin = number(range[0], key + ".layer_range"), end = number(range[1], key + ".layer_range");
      // Bounded before the casts below, which are undefined past int64's range.
      constexpr double kMostLayers = 1 << 20;
      if (!(begin >= 0) || !(end > begin) || end > kMostLayers || begin != std::floor(begin) || end != std::floor(end)) {
        fail(range, key + ".layer_range", fmt::format("[{}, {}] is not a range of whole layers with begin < end", begin, end));
      }
      slice.layer_range = std::make_pair(static_cast<int64_t>(begin), static_cast<int64_t>(end));
    }
    return slice;
  }

  std::optional<io::Dtype> dtype(const YAML::Node& node, const std::string& key) const {
    if (!node || node.IsNull()) return std::nullopt;
    const std::string name = text(node, key);
    auto dtype = io::parse_torch_dtype(name);
    if (!dtype) fail(node, key, fmt::format("'{}' is not supported; use bfloat16, float16 or float32", name));
    return dtype;
  }

 private:
  std::string source_;
};

std::optional<double> interpolate(const std::vector<double>& points, double t) {
  // mergekit: scaled = t·(n−1), linear between the two neighbouring points.
  const double scaled = t * static_cast<double>(points.size() - 1);
  const auto i0 = static_cast<size_t>(scaled);
  const size_t i1 = std::min(points.size() - 1, i0 + 1);
  const double frac = scaled - static_cast<double>(i0);
  return (1 - frac) * points[std::min(i0, points.size() - 1)] + frac * points[i1];
}

}  // namespace

std::optional<double> Setting::number_for(const std::string& tensor, double t) const {
  switch (kind) {
    case Kind::kNumber: return number;
    case Kind::kText: return std::nullopt;
    case Kind::kGradient: return interpolate(gradient, t);
    case Kind::kConditional:
      for (const auto& c : conditions) {
        if (!c.filter || *c.filter == "*" || tensor.find(*c.filter) != std::string::npos) return c.value.number_for(tensor, t);
      }
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string> Setting::text_for(const std::string& tensor, double t) const {
  if (kind == Kind::kText) return text;
  if (kind == Kind::kConditional) {
    for (const auto& c : conditions) {
      if (!c.filter || *c.filter == "*" || tensor.find(*c.filter) != std::string::npos) return c.value.text_for(tensor, t);
    }
  }
  return std::nullopt;
}

MergeConfig load_merge_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("cannot read merge config '{}': {}", path, std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(buffer.str());
  } catch (const YAML::ParserException& e) {
    throw InputError(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (!root.IsMap()) throw InputError(fmt::format("{}: a merge config is a mapping (merge_method, models, …)", path));
  const Reader r(path);
  r.check_keys(root, "",
               {"merge_method", "models", "slices", "base_model", "parameters", "dtype", "out_dtype",
                "tokenizer_source"},
               {"modules", "tokenizer", "chat_template"});
  MergeConfig c;
  c.source = path;
  if (!root["merge_method"]) throw InputError(fmt::format("{}: merge_method is missing", path));
  c.merge_method = r.text(root["merge_method"], "merge_method");
  if (root["base_model"] && !root["base_model"].IsNull()) c.base_model = r.text(root["base_model"], "base_model");
  c.parameters = r.parameters(root["parameters"], "parameters");
  c.dtype = r.dtype(root["dtype"], "dtype");
  c.out_dtype = r.dtype(root["out_dtype"], "out_dtype");
  if (root["tokenizer_source"] && !root["tokenizer_source"].IsNull()) {
    c.tokenizer_source = r.text(root["tokenizer_source"], "tokenizer_source");
    if (c.tokenizer_source == "union") {
      r.fail(root["tokenizer_source"], "tokenizer_source",
             "'union' (merging vocabularies) is not supported; use 'base' or one of the models");
    }
  }
  const bool has_models = root["models"] && !root["models"].IsNull();
  const bool has_slices = root["slices"] && !root["slices"].IsNull();
  if (has_models == has_slices) throw InputError(fmt::format("{}: give exactly one of models or slices", path));
  if (has_models) {
    const YAML::Node models = root["models"];
    if (!models.IsSequence() || models.size() == 0) r.fail(models, "models", "expected a list of {model, parameters}");
    for (size_t i = 0; i < models.size(); ++i) c.models.push_back(r.input(models[i], fmt::format("models[{}]", i), false));
  } else {
    const YAML::Node slices = root["slices"];
    if (!slices.IsSequence() || slices.size() == 0) r.fail(slices, "slices", "expected a list of {sources}");
    for (size_t i = 0; i < slices.size(); ++i) {
      const std::string key = fmt::format("slices[{}]", i);
      const YAML::Node node = slices[i];
      if (!node.IsMap()) r.fail(node, key, "expected a mapping with sources");
      r.check_keys(node, key, {"sources", "base_model", "parameters"}, {"residual_weight"});
      OutputSlice slice;
      const YAML::Node sources = node["sources"];
      if (!sources || !sources.IsSequence() || sources.size() == 0) r.fail(node, key + ".sources", "needs a list of sources");
      for (size_t j = 0; j < sources.size(); ++j) {
        slice.sources.push_back(r.input(sources[j], fmt::format("{}.sources[{}]", key, j), true));
      }
      if (node["base_model"] && !node["base_model"].IsNull()) slice.base_model = r.text(node["base_model"], key + ".base_model");
      slice.parameters = r.parameters(node["parameters"], key + ".parameters");
      c.slices.push_back(std::move(slice));
    }
  }
  // A run directory or checkpoints/latest stands for its latest checkpoint.
  const auto resolve = [](std::string& dir) {
    if (!dir.empty()) dir = io::resolve_model_dir(dir);
  };
  resolve(c.base_model);
  for (auto& model : c.models) resolve(model.model);
  for (auto& slice : c.slices) {
    resolve(slice.base_model);
    for (auto& source : slice.sources) resolve(source.model);
  }
  return c;
}

}  // namespace cpt::merge
