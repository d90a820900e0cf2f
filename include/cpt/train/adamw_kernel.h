#pragma once
// The fp32 master's share of a bf16 step on the host, in one pass per
// element: AdamW reads the bf16 gradient as it is (no fp32 copy), scales it
// by the clipping factor, updates the fp32 master and moments, and writes
// the new bf16 parameter. Done with ATen's ops this is five passes (copy
// to fp32, clip, _fused_adamw_, cast back, plus the norm), a tenth of a
// ~100M-parameter bf16 step on two cores. Pure C++: the caller splits the
// elements over threads.
#include <cstddef>
#include <cstdint>

namespace cpt::train {

struct AdamWStepScalars {
  float step_size = 0;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt = 1;  // sqrt(1 - beta2^t)
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float decay_factor = 1;           // 1 - lr * weight_decay (AdamW's decoupled decay)
  float grad_scale = 1;             // multiplies the gradient: the clipping factor
};

// The formula is _fused_adamw_'s (torch.optim.AdamW(fused=True)), in fp32:
//   p = p * decay_factor
//   m = m + (1 - beta1) * (g - m)
//   v = beta2 * v + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
// with g = grad * grad_scale; `bf16_param` receives p rounded to bf16
// (nearest even, as c10::BFloat16). No two arrays may overlap.
void adamw_update(const AdamWStepScalars& s, size_t n, const uint16_t* bf16_grad, float* param, float* exp_avg,
                  float* exp_avg_sq, uint16_t* bf16_param);
void adamw_update(const AdamWStepScalars& s, size_t n, const float* grad, float* param, float* exp_avg,
                  float* exp_avg_sq, uint16_t* bf16_param);

// Σ x² over n bf16 values, in double.
double bf16_sum_of_squares(const uint16_t* x, size_t n);

// c10::BFloat16's conversions, here so the pure C++ part needs no LibTorch.
float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);

}  // namespace cpt::train
