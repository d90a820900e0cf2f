#pragma once
// The training run: model, data, optimizer, schedule, eval, checkpoints.
// Torch-facing.

#include <string>
#include <vector>

#include "cpt/config/config.h"
#include "cpt/data/torch_batch.h"
#include "cpt/model/llama.h"
#include "cpt/train/data_parallel.h"
#include "cpt/train/optimizer.h"

namespace cpt::train {

struct StepResult {
  double loss = 0;       // mean token loss over the whole global batch
  double grad_norm = 0;  // before clipping
  bool finite = true;    // false: the update was skipped
};

// One optimizer step over this rank's micro-batches: forward, backward
// (gradients accumulate; each micro-batch weighs by its share of the
// tokens; the last backward all-reduces them over the ranks as it goes),
// global-norm clipping, AdamW at `lr` on this rank's slices, then (ZeRO-1)
// the all-gather of the new weights. A non-finite loss or norm skips the
// update on every rank and leaves the weights untouched. With document_mask,
// tokens attend only within their document and positions restart at each.
struct StepOptions {
  double lr = 0;
  double grad_clip = 0;        // <= 0: no clipping
  bool document_mask = false;
  bool bf16_autocast = false;  // forward in bf16 autocast; weights, gradients and loss stay fp32
};
StepResult train_step(model::Llama& model, AdamW& optimizer, DataParallel& replicas,
                      std::vector<data::TorchBatch>& micro_batches, const StepOptions& options);

struct TrainOptions {
  std::string resume = "auto";  // auto | none | PATH
};

// Runs the whole job as this process's rank of the job torchrun or SLURM
// launched (dist/env.h), or alone. Returns the exit code: 0 done, 75 stopped by SIGTERM
// or SIGUSR1 after saving a checkpoint. Throws InputError for bad inputs.
int run_training(const config::Loaded& loaded, const TrainOptions& options);

}  // namespace cpt::train
