#include "cpt/io/hf_model.h"

#include <filesystem>
#include <fmt/format.h>
#include <fstream>

#include "cpt/common/error.h"
#include "cpt/io/checksums.h"

namespace fs = std::filesystem;

namespace cpt::io {

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("cannot read '{}'", path.string()));
  nlohmann::json json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) throw InputError(fmt::format("'{}' is not a JSON object", path.string()));
  return json;
}

}  // namespace

HfModel::HfModel(std::string dir, bool verify_checksums) : dir_(std::move(dir)) {
  const fs::path root(dir_);
  if (!fs::is_directory(root)) throw InputError(fmt::format("model directory '{}' does not exist", dir_));
  if (verify_checksums && has_checksums(dir_)) io::verify_checksums(dir_, is_model_file);
  if (!fs::exists(root / "config.json")) throw InputError(fmt::format("'{}' has no config.json", dir_));
  config_ = read_json(root / "config.json");

  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  const fs::path index = root / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const nlohmann::json json = read_json(index);
    if (!json.contains("weight_map") || !json["weight_map"].is_object()) {
      throw InputError(fmt::format("'{}' has no weight_map", index.string()));
    }
    for (auto it = json["weight_map"].begin(); it != json["weight_map"].end(); ++it) {
      if (!it.value().is_string() || it.value().get<std::string>().empty() ||
          it.value().get<std::string>().find('/') != std::string::npos || it.value().get<std::string>() == ".." ||
          it.value().get<std::string>() == ".") {
        throw InputError(fmt::format("'{}': weight_map values must be file names in the model directory, not {}",
                                     index.string(), it.value().dump()));
      }
      weight_map[it.key()] = it.value().get<std::string>();
      if (std::find(shard_names.begin(), shard_names.end(), it.value().get<std::string>()) == shard_names.end()) {
        shard_names.push_back(it.value().get<std::string>());
      }
    }
  } else if (fs::exists(root / "model.safetensors")) {
    shard_names.push_back("model.safetensors");
  } else {
    throw InputError(fmt::format("'{}' has neither model.safetensors nor model.safetensors.index.json", dir_));
  }
  std::sort(shard_names.begin(), shard_names.end());
  for (const auto& shard : shard_names) {
    files_.push_back(std::make_unique<SafetensorsFile>((root / shard).string()));
    const SafetensorsFile* file = files_.back().get();
    for (const auto& tensor : file->tensors()) {
      const std::string& name = tensor.spec.name;
      if (!weight_map.empty()) {
        auto it = weight_map.find(name);
        if (it == weight_map.end() || it->second != shard) continue;  // the index decides
      }
      if (tensors_.count(name)) throw InputError(fmt::format("'{}': tensor '{}' appears in two shards", dir_, name));
      tensors_[name] = Tensor{file, &tensor};
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (!tensors_.count(name)) {
      throw InputError(fmt::format("'{}': the index maps '{}' to {}, which does not hold it", dir_, name, file));
    }
  }
  for (const auto& entry : tensors_) names_.push_back(entry.first);
}

HfModel::Tensor HfModel::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? Tensor{} : it->second;
}

std::vector<std::vector<TensorSpec>> plan_shards(const std::vector<TensorSpec>& tensors, int64_t max_shard_size) {
  std::vector<std::vector<TensorSpec>> shards;
  int64_t current = 0;
  for (const auto& spec : tensors) {
    const auto size = static_cast<int64_t>(spec.nbytes());
    if (shards.empty() || (current + size > max_shard_size && current > 0)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(spec);
    current += size;
  }
  return shards;
}

std::string shard_file_name(size_t index, size_t count) {
  if (count == 1) return "model.safetensors";
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

std::string shard_index_json(const std::vector<std::vector<TensorSpec>>& shards) {
  nlohmann::json weight_map = nlohmann::json::object();  // std::map keys: sorted
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    for (const auto& spec : shards[s]) {
      weight_map[spec.name] = shard_file_name(s, shards.size());
      total += spec.nbytes();
    }
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  return index.dump(2) + "\n";
}

}  // namespace cpt::io
