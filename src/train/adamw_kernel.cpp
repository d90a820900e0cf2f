#include "cpt/train/adamw_kernel.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "cpt/common/vector_clones.h"

namespace cpt::train {

namespace {

// Cloned for AVX2 and AVX-512 and picked at load time (GCC): the loops
// below vectorise at 8 or 16 elements. This file is compiled with
// -ffp-contract=off (CMakeLists.txt): no clone fuses a multiply and an add,
// so every clone computes the same correctly rounded fp32 operations in the
// same order and they agree bit for bit, whatever CPU a rank runs on.

inline float widen(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
inline float widen(float value) { return value; }

// Round to nearest even; NaN stays a (quiet) NaN. Branch-free so it vectorises.
inline uint16_t narrow(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>(value != value ? 0x7FC0u : rounded);
}

template <typename Grad>
inline void update(const AdamWStepScalars& s, size_t n, const Grad* __restrict__ grad, float* __restrict__ param,
                   float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq, uint16_t* __restrict__ bf16_param) {
  const float one_minus_beta1 = 1.0f - s.beta1, one_minus_beta2 = 1.0f - s.beta2;
  for (size_t i = 0; i < n; ++i) {
    const float g = widen(grad[i]) * s.grad_scale;
    const float m = exp_avg[i] + one_minus_beta1 * (g - exp_avg[i]);
    const float v = s.beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g;
    const float denom = std::sqrt(v) / s.bias_correction2_sqrt + s.eps;
    const float p = param[i] * s.decay_factor - s.step_size * m / denom;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = p;
    bf16_param[i] = narrow(p);
  }
}

// Sixteen lanes of fp32 partial sums (element i in lane i % 16) over at
// most kBlock values.
constexpr size_t kLanes = 16, kBlock = 1024;

inline double block_sum_of_squares(const uint16_t* __restrict__ x, size_t n) {
  float lanes[kLanes] = {};
  const size_t whole = n / kLanes * kLanes;
  for (size_t i = 0; i < whole; i += kLanes) {
    for (size_t k = 0; k < kLanes; ++k) {
      const float v = widen(x[i + k]);
      lanes[k] += v * v;
    }
  }
  for (size_t i = whole; i < n; ++i) lanes[i - whole] += widen(x[i]) * widen(x[i]);
  double total = 0;
  for (float lane : lanes) total += lane;
  return total;
}

}  // namespace

CPT_VECTOR_CLONES void adamw_update(const AdamWStepScalars& s, size_t n, const uint16_t* bf16_grad, float* param,
                                    float* exp_avg, float* exp_avg_sq, uint16_t* bf16_param) {
  update(s, n, bf16_grad, param, exp_avg, exp_avg_sq, bf16_param);
}

CPT_VECTOR_CLONES void adamw_update(const AdamWStepScalars& s, size_t n, const float* grad, float* param,
                                    float* exp_avg, float* exp_avg_sq, uint16_t* bf16_param) {
  update(s, n, grad, param, exp_avg, exp_avg_sq, bf16_param);
}

// Blocks of kBlock values (64 per lane), each added into the double
// total: fp32 lanes vectorise, and the order is fixed by the indices alone,
// not by threads or the clone.
CPT_VECTOR_CLONES double bf16_sum_of_squares(const uint16_t* x, size_t n) {
  double total = 0;
  for (size_t begin = 0; begin < n; begin += kBlock) {
    total += block_sum_of_squares(x + begin, std::min(kBlock, n - begin));
  }
  return total;
}

float bf16_to_float(uint16_t bits) { return widen(bits); }
uint16_t float_to_bf16(float value) { return narrow(value); }

}  // namespace cpt::train
