#pragma once
// AdamW with decoupled weight decay on matrices only (not norms), over
// slices of parameters: whole parameters, or (ZeRO-1) the part of each that
// this rank owns. Moments are kept by parameter name and element offset so
// checkpoints load on any number of ranks. Torch-facing.

#include <torch/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cpt/train/config.h"

namespace cpt::train {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Elements [offset, offset + numel) of parameter `name`, flattened.
struct ParamSlice {
  std::string name;
  torch::Tensor param;  // the whole parameter; its .grad() is read at each step
  int64_t offset = 0;
  int64_t numel = 0;
  bool whole() const { return offset == 0 && numel == param.numel(); }
};

// One moment tensor of the optimizer state and where it sits in its
// parameter: the key is "exp_avg.<name>" or "exp_avg_sq.<name>"; a whole
// slice keeps the parameter's shape, a partial one is 1-D.
struct MomentSlice {
  std::string key;
  int64_t offset = 0;
  torch::Tensor values;
};

class AdamW {
 public:
  AdamW(std::vector<ParamSlice> slices, const OptimizerConfig& config);
  // Every parameter whole: one process, no sharding.
  AdamW(const NamedTensors& parameters, const OptimizerConfig& config);

  // One update with learning rate `lr`, from each parameter's .grad(), by
  // ATen's fused kernel (_fused_adamw_, torch.optim.AdamW(fused=True)): it
  // reads each element once, where the multi-tensor form reads it about
  // ten times. CPU and CUDA both have it.
  void step(double lr);

  int64_t steps() const { return steps_; }

  std::vector<MomentSlice> state() const;
  // Restores the moments: `read(key, offset, out)` must fill `out` with
  // elements [offset, offset + out.numel()) of that moment, flattened, or
  // throw InputError naming what is missing.
  using MomentReader = std::function<void(const std::string& key, int64_t offset, torch::Tensor& out)>;
  void load_state(const MomentReader& read, int64_t steps);

 private:
  std::vector<ParamSlice> slices_;
  OptimizerConfig config_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  // The fused kernel reads the step count from a device scalar per tensor:
  // views of one vector, so one fill sets them all.
  torch::Tensor step_count_vector_;
  std::vector<torch::Tensor> step_counts_;
  int64_t steps_ = 0;
};

// Scales all gradients so their global L2 norm is at most `max_norm`, as
// torch.nn.utils.clip_grad_norm_ does; returns the norm before clipping.
// max_norm <= 0 only measures.
double clip_grad_norm(const NamedTensors& parameters, double max_norm);

}  // namespace cpt::train
