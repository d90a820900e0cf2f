#pragma once
// safetensors element types, and conversion of the float ones to and from
// fp32 (the precision merges and checkpoints compute in).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace cpt::io {

enum class Dtype {
  kBool, kU8, kI8, kF8E5M2, kF8E4M3, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kI64, kU64, kF64,
};

const char* dtype_name(Dtype dtype);                       // "BF16", as in the header
std::optional<Dtype> parse_dtype(const std::string& name);  // from a header string
size_t dtype_bits(Dtype dtype);

// True for F16, BF16, F32 and F64: the types converted to and from fp32.
bool is_float(Dtype dtype);

// Whether none of `count` elements of a float type (is_float) is NaN or
// infinite: one read pass over the bytes, nothing allocated.
bool all_finite(Dtype dtype, const void* data, size_t count);
// Copies `count` elements of `dtype` from `src` to `dst` (which must not
// overlap) and says whether all were finite, in one pass over the source.
bool copy_if_finite(Dtype dtype, const void* src, void* dst, size_t count);
// The same with stores that bypass the cache (non-temporal), for a target
// far larger than the cache and not read again soon, as a checkpoint's
// gigabytes are: an ordinary store reads each line of the target before
// writing it, a third of the copy's memory traffic. Falls back to
// copy_if_finite where the CPU or type has no streaming kernel.
bool stream_copy_if_finite(Dtype dtype, const void* src, void* dst, size_t count);

// "bfloat16" / "bf16", "float16" / "fp16" / "half", "float32" / "fp32" / "float",
// as mergekit and transformers' torch_dtype spell them.
std::optional<Dtype> parse_torch_dtype(const std::string& name);
const char* torch_dtype_name(Dtype dtype);  // "bfloat16", for config.json

// Converts `count` elements; rounding to F16/BF16 is to nearest even, as torch does.
void to_f32(Dtype dtype, const void* src, float* dst, size_t count);
void from_f32(Dtype dtype, const float* src, void* dst, size_t count);

}  // namespace cpt::io
