#pragma once
// A small training run on random shards, through the real binary, and the
// per-step numbers of its metrics.jsonl. Needs CPT_BINARY.

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/datasets.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt::testing {

// A small run on random shards, through the real binary.
struct SmallRun {
  TempDir dir;
  std::string config;
  SmallRun() {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int32_t> token(3, 255);
    for (const char* name : {"domain", "general", "heldout"}) {
      std::vector<std::vector<int32_t>> docs;
      for (int d = 0; d < 60; ++d) {
        std::vector<int32_t> doc(static_cast<size_t>(20 + d % 17));
        for (auto& t : doc) t = token(rng);
        docs.push_back(doc);
      }
      write_dataset(dir.file(name), docs);
    }
    config = dir.write("run.yaml", fmt::format(R"(run: {{name: t, output_dir: {0}/out, seed: 7}}
model: {{preset: tiny, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 8,
        num_key_value_heads: 2, vocab_size: 256}}
data:
  seq_len: 16
  sources:
    - {{name: domain, prefix: {0}/domain, weight: 0.8}}
    - {{name: general, prefix: {0}/general, weight: 0.2}}
  eval:
    - {{name: general, prefix: {0}/heldout, max_batches: 2}}
train: {{global_batch_size: 4, micro_batch_size: 2, steps: 20, precision: fp32}}
optimizer: {{lr: 3.0e-3}}
schedule: {{warmup_steps: 3}}
checkpoint: {{every_steps: 5, keep_last: 2}}
eval: {{every_steps: 10}}
logging: {{every_steps: 1}}
)", dir.path()));
  }
  CommandResult train(const std::string& output, const std::string& extra = "", const std::string& env = "") const {
    return run_command(fmt::format("{} {} --config {} --set run.output_dir={} {}", env, CPT_BINARY, config, output, extra));
  }
  // The same run as `world` data-parallel ranks on this machine.
  std::vector<CommandResult> train_ranks(int world, const std::string& output, const std::string& extra = "",
                                         const std::vector<std::string>& rank_env = {},
                                         Launcher launcher = Launcher::kTorchrun) const {
    return run_ranks(world, fmt::format("{} --config {} --set run.output_dir={} {}", CPT_BINARY, config, output, extra),
                     rank_env, launcher);
  }
};

// step -> "loss grad_norm lr" from metrics.jsonl (timings excluded).
inline std::map<int64_t, std::string> losses(const std::string& metrics) {
  std::map<int64_t, std::string> out;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (!row.contains("loss")) continue;
    out[row["step"]] = row["loss"].dump() + " " + row["grad_norm"].dump() + " " + row["lr"].dump();
  }
  return out;
}

// step -> the whole metrics row, for numeric comparisons.
inline std::map<int64_t, nlohmann::json> metric_rows(const std::string& metrics) {
  std::map<int64_t, nlohmann::json> out;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    out[row["step"]] = row;
  }
  return out;
}

}  // namespace cpt::testing
