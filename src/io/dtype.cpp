#include "cpt/io/dtype.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "cpt/common/vector_clones.h"

namespace cpt::io {

namespace {

struct DtypeInfo {
  Dtype dtype;
  const char* name;
  size_t bits;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::kBool, "BOOL", 8},     {Dtype::kU8, "U8", 8},         {Dtype::kI8, "I8", 8},
    {Dtype::kF8E5M2, "F8_E5M2", 8}, {Dtype::kF8E4M3, "F8_E4M3", 8}, {Dtype::kI16, "I16", 16},
    {Dtype::kU16, "U16", 16},      {Dtype::kF16, "F16", 16},      {Dtype::kBF16, "BF16", 16},
    {Dtype::kI32, "I32", 32},      {Dtype::kU32, "U32", 32},      {Dtype::kF32, "F32", 32},
    {Dtype::kI64, "I64", 64},      {Dtype::kU64, "U64", 64},      {Dtype::kF64, "F64", 64},
};

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u = bits_of(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_f32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return float_of(sign | 0x7F800000u | (mantissa << 13));  // inf / NaN
  if (exponent == 0) {
    if (mantissa == 0) return float_of(sign);
    // Subnormal: value = mantissa * 2^-24.
    const float value = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -value : value;
  }
  return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);  // NaN
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504: inf
  if (abs < 0x38800000u) {
    // Below the smallest normal (2^-14): a subnormal in units of 2^-24. The
    // product is exact, and nearbyint rounds ties to even in the default
    // rounding mode; 1024 carries into the smallest normal, as it should.
    const float units = float_of(abs) * 16777216.0f;
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(units)));
  }
  uint32_t mantissa = abs & 0x7FFFFFu;
  uint32_t exponent = (abs >> 23) - 112;
  uint32_t half = (exponent << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // ties to even; may carry into the exponent
  return static_cast<uint16_t>(sign | half);
}

}  // namespace

const char* dtype_name(Dtype dtype) {
  for (const auto& info : kDtypes) {
    if (info.dtype == dtype) return info.name;
  }
  return "?";
}

std::optional<Dtype> parse_dtype(const std::string& name) {
  for (const auto& info : kDtypes) {
    if (name == info.name) return info.dtype;
  }
  return std::nullopt;
}

size_t dtype_bits(Dtype dtype) {
  for (const auto& info : kDtypes) {
    if (info.dtype == dtype) return info.bits;
  }
  return 0;
}

bool is_float(Dtype dtype) {
  return dtype == Dtype::kF16 || dtype == Dtype::kBF16 || dtype == Dtype::kF32 || dtype == Dtype::kF64;
}

namespace {

// A float is NaN or infinite exactly when its exponent bits are all ones,
// that is when its bits without the sign are at least the exponent's: the
// largest of those over a range tells for the whole range. A max
// reduction vectorises (and beside a copy runs at the copy's speed), where
// a per-element test and flag did not; the loops are cloned for AVX2 and
// AVX-512 and picked at load time (GCC; clang takes the portable loop).

template <class Bits>
inline Bits largest_magnitude(const Bits* from, Bits* to, size_t count) {
  constexpr Bits kMagnitude = static_cast<Bits>(static_cast<Bits>(~Bits{0}) >> 1);  // all but the sign
  Bits largest = 0;
  if (to == nullptr) {
    for (size_t i = 0; i < count; ++i) largest = std::max<Bits>(largest, from[i] & kMagnitude);
  } else {
    for (size_t i = 0; i < count; ++i) {
      const Bits value = from[i];
      to[i] = value;
      largest = std::max<Bits>(largest, value & kMagnitude);
    }
  }
  return largest;
}

CPT_VECTOR_CLONES uint16_t largest_magnitude16(const uint16_t* from, uint16_t* to, size_t count) {
  return largest_magnitude(from, to, count);
}
CPT_VECTOR_CLONES uint32_t largest_magnitude32(const uint32_t* from, uint32_t* to, size_t count) {
  return largest_magnitude(from, to, count);
}
CPT_VECTOR_CLONES uint64_t largest_magnitude64(const uint64_t* from, uint64_t* to, size_t count) {
  return largest_magnitude(from, to, count);
}

// Copies `count` elements from `src` to `dst` (none when dst is null);
// whether all of them are finite.
bool finite_copy(Dtype dtype, const void* src, void* dst, size_t count) {
  switch (dtype) {
    case Dtype::kF32:
      return largest_magnitude32(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), count) < 0x7f800000u;
    case Dtype::kBF16:
      return largest_magnitude16(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), count) < 0x7f80u;
    case Dtype::kF16:
      return largest_magnitude16(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), count) < 0x7c00u;
    case Dtype::kF64:
      return largest_magnitude64(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), count) <
             0x7ff0000000000000ull;
    default:
      if (dst != nullptr) std::memcpy(dst, src, count * dtype_bits(dtype) / 8);
      return true;
  }
}

}  // namespace

bool copy_if_finite(Dtype dtype, const void* src, void* dst, size_t count) { return finite_copy(dtype, src, dst, count); }

bool all_finite(Dtype dtype, const void* data, size_t count) { return finite_copy(dtype, data, nullptr, count); }

std::optional<Dtype> parse_torch_dtype(const std::string& name) {
  static const std::pair<const char*, Dtype> names[] = {
      {"bfloat16", Dtype::kBF16}, {"bf16", Dtype::kBF16},    {"float16", Dtype::kF16}, {"fp16", Dtype::kF16},
      {"half", Dtype::kF16},      {"float32", Dtype::kF32},  {"fp32", Dtype::kF32},    {"float", Dtype::kF32},
      {"float64", Dtype::kF64},
  };
  for (const auto& [text, dtype] : names) {
    if (name == text) return dtype;
  }
  return std::nullopt;
}

const char* torch_dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::kBF16: return "bfloat16";
    case Dtype::kF16: return "float16";
    case Dtype::kF32: return "float32";
    case Dtype::kF64: return "float64";
    default: return dtype_name(dtype);
  }
}

void to_f32(Dtype dtype, const void* src, float* dst, size_t count) {
  switch (dtype) {
    case Dtype::kF32: std::memcpy(dst, src, count * 4); return;
    case Dtype::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case Dtype::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case Dtype::kF64: {
      const auto* s = static_cast<const double*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    default: throw std::invalid_argument(std::string("cannot convert ") + dtype_name(dtype) + " to F32");
  }
}

void from_f32(Dtype dtype, const float* src, void* dst, size_t count) {
  switch (dtype) {
    case Dtype::kF32: std::memcpy(dst, src, count * 4); return;
    case Dtype::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < count; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case Dtype::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < count; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case Dtype::kF64: {
      auto* d = static_cast<double*>(dst);
      for (size_t i = 0; i < count; ++i) d[i] = static_cast<double>(src[i]);
      return;
    }
    default: throw std::invalid_argument(std::string("cannot convert F32 to ") + dtype_name(dtype));
  }
}

}  // namespace cpt::io
