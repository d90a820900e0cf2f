#pragma once
// A Hugging Face model directory: config.json plus model.safetensors or
// model-0000K-of-0000N.safetensors shards with model.safetensors.index.json.

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cpt/io/safetensors.h"

namespace cpt::io {

class HfModel {
 public:
  // Opens and validates every shard. A cpt-train checkpoint's model files
  // are first checked against the checksums it was written with, unless
  // `verify_checksums` is false (the caller verified the whole checkpoint).
  // Throws InputError naming the file.
  explicit HfModel(std::string dir, bool verify_checksums = true);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  const std::vector<std::string>& tensor_names() const { return names_; }  // sorted

  struct Tensor {
    const SafetensorsFile* file = nullptr;
    const TensorInfo* info = nullptr;
  };
  // Null members when the model has no such tensor.
  Tensor find(const std::string& name) const;

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> names_;
};

// Greedy packing in the given order, as huggingface_hub shards: a tensor
// larger than the limit gets a shard of its own.
std::vector<std::vector<TensorSpec>> plan_shards(const std::vector<TensorSpec>& tensors, int64_t max_shard_size);

// "model.safetensors" for a single shard, else "model-00002-of-00005.safetensors".
std::string shard_file_name(size_t index, size_t count);

// model.safetensors.index.json: total_size and weight_map, indent 2, sorted keys.
std::string shard_index_json(const std::vector<std::vector<TensorSpec>>& shards);

}  // namespace cpt::io
