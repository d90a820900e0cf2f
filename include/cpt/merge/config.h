#pragma once
// A merge described in mergekit's YAML schema, so users' existing merge
// configs work unchanged.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cpt/io/dtype.h"

namespace cpt::merge {

// A parameter as written: a scalar (number, boolean or string), a gradient
// (numbers interpolated over the layers of a slice), or a list of
// {filter, value} where the first entry whose filter is absent, "*", or a
// substring of the tensor name wins.
struct Setting {
  enum class Kind { kNumber, kText, kGradient, kConditional };
  Kind kind = Kind::kNumber;
  double number = 0;
  std::string text;
  std::vector<double> gradient;
  struct Condition;
  std::vector<Condition> conditions;

  // The value for `tensor` at position t in [0, 1]; empty when no condition
  // matches. Text settings have no number: see text_for().
  std::optional<double> number_for(const std::string& tensor, double t) const;
  std::optional<std::string> text_for(const std::string& tensor, double t) const;
};

struct Setting::Condition {
  std::optional<std::string> filter;
  Setting value;
};

using Parameters = std::map<std::string, Setting>;

struct InputSlice {
  std::string model;                   // local Hugging Face model directory
  std::optional<std::pair<int64_t, int64_t>> layer_range;  // [begin, end); the whole model when absent
  Parameters parameters;
};

struct OutputSlice {
  std::vector<InputSlice> sources;
  std::string base_model;  // overrides the top-level base_model for this slice
  Parameters parameters;
};

struct MergeConfig {
  std::string source;  // the YAML file, for messages
  std::string merge_method;
  std::string base_model;
  std::vector<InputSlice> models;  // `models:` form
  std::vector<OutputSlice> slices; // `slices:` form (exactly one of the two)
  Parameters parameters;           // global
  std::optional<io::Dtype> dtype;      // mergekit's compute dtype: we always compute in fp32
  std::optional<io::Dtype> out_dtype;  // output element type (default: dtype, else each input's)
  std::string tokenizer_source;        // "base", a model, or empty (the base model's)
};

// Throws InputError naming the file, line and key; unsupported keys and
// values are listed with the supported ones.
MergeConfig load_merge_config(const std::string& path);

}  // namespace cpt::merge
