#pragma once
// Checkpoints: <output_dir>/checkpoints/step-00000500/ in Hugging Face layout
// plus trainer_state/ (optimizer moments, step, data position). A directory
// appears under its final name only when complete; `latest` is written last.
// Torch-facing.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cpt/data/blender.h"
#include "cpt/model/llama.h"
#include "cpt/train/optimizer.h"

namespace cpt::train {

struct TrainerState {
  int64_t step = 0;            // optimizer steps done
  int64_t tokens = 0;          // training tokens consumed
  data::BlendState data;       // where the blended stream continues
  int64_t nonfinite_in_row = 0;
  std::string config_hash;     // of the resolved config, to warn when it changed
};

struct CheckpointPaths {
  std::string root;  // <output_dir>/checkpoints
  std::string step_dir(int64_t step) const;
};

// Writes a complete checkpoint and then `latest`, and removes all but the
// newest `keep_last` (0 keeps all). Returns the checkpoint's directory.
std::string save_checkpoint(const CheckpointPaths& paths, model::Llama& model, const AdamW& optimizer,
                            const TrainerState& state, const std::string& tokenizer, int64_t max_shard_size,
                            int64_t keep_last);

// The directory `latest` names, if any.
std::optional<std::string> latest_checkpoint(const CheckpointPaths& paths);

// Loads weights, optimizer moments and trainer state. Throws InputError
// naming the file on anything missing or malformed.
TrainerState load_checkpoint(const std::string& dir, model::Llama& model, AdamW& optimizer);

}  // namespace cpt::train
