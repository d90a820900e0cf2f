#pragma once
// The held-out sets that `eval` and `merge --sweep` score, opened as the
// trainer opens them, so both reproduce the values training logged.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "progress.h"
#include "cpt/config/config.h"
#include "cpt/data/samples.h"
#include "cpt/train/inference.h"

namespace cpt::cli {

struct EvalSet {
  std::string name;
  std::string prefix;
  int64_t max_batches = 0;  // 0: every window
};

// The run's data.eval sets.
std::vector<EvalSet> run_eval_sets(const config::Config& run);

// The set's shard as windows of seq_len, after checking that every id is
// inside the model's vocabulary. Throws InputError naming the prefix.
std::unique_ptr<const data::SourceSamples> open_eval_set(const EvalSet& set, int64_t seq_len, int64_t vocab_size);

// Reports scoring on `progress`: the set's windows, rate and ETA, prefixed
// with `label`.
train::EvalProgress eval_progress(ProgressLine& progress, const std::string& label,
                                  std::chrono::steady_clock::time_point job_start);

}  // namespace cpt::cli
