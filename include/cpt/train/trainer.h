#pragma once
// The training run: model, data, optimizer, schedule, eval, checkpoints.
// Torch-facing.

#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cpt/backend/backend.h"
#include "cpt/config/config.h"
#include "cpt/data/torch_batch.h"
#include "cpt/model/llama.h"
#include "cpt/train/data_parallel.h"
#include "cpt/train/optimizer.h"

namespace cpt::train {

struct StepResult {
  double loss = 0;         // mean token loss over the whole global batch
  double grad_norm = 0;    // before clipping
  bool finite = true;      // false: the update was skipped
  int ranks_stopping = 0;  // ranks that passed StepOptions::stop
};

// Where the steps' time goes, from the device's timers (device events on a
// GPU, so timing adds no host sync): the phases of every step, summed until
// take() reads them (that read waits for the device, so the trainer takes
// them only when it logs). Without a device it times nothing.
class StepPhases {
 public:
  enum Phase { kData, kForward, kBackward, kCommunication, kOptimizer, kCount };
  static const char* name(Phase phase);

  explicit StepPhases(const backend::Backend* device = nullptr) : device_(device) {}
  // Ends the running phase, if any, and starts `phase`.
  void start(Phase phase);
  void stop();
  // Seconds per phase since the last take().
  std::array<double, kCount> take();

 private:
  const backend::Backend* device_;
  std::vector<std::pair<Phase, std::unique_ptr<backend::DeviceTimer>>> timers_;
  bool running_ = false;
};

// One optimizer step over this rank's micro-batches: forward, backward
// (gradients accumulate; each micro-batch weighs by its share of the
// tokens; the last backward all-reduces them over the ranks as it goes),
// global-norm clipping, AdamW at `lr` on this rank's fp32 master weights,
// then their cast into the parameters and (ZeRO-1) the all-gather. The
// compute dtype is the replicas'. A non-finite loss or norm skips the
// update on every rank and leaves the weights untouched. The host waits
// for the device once, at the end, to read the loss and norm. With
// document_mask, tokens attend only within their document and positions
// restart at each.
struct StepOptions {
  double lr = 0;
  double grad_clip = 0;  // <= 0: no clipping
  bool document_mask = false;
  bool stop = false;     // this rank asks all to stop (a signal); summed into StepResult
  StepPhases* phases = nullptr;  // times forward, backward, communication and optimizer
  // (sources, 2) float64 on the device, or undefined: each source's sum of
  // token losses and its token count over this rank's rows are added to
  // it, without a host sync (the batches' `source` says whose rows are whose).
  at::Tensor source_loss = at::Tensor();
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
