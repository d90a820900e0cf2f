#include "eval_sets.h"

#include <fmt/format.h>

#include <algorithm>

#include "cpt/common/error.h"
#include "cpt/data/indexed_dataset.h"

namespace cpt::cli {

std::vector<EvalSet> run_eval_sets(const config::Config& run) {
  std::vector<EvalSet> sets;
  for (const auto& e : run.data.eval) sets.push_back({e.name, e.prefix, e.max_batches});
  return sets;
}

std::unique_ptr<const data::SourceSamples> open_eval_set(const EvalSet& set, int64_t seq_len, int64_t vocab_size) {
  auto dataset = std::make_shared<const data::IndexedDataset>(set.prefix);
  // Ids past the embedding table would index out of it.
  std::vector<int64_t> chunk(1 << 20);
  for (int64_t offset = 0; offset < dataset->tokens(); offset += static_cast<int64_t>(chunk.size())) {
    const int64_t count = std::min<int64_t>(static_cast<int64_t>(chunk.size()), dataset->tokens() - offset);
    dataset->read_tokens(offset, count, chunk.data());
    for (int64_t i = 0; i < count; ++i) {
      const int64_t id = chunk[static_cast<size_t>(i)];
      if (id < 0 || id >= vocab_size) {
        throw InputError(fmt::format("{}: token id {} is outside the model's vocabulary of {}", set.prefix, id, vocab_size));
      }
    }
  }
  auto samples = std::make_unique<const data::SourceSamples>(set.name, dataset, seq_len, 0, /*shuffle=*/false);
  if (samples->samples_per_epoch() == 0) {
    throw InputError(fmt::format("{}: {} tokens are fewer than one window of seq_len + 1 = {}; lower --seq-len",
                                 set.prefix, dataset->tokens(), seq_len + 1));
  }
  return samples;
}

train::EvalProgress eval_progress(ProgressLine& progress, const std::string& label,
                                  std::chrono::steady_clock::time_point job_start) {
  const auto set_start = std::chrono::steady_clock::now();
  return [&progress, label, set_start, job_start](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    const double rate = static_cast<double>(done) / std::max(std::chrono::duration<double>(now - set_start).count(), 1e-9);
    progress.update(fmt::format("{}: {}/{} windows, {:.1f} windows/s, ETA {:.0f}s", label, done, total, rate,
                                static_cast<double>(total - done) / std::max(rate, 1e-9)),
                    std::chrono::duration<double>(now - job_start).count());
  };
}

}  // namespace cpt::cli
