#pragma once
// `cpt-train merge`: plans a mergekit-style merge over Hugging Face model
// directories, checks everything it can before any work, then streams the
// output tensor by tensor into sharded safetensors.

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cpt/io/safetensors.h"
#include "cpt/merge/config.h"

namespace cpt::merge {

struct MergeOptions {
  std::string config;                       // mergekit YAML
  std::string output;                       // directory for the merged model (not for merge_into)
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

using MergeProgressFn = std::function<void(const MergeProgress&)>;

// Throws InputError for a bad config or inputs (nothing is left under
// `output`); the output appears under its name only when complete.
MergeReport merge_models(const MergeOptions& options, const MergeProgressFn& on_progress = {});
// The same for a config already loaded (options.config names it in messages).
MergeReport merge_models(const MergeConfig& config, const MergeOptions& options, const MergeProgressFn& on_progress = {});

// Refuses an --output that is inside an input model or a non-empty
// directory, or cannot be created, before any work.
void check_merge_output(const MergeConfig& config, const std::string& output);

// What merge_models would write, planned with every check but no work: the
// config.json of the merged model and its tensors.
struct MergePlan {
  nlohmann::json model_config;
  std::vector<io::TensorSpec> tensors;
};
MergePlan plan_merge(const MergeConfig& config);

// Runs the merge into memory instead of files: `destination` gives, once per
// output tensor, where its numel() fp32 values go. They are the values
// merge_models writes (rounded through the tensor's output dtype), so a
// model built from them equals the merged model loaded from disk.
using TensorDestination = std::function<float*(const io::TensorSpec& tensor)>;
MergeReport merge_into(const MergeConfig& config, const MergeOptions& options, const TensorDestination& destination,
                       const MergeProgressFn& on_progress = {});

}  // namespace cpt::merge
