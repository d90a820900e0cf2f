#pragma once
// Which token shards feed training and evaluation, and how they are cut.

#include <cstdint>
#include <string>
#include <vector>

namespace cpt::data {

struct Source {
  std::string name;    // label in logs and metrics
  std::string prefix;  // Megatron shard: <prefix>.bin + <prefix>.idx
  double weight = 1.0; // share of training samples, normalised over sources

  template <class V>
  void fields(V& v) {
    v("name", name);
    v("prefix", prefix);
    v("weight", weight);
  }
};

struct EvalSet {
  std::string name;          // metrics key: eval/<name>/loss
  std::string prefix;        // Megatron shard held out from training
  int64_t max_batches = 50;  // caps eval cost on large held-out sets

  template <class V>
  void fields(V& v) {
    v("name", name);
    v("prefix", prefix);
    v("max_batches", max_batches);
  }
};

struct Config {
  int64_t seq_len = 4096;        // packed tokens per sample (targets are shifted by one)
  std::vector<Source> sources;   // required: at least one
  std::vector<EvalSet> eval;     // optional; domain and general sets show forgetting

  template <class V>
  void fields(V& v) {
    v("seq_len", seq_len);
    v("sources", sources);
    v("eval", eval);
  }
};

// Throws ConfigValueError with keys like "data.sources[1].weight".
void validate(const Config& config);

}  // namespace cpt::data
