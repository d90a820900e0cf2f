// AdamW's fused kernel on every device against its formula. (Whole train
// steps against torch.optim.AdamW are TrainStep.MatchesTorchAdamWWithClippingStepByStep.)

#include "cpt/train/optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "cpt/backend/backend.h"
#include "support/devices.h"

namespace cpt::train {
namespace {

// A matrix (decayed) and a vector (not decayed), with gradients.
NamedTensors make_parameters(const c10::Device& device) {
  torch::manual_seed(7);
  NamedTensors parameters = {{"w", torch::randn({64, 48})}, {"norm", torch::randn({48})}};
  for (auto& [name, p] : parameters) p = p.to(device).requires_grad_();
  return parameters;
}

void set_gradients(NamedTensors& parameters, int step) {
  torch::manual_seed(100 + step);
  for (auto& [name, p] : parameters) p.mutable_grad() = torch::randn_like(p);
}

// AdamW's arithmetic (torch.optim.AdamW's documented update), element by
// element in double precision.
struct ReferenceAdamW {
  std::vector<std::vector<double>> param, m, v;
  void step(const std::vector<std::vector<double>>& grads, double lr, const OptimizerConfig& c, int t,
            const std::vector<bool>& decayed) {
    for (size_t i = 0; i < param.size(); ++i) {
      for (size_t j = 0; j < param[i].size(); ++j) {
        if (decayed[i]) param[i][j] *= 1 - lr * c.weight_decay;
        m[i][j] = c.betas[0] * m[i][j] + (1 - c.betas[0]) * grads[i][j];
        v[i][j] = c.betas[1] * v[i][j] + (1 - c.betas[1]) * grads[i][j] * grads[i][j];
        const double m_hat = m[i][j] / (1 - std::pow(c.betas[0], t)), v_hat = v[i][j] / (1 - std::pow(c.betas[1], t));
        param[i][j] -= lr * m_hat / (std::sqrt(v_hat) + c.eps);
      }
    }
  }
};

std::vector<double> values(const torch::Tensor& t) {
  const auto flat = t.detach().to(torch::kCPU, torch::kDouble).contiguous().view({-1});
  return {flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel()};
}

class AdamWOnDevice : public ::testing::TestWithParam<std::string> {};

// The fused kernel on each device against the formula, over five steps
// with a changing learning rate.
TEST_P(AdamWOnDevice, FusedKernelMatchesTheUpdateFormula) {
  CPT_REQUIRE_DEVICE(GetParam());
  const c10::Device device(GetParam());
  OptimizerConfig config;
  config.weight_decay = 0.1;
  NamedTensors parameters = make_parameters(device);
  ReferenceAdamW reference;
  std::vector<bool> decayed;
  for (const auto& [name, p] : parameters) {
    reference.param.push_back(values(p));
    reference.m.emplace_back(p.numel(), 0.0);
    reference.v.emplace_back(p.numel(), 0.0);
    decayed.push_back(p.dim() >= 2);
  }
  AdamW optimizer(parameters, config);
  for (int step = 0; step < 5; ++step) {
    set_gradients(parameters, step);
    std::vector<std::vector<double>> grads;
    for (const auto& [name, p] : parameters) grads.push_back(values(p.grad()));
    const double lr = 1e-2 * (step + 1);
    optimizer.step(lr);
    reference.step(grads, lr, config, step + 1, decayed);
  }
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto ours = values(parameters[i].second);
    double worst = 0;
    for (size_t j = 0; j < ours.size(); ++j) worst = std::max(worst, std::abs(ours[j] - reference.param[i][j]));
    EXPECT_LT(worst, 2e-6) << parameters[i].first << " on " << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, AdamWOnDevice, testing::all_devices(), testing::device_test_name);

TEST(AdamW, DecaysMatricesOnlyAndSkipsParametersWithoutGradients) {
  OptimizerConfig config;
  config.weight_decay = 0.5;
  NamedTensors parameters = make_parameters(c10::Device(c10::DeviceType::CPU));
  const auto w0 = parameters[0].second.detach().clone(), norm0 = parameters[1].second.detach().clone();
  AdamW optimizer(parameters, config);
  // Zero gradient: Adam's own update is 0, so only the decay moves a weight.
  for (auto& [name, p] : parameters) p.mutable_grad() = torch::zeros_like(p);
  optimizer.step(0.1);
  EXPECT_TRUE(torch::allclose(parameters[0].second, w0 * (1 - 0.1 * 0.5)));
  EXPECT_TRUE(torch::equal(parameters[1].second, norm0));
  // A parameter without a gradient is left alone, moments and all.
  parameters[0].second.mutable_grad() = torch::ones_like(parameters[0].second);
  parameters[1].second.mutable_grad() = torch::Tensor();
  optimizer.step(0.1);
  EXPECT_TRUE(torch::equal(parameters[1].second, norm0));
  EXPECT_EQ(optimizer.steps(), 2);
}

// A found_inf of 1 (a device scalar, as the train step passes it) skips
// the whole update, step count included; the next finite step continues as
// if the skipped one had not happened.
TEST(AdamW, FoundInfSkipsTheUpdateWithoutTheHost) {
  OptimizerConfig config;
  config.weight_decay = 0.1;
  NamedTensors skipped = make_parameters(c10::Device(c10::DeviceType::CPU));
  NamedTensors straight = make_parameters(c10::Device(c10::DeviceType::CPU));
  AdamW with_skip(skipped, config), without(straight, config);
  set_gradients(skipped, 0);
  set_gradients(straight, 0);
  with_skip.step(0.01, torch::zeros({}));
  without.step(0.01);
  const auto before = skipped[0].second.detach().clone();
  const auto moments_before = with_skip.state()[0].values.clone();
  for (auto& [name, p] : skipped) p.mutable_grad().fill_(std::nanf(""));
  with_skip.step(0.01, torch::ones({}));
  EXPECT_TRUE(torch::equal(skipped[0].second, before)) << "weights untouched";
  EXPECT_TRUE(torch::equal(with_skip.state()[0].values, moments_before)) << "moments untouched";
  EXPECT_EQ(with_skip.steps(), 1);
  set_gradients(skipped, 1);
  set_gradients(straight, 1);
  with_skip.step(0.01, torch::zeros({}));
  without.step(0.01);
  EXPECT_EQ(with_skip.steps(), 2);
  for (size_t i = 0; i < skipped.size(); ++i) EXPECT_TRUE(torch::equal(skipped[i].second, straight[i].second)) << i;
}

// The one-pass host update (slices that publish a bf16 parameter, as
// DataParallel gives them in bf16 on one process) against the fused kernel
// on fp32 copies of the same gradients: the same masters to rounding, the
// bf16 parameter exactly their cast, the clipping scale and a skipped step
// honoured alike.
TEST(AdamW, OnePassHostUpdateOfBf16ParametersMatchesTheFusedKernel) {
  OptimizerConfig config;
  config.weight_decay = 0.1;
  NamedTensors reference = make_parameters(c10::Device(c10::DeviceType::CPU));
  std::vector<ParamSlice> slices;
  std::vector<torch::Tensor> bf16_grads;
  for (const auto& [name, p] : reference) {
    bf16_grads.push_back(torch::zeros(p.sizes(), torch::kBFloat16));
    const auto publish = torch::zeros(p.sizes(), torch::kBFloat16);
    slices.push_back({name, p.detach().clone(), bf16_grads.back(), 0, p.dim() >= 2, publish});
  }
  AdamW one_pass(slices, config), fused(reference, config);
  const auto scale = torch::full({}, 0.5f);  // a power of two: multiplying and dividing by its inverse agree exactly
  for (int step = 0; step < 4; ++step) {
    set_gradients(reference, step);
    for (size_t i = 0; i < reference.size(); ++i) {
      bf16_grads[i].copy_(reference[i].second.grad());
      reference[i].second.mutable_grad() = bf16_grads[i].to(torch::kFloat);  // the values the bf16 gradient holds
    }
    const auto skip = torch::full({}, step == 2 ? 1.0f : 0.0f);
    one_pass.step(1e-2 * (step + 1), skip, scale);
    fused.step(1e-2 * (step + 1), skip, scale);
  }
  EXPECT_EQ(one_pass.steps(), 3);
  for (size_t i = 0; i < slices.size(); ++i) {
    EXPECT_TRUE(torch::allclose(slices[i].master, reference[i].second.detach(), 1e-6, 1e-7))
        << slices[i].name << ": " << (slices[i].master - reference[i].second.detach()).abs().max();
    EXPECT_TRUE(torch::equal(slices[i].publish, slices[i].master.to(torch::kBFloat16))) << slices[i].name;
    const auto ours = one_pass.state(), theirs = fused.state();
    // Moments of order 1 (the gradients are N(0, 1)): within an fp32 rounding of each other.
    EXPECT_TRUE(torch::allclose(ours[2 * i].values, theirs[2 * i].values, 1e-6, 2e-7)) << ours[2 * i].key;
    EXPECT_TRUE(torch::allclose(ours[2 * i + 1].values, theirs[2 * i + 1].values, 1e-6, 1e-12)) << ours[2 * i + 1].key;
  }
}

TEST(AdamW, OnePassHostUpdateRefusesSlicesItCannotUpdate) {
  const auto master = torch::zeros({4, 4});
  const auto bf16 = torch::zeros({4, 4}, torch::kBFloat16);
  ParamSlice publishing{"a", master, bf16, 0, true, bf16.clone()};
  ParamSlice plain{"b", torch::zeros({4}), torch::zeros({4}), 0, false, {}};
  EXPECT_THROW(AdamW({publishing, plain}, OptimizerConfig{}), c10::Error) << "all slices publish, or none";
  ParamSlice strided{"c", master, bf16, 0, true, torch::zeros({4, 8}, torch::kBFloat16).narrow(1, 0, 4)};
  EXPECT_THROW(AdamW({strided}, OptimizerConfig{}), c10::Error) << "a strided parameter";
  ParamSlice half_grads{"d", master, torch::zeros({4, 4}, torch::kHalf), 0, true, bf16.clone()};
  EXPECT_THROW(AdamW({half_grads}, OptimizerConfig{}), c10::Error) << "fp16 gradients";
}

}  // namespace
}  // namespace cpt::train
