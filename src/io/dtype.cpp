#include "cpt/io/dtype.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <utility>

#include "cpt/common/vector_clones.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CPT_STREAMING_STORES 1
#endif

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

// The magnitude (bits without the sign) from which a value of a float
// type is NaN or infinite: its exponent all ones.
uint64_t non_finite_from(Dtype dtype) {
  switch (dtype) {
    case Dtype::kF32: return 0x7f800000u;
    case Dtype::kBF16: return 0x7f80u;
    case Dtype::kF16: return 0x7c00u;
    case Dtype::kF64: return 0x7ff0000000000000ull;
    default: return ~uint64_t{0};  // not a float: nothing to check
  }
}

// Copies `count` elements from `src` to `dst` (none when dst is null);
// whether all of them are finite.
bool finite_copy(Dtype dtype, const void* src, void* dst, size_t count) {
  const uint64_t limit = non_finite_from(dtype);
  switch (dtype) {
    case Dtype::kF32:
      return largest_magnitude32(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), count) < limit;
    case Dtype::kBF16:
    case Dtype::kF16:
      return largest_magnitude16(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), count) < limit;
    case Dtype::kF64:
      return largest_magnitude64(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), count) < limit;
    default:
      if (dst != nullptr) std::memcpy(dst, src, count * dtype_bits(dtype) / 8);
      return true;
  }
}

// The streaming copy's body: `blocks` 64-byte blocks from `from` to `to`
// (64-byte aligned) with non-temporal stores, which write whole lines
// without first reading them into the cache, as an ordinary store must.
// Returns the largest magnitude of the 16- or 32-bit values copied.
using StreamKernel = uint32_t (*)(const uint8_t* from, uint8_t* to, size_t blocks);

#ifdef CPT_STREAMING_STORES

// One template per instruction set; Lane (uint16_t or uint32_t) picks the
// lanes the magnitudes are compared in.
template <class Lane>
__attribute__((target("avx512f,avx512bw"))) uint32_t stream_avx512(const uint8_t* from, uint8_t* to, size_t blocks) {
  constexpr bool k16 = sizeof(Lane) == 2;
  const __m512i magnitude = k16 ? _mm512_set1_epi16(0x7fff) : _mm512_set1_epi32(0x7fffffff);
  __m512i largest = _mm512_setzero_si512();
  for (size_t b = 0; b < blocks; ++b) {
    const __m512i v = _mm512_loadu_si512(from + 64 * b);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(to + 64 * b), v);
    const __m512i m = _mm512_and_si512(v, magnitude);
    if constexpr (k16) {
      largest = _mm512_max_epu16(largest, m);
    } else {
      largest = _mm512_maskz_max_epu32(0xffff, largest, m);  // GCC 12 warns on the unmasked form's undefined operand
    }
  }
  alignas(64) Lane lanes[64 / sizeof(Lane)];
  _mm512_store_si512(lanes, largest);
  _mm_sfence();  // the streamed lines are visible before whatever this thread does next
  return *std::max_element(std::begin(lanes), std::end(lanes));
}

template <class Lane>
__attribute__((target("avx2"))) uint32_t stream_avx2(const uint8_t* from, uint8_t* to, size_t blocks) {
  constexpr bool k16 = sizeof(Lane) == 2;
  const __m256i magnitude = k16 ? _mm256_set1_epi16(0x7fff) : _mm256_set1_epi32(0x7fffffff);
  __m256i largest = _mm256_setzero_si256();
  for (size_t b = 0; b < 2 * blocks; ++b) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(from + 32 * b));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(to + 32 * b), v);
    const __m256i m = _mm256_and_si256(v, magnitude);
    if constexpr (k16) {
      largest = _mm256_max_epu16(largest, m);
    } else {
      largest = _mm256_max_epu32(largest, m);
    }
  }
  alignas(32) Lane lanes[32 / sizeof(Lane)];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), largest);
  _mm_sfence();
  return *std::max_element(std::begin(lanes), std::end(lanes));
}

// The kernel this CPU runs for 16- or 32-bit elements, or null.
StreamKernel stream_kernel(size_t bits) {
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx512) return bits == 16 ? stream_avx512<uint16_t> : stream_avx512<uint32_t>;
  if (avx2) return bits == 16 ? stream_avx2<uint16_t> : stream_avx2<uint32_t>;
  return nullptr;
}

#else

StreamKernel stream_kernel(size_t) { return nullptr; }

#endif

}  // namespace

bool copy_if_finite(Dtype dtype, const void* src, void* dst, size_t count) { return finite_copy(dtype, src, dst, count); }

bool all_finite(Dtype dtype, const void* data, size_t count) { return finite_copy(dtype, data, nullptr, count); }

bool stream_copy_if_finite(Dtype dtype, const void* src, void* dst, size_t count) {
  const bool checked_16_or_32 = dtype == Dtype::kF32 || dtype == Dtype::kBF16 || dtype == Dtype::kF16;
  const size_t element = dtype_bits(dtype) / 8;
  const auto target = reinterpret_cast<uintptr_t>(dst);
  const StreamKernel kernel = checked_16_or_32 ? stream_kernel(element * 8) : nullptr;
  if (kernel == nullptr || target % element != 0) return finite_copy(dtype, src, dst, count);
  // An ordinary copy up to the first 64-byte line of the target, the lines
  // streamed, and an ordinary copy of what is left of the last one.
  const size_t head = std::min(count, (64 - target % 64) % 64 / element);
  const size_t blocks = (count - head) * element / 64;
  const size_t streamed = blocks * 64 / element;
  const auto* from = static_cast<const uint8_t*>(src);
  auto* to = static_cast<uint8_t*>(dst);
  bool finite = finite_copy(dtype, from, to, head);
  finite &= kernel(from + head * element, to + head * element, blocks) < non_finite_from(dtype);
  const size_t done = head + streamed;
  finite &= finite_copy(dtype, from + done * element, to + done * element, count - done);
  return finite;
}

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
