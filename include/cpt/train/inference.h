#pragma once
// Sanity checks of a checkpoint: perplexity on held-out text and sampled
// continuations. Torch-facing.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cpt/backend/backend.h"
#include "cpt/data/samples.h"
#include "cpt/dist/process_group.h"
#include "cpt/model/llama.h"

namespace cpt::train {

// A model loaded from a Hugging Face directory (ours or any Llama).
model::Llama load_model(const std::string& dir);

struct PerplexityResult {
  int64_t windows = 0;
  int64_t tokens = 0;  // tokens scored
  double loss = 0;     // mean token cross-entropy, nats
  double ppl = 0;
};

// Scores `tokens` in non-overlapping windows of seq_len (each window's
// tokens predict their successors), as llama.cpp's perplexity tool does.
// `on_batch` (optional) hears (windows scored, windows in all) after each batch.
using EvalProgress = std::function<void(int64_t done, int64_t total)>;
PerplexityResult perplexity(model::Llama& model, const std::vector<int64_t>& tokens, int64_t seq_len, int64_t batch,
                            const EvalProgress& on_batch = {});

// The in-training evaluation: the mean token loss over the first
// max_batches micro-batches of `set`'s windows (all of them when
// max_batches is 0); the ranks of `group` take turns at the batches.
// `cpt-train eval` of a run's eval sets calls the same function, so it
// reproduces the logged values.
PerplexityResult evaluate_windows(model::Llama& model, const data::SourceSamples& set, int64_t micro_batch,
                                  int64_t max_batches, dist::ProcessGroup& group, const backend::Backend& device,
                                  const EvalProgress& on_batch = {});

struct SamplingOptions {
  int64_t max_new_tokens = 128;
  double temperature = 0.8;  // 0: greedy
  double top_p = 0.95;
  uint64_t seed = 0;
  int64_t stop_token = -1;   // EOS; -1 never stops early
};

// Why generation ended.
enum class StopReason { kMaxNewTokens, kStopToken, kContextFull };
const char* describe(StopReason reason);

// Continues `prompt` (token ids) one token at a time, until max_new_tokens,
// the stop token, or the model's context (max_position_embeddings) is full;
// `stopped` (if given) says which.
std::vector<int64_t> generate(model::Llama& model, std::vector<int64_t> prompt, const SamplingOptions& options,
                              StopReason* stopped = nullptr);

}  // namespace cpt::train
