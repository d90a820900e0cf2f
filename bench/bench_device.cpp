// The accelerator benchmark (scripts/device/bench.sh runs it on a GPU; on
// the CPU it runs the same code on a small shape as a smoke check):
//   1. forward/backward agreement of the device (bf16 autocast where it has
//      it) with the CPU in fp32, on a small model with the same weights;
//   2. one full training step (AdamW) of the real shape, to show it fits,
//      with each activation_checkpointing mode (full, selective, none) where memory allows;
//   3. timed steps of the real shape with fewer layers: tokens/s, MFU
//      against --peak-tflops, peak memory; for each activation_checkpointing mode.
//
// Usage: bench_device [--backend auto] [--preset llama2-7b] [--seq 4096]
//                     [--timed-layers 4] [--steps 5] [--peak-tflops 989]

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <spdlog/spdlog.h>
#include <string>

#include "cpt/backend/autocast.h"
#include "cpt/backend/backend.h"
#include "cpt/dist/process_group.h"
#include "cpt/model/llama.h"
#include "cpt/model/presets.h"
#include "cpt/model/shape.h"
#include "cpt/train/data_parallel.h"
#include "cpt/train/optimizer.h"
#include "cpt/train/trainer.h"

using namespace cpt;

namespace {

struct Args {
  std::string backend = "auto", preset = "llama2-7b";
  int64_t seq = 4096, timed_layers = 4, steps = 5;
  double peak_tflops = 989;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--backend") a.backend = value;
    else if (key == "--preset") a.preset = value;
    else if (key == "--seq") a.seq = std::stoll(value);
    else if (key == "--timed-layers") a.timed_layers = std::stoll(value);
    else if (key == "--steps") a.steps = std::stoll(value);
    else if (key == "--peak-tflops") a.peak_tflops = std::stod(value);
    else throw std::invalid_argument("unknown flag " + key);
  }
  return a;
}

// Loss and gradients of one forward/backward of `shape` (weights seeded)
// on `device`, as fp32 host tensors.
std::pair<double, std::vector<torch::Tensor>> forward_backward(const model::Shape& shape, const backend::Backend& device,
                                                               bool bf16, const torch::Tensor& tokens,
                                                               const torch::Tensor& targets) {
  model::Llama llama(shape);
  llama->init_weights(3);
  llama->to(device.device());
  torch::Tensor loss;
  {
    const backend::AutocastScope autocast(device.device().type(), {bf16, torch::kBFloat16});
    const auto logits = llama->forward(device.to_device(tokens));
    loss = torch::nn::functional::cross_entropy(logits.view({-1, shape.vocab_size}), device.to_device(targets).view({-1}));
  }
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : llama->parameters()) grads.push_back(p.grad().to(torch::kCPU).to(torch::kFloat).flatten());
  return {loss.item<double>(), grads};
}

struct StepFigures {
  bool fits = false;
  std::string error;
  double tokens_per_s = 0, mfu = 0, peak_gb = 0;
};

