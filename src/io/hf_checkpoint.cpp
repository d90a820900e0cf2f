#include "cpt/io/hf_checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <fmt/format.h>
#include <set>

#include "cpt/common/error.h"
#include "cpt/io/atomic_file.h"
#include "cpt/io/hf_model.h"

namespace fs = std::filesystem;

namespace cpt::io {

namespace {

torch::ScalarType torch_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kF32: return torch::kFloat;
    case Dtype::kF16: return torch::kHalf;
    case Dtype::kBF16: return torch::kBFloat16;
    case Dtype::kF64: return torch::kDouble;
    default: throw std::invalid_argument(std::string("no torch type for ") + dtype_name(dtype));
  }
}

std::string shape_text(c10::IntArrayRef shape) { return nlohmann::json(shape.vec()).dump(); }

}  // namespace

namespace {

NamedTensors parameters_of(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace

void load_hf_weights(torch::nn::Module& module, const std::string& dir) {
  NamedTensors parameters = parameters_of(module);  // share the parameters' storage
  load_hf_weights(parameters, dir);
}

void load_hf_weights(NamedTensors& tensors, const std::string& dir, bool verify_checksums) {
  const HfModel model(dir, verify_checksums);
  torch::NoGradGuard no_grad;
  std::set<std::string> expected;
  for (auto& [name, param] : tensors) {
    expected.insert(name);
    const HfModel::Tensor tensor = model.find(name);
    if (tensor.info == nullptr) throw InputError(fmt::format("'{}' has no tensor '{}' that the model needs", dir, name));
    const TensorSpec& spec = tensor.info->spec;
    if (spec.shape != param.sizes().vec()) {
      throw InputError(fmt::format("'{}': tensor '{}' has shape {} in {} but the model needs {}", dir, name,
                                   nlohmann::json(spec.shape).dump(), tensor.file->path(), shape_text(param.sizes())));
    }
    if (!is_float(spec.dtype)) {
      throw InputError(fmt::format("'{}': tensor '{}' is {}; weights must be F32, F16 or BF16", dir, name, dtype_name(spec.dtype)));
    }
    // A view of the mapped bytes; copy_ converts to the parameter's dtype.
    const uint8_t* bytes = tensor.file->data(*tensor.info);
    auto view = torch::from_blob(const_cast<uint8_t*>(bytes), spec.shape, torch::TensorOptions().dtype(torch_type(spec.dtype)));
    if (!all_finite(spec.dtype, bytes, static_cast<size_t>(spec.numel()))) {
      throw InputError(fmt::format("'{}': tensor '{}' in {} holds NaN or infinite values", dir, name, tensor.file->path()));
    }
    param.copy_(view);
    tensor.file->check_intact();  // a shard truncated by another program while it was read
  }
  for (const auto& name : model.tensor_names()) {
    if (!expected.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos) {
      throw InputError(fmt::format("'{}' has tensor '{}', which this model does not have; is the shape right?", dir, name));
    }
  }
}

void save_hf_weights(const torch::nn::Module& module, const model::Shape& shape, const std::string& dir, Dtype dtype,
                     int64_t max_shard_size) {
  save_hf_weights(parameters_of(module), shape, dir, dtype, max_shard_size);
}

void save_hf_weights(const NamedTensors& named, const model::Shape& shape, const std::string& dir, Dtype dtype,
                     int64_t max_shard_size) {
  std::vector<TensorSpec> specs;
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, value] : named) {
    auto t = value.detach().to(torch::kCPU).to(torch_type(dtype)).contiguous();
    specs.push_back(TensorSpec{name, dtype, t.sizes().vec()});
    tensors[name] = t;
  }
  const auto shards = plan_shards(specs, max_shard_size);
  for (size_t s = 0; s < shards.size(); ++s) {
    SafetensorsWriter writer((fs::path(dir) / shard_file_name(s, shards.size())).string(), shards[s]);
    for (const auto& spec : shards[s]) {
      const torch::Tensor& t = tensors.at(spec.name);
      writer.write(spec.name, 0, t.data_ptr(), spec.nbytes());
    }
    writer.finish();
  }
  if (shards.size() > 1) write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), shard_index_json(shards));
  write_file_atomic((fs::path(dir) / "config.json").string(), model::hf_config_json(shape, torch_dtype_name(dtype)).dump(2) + "\n");
}

}  // namespace cpt::io
