#pragma once
// Hugging Face checkpoints <-> LibTorch parameters. Torch-facing.

#include <torch/nn/module.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cpt/io/checksums.h"
#include "cpt/io/dtype.h"
#include "cpt/model/config.h"

namespace cpt::io {

// Copies every parameter of `module` from the HF directory `dir` (single or
// sharded safetensors; F32/F16/BF16), converting to the parameter's dtype.
// Old conversions' rotary_emb.inv_freq is ignored. Throws InputError naming
// the file for the first missing, unexpected or misshapen tensor, and for
// non-finite values. A cpt-train checkpoint's model files are checked
// against their checksums first (HfModel).
void load_hf_weights(torch::nn::Module& module, const std::string& dir);
// The same for named tensors (e.g. fp32 master weights): each is filled,
// converted to its own dtype; the names must be exactly the directory's.
// `verify_checksums` false when the caller verified the whole checkpoint.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;
void load_hf_weights(NamedTensors& tensors, const std::string& dir, bool verify_checksums = true);

// Copies `count` elements of a float `dtype` from `src` (typically a
// mapped file) to host memory at `dst` over every core, checking them for
// NaN and infinity in the same pass (copy_if_finite). Says whether all
// were finite; stops early when one is not. The load of weights and moments:
// past 1 MiB its stores bypass the cache (stream_copy_if_finite).
bool parallel_copy_if_finite(Dtype dtype, const void* src, void* dst, int64_t count);

// Writes the parameters as HF safetensors (model.safetensors, or
// model-0000K-of-0000N.safetensors + index past max_shard_size) and
// config.json into `dir`, which must exist. Returns the size and CRC-32C
// of each safetensors file (by file name), computed as it was written.
ChecksumManifest save_hf_weights(const torch::nn::Module& module, const model::Shape& shape, const std::string& dir,
                                 Dtype dtype, int64_t max_shard_size);
ChecksumManifest save_hf_weights(const NamedTensors& tensors, const model::Shape& shape, const std::string& dir,
                                 Dtype dtype, int64_t max_shard_size);

}  // namespace cpt::io
