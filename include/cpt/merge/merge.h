#pragma once
// `cpt-train merge`: plans a mergekit-style merge over Hugging Face model
// directories, checks everything it can before any work, then streams the
// output tensor by tensor into sharded safetensors.

#include <cstdint>
#include <functional>
#include <string>

namespace cpt::merge {

struct MergeOptions {
  std::string config;                       // mergekit YAML
  std::string output;                       // directory for the merged model
  uint64_t seed = 0;                        // DARE's random drop
  int threads = 0;                          // 0: one per core
  int64_t max_shard_size = 5'000'000'000;   // bytes per output shard
};

struct MergeProgress {
  int64_t tensors_done = 0;
  int64_t tensors_total = 0;
  uint64_t bytes_done = 0;   // output bytes
  uint64_t bytes_total = 0;
  double seconds = 0;
};

struct MergeReport {
  int64_t tensors = 0;
  uint64_t output_bytes = 0;
  uint64_t input_bytes = 0;  // bytes of every input tensor the merge reads
  size_t shards = 0;
  double seconds = 0;
};

// Throws InputError for a bad config or inputs (nothing is left under
// `output`); the output appears under its name only when complete.
MergeReport merge_models(const MergeOptions& options, const std::function<void(const MergeProgress&)>& on_progress = {});

}  // namespace cpt::merge
