#include "cpt/train/adamw_kernel.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace cpt::train {
namespace {

uint16_t bits_of(float f) { return static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16); }

// Round to nearest, ties to even, by the definition: compare the dropped
// low half with half a unit of the kept part.
uint16_t reference_bf16(float f) {
  if (std::isnan(f)) return 0x7FC0;
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t kept = u >> 16, dropped = u & 0xFFFF;
  if (dropped > 0x8000 || (dropped == 0x8000 && (kept & 1))) return static_cast<uint16_t>(kept + 1);
  return static_cast<uint16_t>(kept);
}

TEST(AdamWKernel, Bf16RoundingIsNearestEvenWithNanAndOverflow) {
  const float one_and_half_ulp = std::bit_cast<float>(0x3F818000u);  // halfway between 0x3F81 and 0x3F82: up to even
  const float half_ulp_above_even = std::bit_cast<float>(0x3F808000u);  // halfway between 0x3F80 and 0x3F81: stays
  EXPECT_EQ(float_to_bf16(one_and_half_ulp), 0x3F82);
  EXPECT_EQ(float_to_bf16(half_ulp_above_even), 0x3F80);
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80) << "rounds up to infinity";
  EXPECT_EQ(float_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(float_to_bf16(std::nanf("")), 0x7FC0);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  std::mt19937 rng(3);
  for (int i = 0; i < 100000; ++i) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    ASSERT_EQ(float_to_bf16(f), reference_bf16(f)) << std::bit_cast<uint32_t>(f);
  }
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xC040), -3.0f);
}

// The kernel over sizes around its vector widths, both gradient types,
// against the formula in double precision.
TEST(AdamWKernel, MatchesTheUpdateFormulaForBf16AndFp32Gradients) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (size_t n : {size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{1000}, size_t{4099}}) {
    for (int step = 1; step <= 3; ++step) {
      std::vector<float> param(n), m(n), v(n), grad32(n);
      std::vector<uint16_t> grad16(n), out(n);
      for (size_t i = 0; i < n; ++i) {
        param[i] = normal(rng);
        m[i] = 0.1f * normal(rng);
        v[i] = 0.01f * std::abs(normal(rng));
        grad16[i] = bits_of(normal(rng));
        grad32[i] = normal(rng);
      }
      const double lr = 3e-3, wd = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, scale = 0.7;
      AdamWStepScalars s;
      s.step_size = static_cast<float>(lr / (1 - std::pow(beta1, step)));
      s.bias_correction2_sqrt = static_cast<float>(std::sqrt(1 - std::pow(beta2, step)));
      s.beta1 = static_cast<float>(beta1);
      s.beta2 = static_cast<float>(beta2);
      s.eps = static_cast<float>(eps);
      s.decay_factor = static_cast<float>(1 - lr * wd);
      s.grad_scale = static_cast<float>(scale);
      for (const bool bf16 : {true, false}) {
        std::vector<float> p = param, mm = m, vv = v;
        if (bf16) {
          adamw_update(s, n, grad16.data(), p.data(), mm.data(), vv.data(), out.data());
        } else {
          adamw_update(s, n, grad32.data(), p.data(), mm.data(), vv.data(), out.data());
        }
        for (size_t i = 0; i < n; ++i) {
          const double g = (bf16 ? bf16_to_float(grad16[i]) : grad32[i]) * scale;
          const double m_ref = beta1 * m[i] + (1 - beta1) * g;
          const double v_ref = beta2 * v[i] + (1 - beta2) * g * g;
          const double p_ref = param[i] * (1 - lr * wd) -
                               lr * (m_ref / (1 - std::pow(beta1, step))) /
                                   (std::sqrt(v_ref / (1 - std::pow(beta2, step))) + eps);
          ASSERT_NEAR(mm[i], m_ref, 1e-6 * (1 + std::abs(m_ref))) << n << " " << i;
          ASSERT_NEAR(vv[i], v_ref, 1e-6 * v_ref + 1e-12) << n << " " << i;
          ASSERT_NEAR(p[i], p_ref, 1e-6 * (1 + std::abs(p_ref))) << n << " " << i;
          ASSERT_EQ(out[i], float_to_bf16(p[i])) << "the bf16 parameter is the cast of the new master";
          ASSERT_NE(p[i], param[i]) << "every element moved";
        }
      }
    }
  }
}

TEST(AdamWKernel, SumOfSquaresOfBf16ValuesAtEverySizeAroundItsLanesAndBlocks) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{1023}, size_t{1024},
                   size_t{1025}, size_t{100000}}) {
    std::vector<uint16_t> x(n);
    double reference = 0;
    for (auto& b : x) {
      b = bits_of(normal(rng));
      reference += static_cast<double>(bf16_to_float(b)) * bf16_to_float(b);
    }
    EXPECT_NEAR(bf16_sum_of_squares(x.data(), n), reference, 1e-6 * reference) << n;
  }
  const uint16_t big[] = {bits_of(3.0f), bits_of(-4.0f)};
  EXPECT_EQ(bf16_sum_of_squares(big, 2), 25.0);
  const uint16_t with_inf[] = {bits_of(1.0f), 0x7F80};
  EXPECT_TRUE(std::isinf(bf16_sum_of_squares(with_inf, 2))) << "a non-finite gradient shows in the norm";
}

}  // namespace
}  // namespace cpt::train
