#pragma once
// Checkpoints: <output_dir>/checkpoints/step-00000500/ in Hugging Face layout
// plus trainer_state/ (optimizer moments, step, data position). A directory
// appears under its final name only when complete; `latest` is written last.
// Torch-facing.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cpt/data/blender.h"
#include "cpt/dist/process_group.h"
#include "cpt/model/config.h"
#include "cpt/train/data_parallel.h"
#include "cpt/train/optimizer.h"
#include "cpt/train/trainer_state.h"

namespace cpt::train {


struct CheckpointPaths {
  std::string root;  // <output_dir>/checkpoints
  std::string step_dir(int64_t step) const;
};

struct SaveOptions {
  std::string tokenizer;         // copied in when set
  std::string base_model;        // model.init_from: its tokenizer and generation files are copied in
  int64_t max_shard_size = 5'000'000'000;
  int64_t keep_last = 0;         // 0 keeps all
  bool sharded_optimizer = false;  // ZeRO-1: each rank writes its own moments
  bool bf16_weights = false;     // checkpoint.dtype bf16: model files in BF16, fp32 master in trainer_state/master/
  std::string resolved_config;   // the saving run's resolved config, kept as trainer_state/config.resolved.yaml
};

// Writes a complete checkpoint and then `latest`, and removes all but the
// newest `keep_last`. Every rank of `group` calls it: rank 0 writes the
// weights and the state; with a sharded optimizer each rank writes
// optimizer-<rank>-of-<world>.safetensors (the directory must be on a file
// system all ranks share). Returns the checkpoint's directory.
// The weights written are `replicas`' fp32 master weights (gathered from
// the ranks under ZeRO-1 in bf16 training), so a resume is exact; with
// bf16_weights the model files hold them rounded to bf16 and
// trainer_state/master/ the fp32 values a resume loads.
std::string save_checkpoint(const CheckpointPaths& paths, const model::Shape& shape, DataParallel& replicas,
                            const AdamW& optimizer, const TrainerState& state, const SaveOptions& options);

// The directory `latest` names, if any.
std::optional<std::string> latest_checkpoint(const CheckpointPaths& paths);

// Checks a checkpoint before it is loaded: state.json parses, and every file
// has the size and CRC-32C it was written with (checkpoints from before
// checksums are accepted with a warning). Throws InputError naming the file.
void verify_checkpoint(const std::string& dir);

// The newest step directory other than `except` that passes verify_checkpoint.
std::optional<std::string> newest_intact_checkpoint(const CheckpointPaths& paths, const std::string& except);

// Loads weights, optimizer moments and trainer state. The moments may have
// been written by any number of ranks; each optimizer reads the ranges it
// owns. Throws InputError naming the file on anything missing or malformed;
// the checksums are verify_checkpoint's job.
// The weights become the master weights and, cast, the parameters.
TrainerState load_checkpoint(const std::string& dir, DataParallel& replicas, AdamW& optimizer);

}  // namespace cpt::train
