// AdamW's two kernels: the foreach form everywhere, ATen's fused one where
// the LibTorch and the device have it. (The foreach form against
// python3-torch is TrainStep.MatchesTorchAdamWWithClippingStepByStep.)

#include "cpt/train/optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cpt/backend/backend.h"

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

// Where this LibTorch has no _fused_adamw_ (1.13: CI's), asking for it is
// refused; where the device has a kernel, it matches the foreach form.
TEST(AdamW, FusedKernelMatchesForeachOrIsRefusedWithoutTheOp) {
  const auto device = backend::select_backend("auto", 0);
  if (!AdamW::fused_built()) {
    EXPECT_FALSE(device->has_fused_adamw());
    NamedTensors parameters = make_parameters(device->device());
    EXPECT_THROW(AdamW(parameters, {}, AdamWKernel::kFused), std::invalid_argument);
    return;
  }
  if (!device->has_fused_adamw()) {
    // The op exists (LibTorch 2.2 or 2.3) but without a CPU kernel.
    EXPECT_EQ(device->name(), "cpu");
    return;
  }
  OptimizerConfig config;
  config.weight_decay = 0.1;
  NamedTensors fused_params = make_parameters(device->device()), foreach_params = make_parameters(device->device());
  AdamW fused(fused_params, config, AdamWKernel::kFused), foreach(foreach_params, config, AdamWKernel::kForeach);
  for (int step = 0; step < 5; ++step) {
    set_gradients(fused_params, step);
    set_gradients(foreach_params, step);
    fused.step(1e-2 * (step + 1));
    foreach.step(1e-2 * (step + 1));
  }
  for (size_t i = 0; i < fused_params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(fused_params[i].second, foreach_params[i].second, 1e-5, 1e-6))
        << fused_params[i].first;
  }
  const auto a = fused.state(), b = foreach.state();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i].values, b[i].values, 1e-5, 1e-7)) << a[i].key;
}

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

}  // namespace
}  // namespace cpt::train
