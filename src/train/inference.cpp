#include "cpt/train/inference.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fmt/format.h>

#include "cpt/common/error.h"
#include "cpt/io/hf_checkpoint.h"
#include "cpt/model/loss.h"

namespace fs = std::filesystem;

namespace cpt::train {

model::Llama load_model(const std::string& dir) {
  const model::Shape shape = model::read_hf_config((fs::path(dir) / "config.json").string());
  model::validate(shape);
  model::Llama llama(shape);
  io::load_hf_weights(*llama, dir);
  llama->eval();
  return llama;
}

namespace {

// The mean loss of windows (rows, seq) against their targets, the LM head
// fused into the loss: no (rows, seq, vocab) fp32 logits, and no
// log-softmax beside them (at Llama 3's 128k vocabulary, 4 GiB per
// 4096-token row; the head's bf16 output is 1 GiB).
torch::Tensor window_loss(model::Llama& model, const torch::Tensor& tokens, const torch::Tensor& targets) {
  const auto hidden = model->hidden_states(tokens, {}, model::DocumentSegments{});
  return model::fused_linear_cross_entropy(hidden.view({-1, hidden.size(-1)}), model->lm_head_weight(),
                                           targets.reshape({-1}));
}

}  // namespace

PerplexityResult perplexity(model::Llama& model, const std::vector<int64_t>& tokens, int64_t seq_len, int64_t batch,
                            const EvalProgress& on_batch) {
  torch::NoGradGuard no_grad;
  PerplexityResult result;
  const auto windows = static_cast<int64_t>(tokens.size() > 0 ? (tokens.size() - 1) / static_cast<size_t>(seq_len) : 0);
  if (windows == 0) {
    throw InputError(fmt::format("{} tokens are fewer than one window of seq_len + 1 = {}; lower --seq-len",
                                 tokens.size(), seq_len + 1));
  }
  double total = 0;
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t rows = std::min(batch, windows - first);
    auto input = torch::empty({rows, seq_len}, torch::kLong), target = torch::empty({rows, seq_len}, torch::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* window = tokens.data() + (first + r) * seq_len;
      std::memcpy(input[r].data_ptr<int64_t>(), window, static_cast<size_t>(seq_len) * 8);
      std::memcpy(target[r].data_ptr<int64_t>(), window + 1, static_cast<size_t>(seq_len) * 8);
    }
    total += window_loss(model, input, target).item<double>() * static_cast<double>(target.numel());
    if (on_batch) on_batch(first + rows, windows);
  }
  result.windows = windows;
  result.tokens = windows * seq_len;
  result.loss = total / static_cast<double>(result.tokens);
  result.ppl = std::exp(result.loss);
  return result;
}

const char* describe(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxNewTokens: return "--max-new-tokens reached";
    case StopReason::kStopToken: return "the end-of-sequence token was sampled";
    case StopReason::kContextFull: return "the model's context (max_position_embeddings) is full";
  }
  return "";
}

PerplexityResult evaluate_windows(model::Llama& model, const data::SourceSamples& set, int64_t micro_batch,
                                  int64_t max_batches, dist::ProcessGroup& group, const backend::Backend& device,
                                  const EvalProgress& on_batch) {
  torch::NoGradGuard no_grad;
  const int64_t seq = set.seq_len();
  const int64_t samples =
      max_batches > 0 ? std::min(set.samples_per_epoch(), max_batches * micro_batch) : set.samples_per_epoch();
  double total = 0;
  int64_t count = 0;
  std::vector<int64_t> window(static_cast<size_t>(seq + 1));
  for (int64_t first = micro_batch * group.rank(); first < samples; first += micro_batch * group.size()) {
    const int64_t rows = std::min(micro_batch, samples - first);
    auto tokens = torch::empty({rows, seq}, torch::kLong), targets = torch::empty({rows, seq}, torch::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      set.read(first + r, window.data(), nullptr);
      std::memcpy(tokens[r].data_ptr<int64_t>(), window.data(), static_cast<size_t>(seq) * 8);
      std::memcpy(targets[r].data_ptr<int64_t>(), window.data() + 1, static_cast<size_t>(seq) * 8);
    }
    total += window_loss(model, device.to_device(tokens), device.to_device(targets)).item<double>() *
             static_cast<double>(rows);
    count += rows;
    if (on_batch) on_batch(std::min(samples, first + rows + micro_batch * (group.size() - 1)), samples);
  }
  auto sums = torch::tensor({total, static_cast<double>(count)}, torch::kDouble);
  group.all_reduce_sum(sums).wait();
  PerplexityResult result;
  result.windows = static_cast<int64_t>(sums[1].item<double>());
  result.tokens = result.windows * seq;
  result.loss = result.windows > 0 ? sums[0].item<double>() / sums[1].item<double>() : 0.0;
  result.ppl = std::exp(result.loss);
  return result;
}

std::vector<int64_t> generate(model::Llama& model, std::vector<int64_t> tokens, const SamplingOptions& o,
                              StopReason* stopped) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(o.seed);
  const int64_t limit = model->shape().max_position_embeddings;
  StopReason reason = StopReason::kMaxNewTokens;
  for (int64_t n = 0; n < o.max_new_tokens; ++n) {
    if (static_cast<int64_t>(tokens.size()) >= limit) {
      reason = StopReason::kContextFull;
      break;
    }
    // No KV cache: each token re-reads the whole context. Enough to look at a checkpoint.
    const auto input = torch::tensor(tokens, torch::kLong).view({1, -1});
    const auto logits = model->forward(input)[0][-1];  // (vocab)
    int64_t next;
    if (o.temperature <= 0) {
      next = logits.argmax().item<int64_t>();
    } else {
      auto probs = torch::softmax(logits / o.temperature, -1);
      auto [sorted, order] = probs.sort(/*dim=*/-1, /*descending=*/true);
      // Nucleus: keep the smallest prefix whose mass reaches top_p.
      auto cumulative = sorted.cumsum(-1);
      auto outside = (cumulative - sorted) > o.top_p;
      sorted.masked_fill_(outside, 0.0);
      const auto pick = torch::multinomial(sorted / sorted.sum(), 1, false, generator).item<int64_t>();
      next = order[pick].item<int64_t>();
    }
    tokens.push_back(next);
    if (next == o.stop_token) {
      reason = StopReason::kStopToken;
      break;
    }
  }
  if (stopped != nullptr) *stopped = reason;
  return tokens;
}

}  // namespace cpt::train
