#include "cpt/io/hf_checkpoint.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstring>
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

namespace {

// Checks a mapped tensor for NaN and infinity and copies it into `param`:
// where the types match, in one read of the source.
bool load_if_finite(Dtype dtype, const uint8_t* bytes, const std::vector<int64_t>& shape, torch::Tensor& param) {
  const int64_t count = param.numel();
  if (param.is_cpu() && param.is_contiguous() && param.scalar_type() == torch_type(dtype)) {
    return parallel_copy_if_finite(dtype, bytes, param.data_ptr(), count);
  }
  const size_t element = dtype_bits(dtype) / 8;
  std::atomic<bool> finite{true};
  at::parallel_for(0, count, int64_t{1} << 20, [&](int64_t begin, int64_t end) {
    if (!all_finite(dtype, bytes + static_cast<size_t>(begin) * element, static_cast<size_t>(end - begin))) finite = false;
  });
  if (!finite) return false;
  // A view of the mapped bytes; copy_ converts to the parameter's dtype.
  param.copy_(torch::from_blob(const_cast<uint8_t*>(bytes), shape, torch::TensorOptions().dtype(torch_type(dtype))));
  return true;
}

}  // namespace

bool parallel_copy_if_finite(Dtype dtype, const void* src, void* dst, int64_t count) {
  // A resume reads GBs, and one core alone copies a few GB/s. Slices keep
  // a thread's early stop close to the first non-finite value.
  constexpr int64_t kSlice = int64_t{1} << 16;
  const size_t element = dtype_bits(dtype) / 8;
  // Past a core's cache, the target's lines are streamed: a resume's
  // gigabytes would evict each other before the first step reads them.
  constexpr size_t kStreamBytes = size_t{1} << 20;
  const bool stream = static_cast<size_t>(count) * element >= kStreamBytes;
  const auto copy = stream ? stream_copy_if_finite : copy_if_finite;
  const auto* source = static_cast<const uint8_t*>(src);
  auto* target = static_cast<uint8_t*>(dst);
  std::atomic<bool> finite{true};
  at::parallel_for(0, count, kSlice, [&](int64_t begin, int64_t end) {
    for (int64_t at = begin; at < end && finite.load(std::memory_order_relaxed); at += kSlice) {
      const size_t offset = static_cast<size_t>(at) * element;
      if (!copy(dtype, source + offset, target + offset, static_cast<size_t>(std::min(kSlice, end - at)))) {
        finite = false;
      }
    }
  });
  return finite;
}

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
    if (!load_if_finite(spec.dtype, tensor.file->data(*tensor.info), spec.shape, param)) {
      throw InputError(fmt::format("'{}': tensor '{}' in {} holds NaN or infinite values", dir, name, tensor.file->path()));
    }
    tensor.file->check_intact();  // a shard truncated by another program while it was read
  }
  for (const auto& name : model.tensor_names()) {
    if (!expected.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos) {
      throw InputError(fmt::format("'{}' has tensor '{}', which this model does not have; is the shape right?", dir, name));
    }
  }
}

ChecksumManifest save_hf_weights(const torch::nn::Module& module, const model::Shape& shape, const std::string& dir,
                                 Dtype dtype, int64_t max_shard_size) {
  return save_hf_weights(parameters_of(module), shape, dir, dtype, max_shard_size);
}

ChecksumManifest save_hf_weights(const NamedTensors& named, const model::Shape& shape, const std::string& dir,
                                 Dtype dtype, int64_t max_shard_size) {
  std::vector<TensorSpec> specs;
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, value] : named) {
    auto t = value.detach().to(torch::kCPU).to(torch_type(dtype)).contiguous();
    specs.push_back(TensorSpec{name, dtype, t.sizes().vec()});
    tensors[name] = t;
  }
  const auto shards = plan_shards(specs, max_shard_size);
  ChecksumManifest written;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = shard_file_name(s, shards.size());
    SafetensorsWriter writer((fs::path(dir) / name).string(), shards[s]);
    for (const auto& info : writer.layout()) {
      const torch::Tensor& t = tensors.at(info.spec.name);
      writer.write(info.spec.name, 0, t.data_ptr(), info.spec.nbytes());
    }
    written[name] = writer.finish();
  }
  if (shards.size() > 1) write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), shard_index_json(shards));
  write_file_atomic((fs::path(dir) / "config.json").string(), model::hf_config_json(shape, torch_dtype_name(dtype)).dump(2) + "\n");
  return written;
}

}  // namespace cpt::io
