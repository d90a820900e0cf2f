// What the per-source training loss costs a step: the same train_step
// with and without its accounting (per-row sums of the token losses,
// index_add into a per-source tensor on the device), alternating, on the
// same batches. Prints the median step time of each and their ratio.
//
// Usage: bench_source_loss [--hidden 768] [--layers 12] [--vocab 32000] [--seq 512] [--micro 4] [--steps 12]

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpt/backend/backend.h"
#include "cpt/dist/process_group.h"
#include "cpt/model/llama.h"
#include "cpt/train/data_parallel.h"
#include "cpt/train/optimizer.h"
#include "cpt/train/trainer.h"

using namespace cpt;

int main(int argc, char** argv) {
  int64_t hidden = 768, layers = 12, vocab = 32000, seq = 512, micro = 4, steps = 12;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int64_t value = std::atoll(argv[i + 1]);
    if (flag == "--hidden") hidden = value;
    else if (flag == "--layers") layers = value;
    else if (flag == "--vocab") vocab = value;
    else if (flag == "--seq") seq = value;
    else if (flag == "--micro") micro = value;
    else if (flag == "--steps") steps = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  model::Shape shape;
  shape.hidden_size = hidden;
  shape.intermediate_size = hidden * 8 / 3;
  shape.num_hidden_layers = layers;
  shape.num_attention_heads = hidden / 64;
  shape.num_key_value_heads = hidden / 64;
  shape.vocab_size = vocab;
  shape.max_position_embeddings = seq;
  model::Llama llama(shape);
  llama->init_weights(1);
  train::NamedTensors parameters;
  for (auto& p : llama->named_parameters()) parameters.emplace_back(p.key(), p.value());
  const auto group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
  train::DataParallel replicas(*group, parameters, /*zero1=*/false, 25 << 20);
  train::AdamW optimizer(replicas.owned_slices(), train::OptimizerConfig{});

  torch::manual_seed(3);
  std::vector<data::TorchBatch> batches(2);
  for (auto& b : batches) {
    b.tokens = torch::randint(0, vocab, {micro, seq}, torch::kLong);
    b.targets = torch::randint(0, vocab, {micro, seq}, torch::kLong);
    b.source = torch::randint(0, 2, {micro}, torch::kLong);
  }
  const torch::Tensor sums = torch::zeros({2, 2}, torch::kDouble);
  std::vector<double> with, without;
  train::train_step(llama, optimizer, replicas, batches, {1e-5, 1.0});  // warm-up
  for (int64_t s = 0; s < steps; ++s) {
    for (const bool account : {s % 2 == 0, s % 2 != 0}) {
      train::StepOptions options;
      options.lr = 1e-5;
      options.grad_clip = 1.0;
      if (account) options.source_loss = sums;
      const auto start = std::chrono::steady_clock::now();
      train::train_step(llama, optimizer, replicas, batches, options);
      (account ? with : without).push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("model hidden %lld x %lld layers, vocab %lld, %lld x %lld tokens per micro-batch, 2 micro-batches\n",
              static_cast<long long>(hidden), static_cast<long long>(layers), static_cast<long long>(vocab),
              static_cast<long long>(micro), static_cast<long long>(seq));
  std::printf("median step without per-source loss: %.4f s\n", median(without));
  std::printf("median step with per-source loss:    %.4f s\n", median(with));
  std::printf("ratio with / without: %.4f (goal <= 1.01)\n", median(with) / median(without));
  return 0;
}