StepFigures train_steps(const model::Shape& shape, int64_t seq, model::Recompute recompute, int64_t steps,
                        backend::Backend& device, bool bf16, double peak_flops) {
  StepFigures out;
  try {
    device.reset_peak_memory();
    model::Llama llama(shape);
    llama->init_weights(1);
    llama->set_activation_checkpointing(recompute);
    llama->to(device.device());
    train::NamedTensors parameters;
    for (auto& p : llama->named_parameters()) parameters.emplace_back(p.key(), p.value());
    const auto group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
    train::DataParallel replicas(*group, parameters, false, 25 << 20, bf16 ? torch::kBFloat16 : torch::kFloat);
    train::AdamW optimizer(replicas.owned_slices(), {});
    std::vector<data::TorchBatch> batch(1);
    batch[0].tokens = device.to_device(torch::randint(0, shape.vocab_size, {1, seq}, torch::kLong));
    batch[0].targets = device.to_device(torch::randint(0, shape.vocab_size, {1, seq}, torch::kLong));
    train::StepOptions options;
    options.lr = 1e-5;
    options.grad_clip = 1.0;
    train::train_step(llama, optimizer, replicas, batch, options);  // warm-up, and the fit check
    device.synchronize();
    out.fits = true;
    const auto timer = device.start_timer();
    for (int64_t i = 0; i < steps; ++i) train::train_step(llama, optimizer, replicas, batch, options);
    timer->stop();
    const double seconds = timer->seconds();
    out.tokens_per_s = steps > 0 ? static_cast<double>(steps * seq) / seconds : 0;
    out.mfu = out.tokens_per_s * model::training_flops_per_token(shape, seq) / peak_flops;
    out.peak_gb = static_cast<double>(device.memory().peak_bytes) / 1e9;
  } catch (const std::exception& e) {
    out.error = std::string(e.what()).substr(0, std::string(e.what()).find('\n'));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const Args args = parse(argc, argv);
  auto device = backend::select_backend(args.backend, 0);
  const bool bf16 = device->supports_bf16();
  std::printf("backend %s (%s), bf16 parameters over fp32 master weights %s, AdamW fused\n\n", device->name().c_str(),
              device->device().str().c_str(), bf16 ? "on" : "off");

  // 1. Agreement with the CPU in fp32.
  model::Shape small;
  small.hidden_size = 256;
  small.intermediate_size = 688;
  small.num_hidden_layers = 2;
  small.num_attention_heads = 8;
  small.num_key_value_heads = 4;
  small.vocab_size = 1000;
  torch::manual_seed(0);
  const auto tokens = torch::randint(0, small.vocab_size, {2, 128}, torch::kLong);
  const auto targets = torch::randint(0, small.vocab_size, {2, 128}, torch::kLong);
  const auto cpu = backend::select_backend("cpu", 0);
  const auto [ref_loss, ref_grads] = forward_backward(small, *cpu, false, tokens, targets);
  const auto [loss, grads] = forward_backward(small, *device, bf16, tokens, targets);
  const auto a = torch::cat(ref_grads).to(torch::kDouble), b = torch::cat(grads).to(torch::kDouble);
  const double cosine = (a * b).sum().item<double>() / (a.norm().item<double>() * b.norm().item<double>());
  const double loss_error = std::abs(loss - ref_loss) / ref_loss;
  bool agrees = loss_error < 2e-2 && cosine > 0.99;
  std::printf("| agreement with CPU fp32 | value | bf16 tolerance |\n| --- | --- | --- |\n");
  std::printf("| loss relative error | %.2e | < 2e-2 |\n| gradient cosine | %.5f | > 0.99 |\n", loss_error, cosine);
  std::printf("\n");

  // 2 and 3. The real shape.
  model::Shape full = model::find_preset(args.preset).shape;
  const double peak = args.peak_tflops * 1e12;
  std::printf("| %s, seq %lld | layers | activation_checkpointing | fits | tokens/s | MFU (vs %.0f TFLOP/s) | peak memory |\n",
              args.preset.c_str(), static_cast<long long>(args.seq), args.peak_tflops);
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  auto row = [&](const char* what, const model::Shape& shape, const char* recompute, int64_t steps) {
    const StepFigures f = train_steps(shape, args.seq, model::parse_recompute(recompute), steps, *device, bf16, peak);
    std::printf("| %s | %lld | %s | %s | %s | %s | %.1f GB |\n", what, static_cast<long long>(shape.num_hidden_layers),
                recompute, f.fits ? "yes" : ("no: " + f.error).c_str(),
                steps > 0 && f.fits ? std::to_string(static_cast<int64_t>(f.tokens_per_s)).c_str() : "-",
                steps > 0 && f.fits ? (std::to_string(static_cast<int>(100 * f.mfu)) + "%").c_str() : "-", f.peak_gb);
    std::fflush(stdout);
  };
  for (const char* recompute : {"full", "selective", "none"}) row("one AdamW step, all layers", full, recompute, 0);
  model::Shape timed = full;
  timed.num_hidden_layers = std::min(full.num_hidden_layers, args.timed_layers);
  for (const char* recompute : {"full", "selective", "none"}) row("timed steps", timed, recompute, args.steps);
  return agrees ? 0 : 1;
}
