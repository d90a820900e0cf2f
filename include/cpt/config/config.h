#pragma once
// The whole run configuration: one typed struct per module, read once from
// YAML (plus --set overrides), resolved and validated in one place.

#include <cstdint>
#include <string>
#include <vector>

#include "cpt/data/config.h"
#include "cpt/dist/config.h"
#include "cpt/io/config.h"
#include "cpt/model/config.h"
#include "cpt/train/config.h"

namespace cpt::config {

struct RunConfig {
  std::string name = "cpt-run";         // shows in logs and checkpoint metadata
  std::string output_dir = "runs/cpt";  // config.resolved.yaml, metrics.jsonl, checkpoints/
  int64_t seed = 1234;                  // model init, data shuffles, dropout-free RNG streams

  template <class V>
  void fields(V& v) {
    v("name", name);
    v("output_dir", output_dir);
    v("seed", seed);
  }
};

struct Config {
  RunConfig run;
  model::Config model;
  std::string tokenizer;  // SentencePiece .model; copied into every checkpoint
  data::Config data;
  train::Config train;
  train::OptimizerConfig optimizer;
  train::ScheduleConfig schedule;
  io::CheckpointConfig checkpoint;
  train::EvalConfig eval;
  dist::Config distributed;
  std::string backend = "auto";  // auto | cpu | cuda | neuron
  train::LoggingConfig logging;

  template <class V>
  void fields(V& v) {
    v("run", run);
    v("model", model);
    v("tokenizer", tokenizer);
    v("data", data);
    v("train", train);
    v("optimizer", optimizer);
    v("schedule", schedule);
    v("checkpoint", checkpoint);
    v("eval", eval);
    v("distributed", distributed);
    v("backend", backend);
    v("logging", logging);
  }
};

struct LoadOptions {
  std::vector<std::string> overrides;  // "--set" values: "optimizer.lr=3e-5", "optimizer.betas=[0.9,0.95]"
  int world_size = 1;                  // data-parallel ranks the batch must split over
};

struct Loaded {
  Config config;
  std::string source;                 // the YAML file it came from
  std::vector<std::string> warnings;  // inputs a real run needs that do not exist yet
};

// Reads, overrides, resolves and validates. Every failure is an InputError
// whose message is one line: "file:line: key: what is wrong and what is valid".
Loaded load_file(const std::string& path, const LoadOptions& options = {});

// The same from YAML text; `source` names it in messages.
Loaded load_text(const std::string& yaml, const std::string& source, const LoadOptions& options = {});

// Files the run reads (tokenizer, data shards) that are not there; the model
// weights are checked while resolving the shape.
std::vector<std::string> missing_inputs(const Config& config);

}  // namespace cpt::config
