#pragma once
// AdamW with decoupled weight decay on matrices only (not norms), with its
// moments kept by parameter name so checkpoints are portable. Torch-facing.

#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cpt/train/config.h"

namespace cpt::train {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class AdamW {
 public:
  AdamW(NamedTensors parameters, const OptimizerConfig& config);

  // One update with learning rate `lr`, from each parameter's .grad(); the
  // same arithmetic, in the same order, as torch.optim.AdamW.
  void step(double lr);

  int64_t steps() const { return steps_; }

  // "exp_avg.<name>" and "exp_avg_sq.<name>" for every parameter.
  NamedTensors state() const;
  // Restores moments saved by state(); throws InputError naming a missing
  // or misshapen one.
  void load_state(const std::map<std::string, torch::Tensor>& state, int64_t steps);

 private:
  NamedTensors parameters_;
  OptimizerConfig config_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
};

// Scales all gradients so their global L2 norm is at most `max_norm`, as
// torch.nn.utils.clip_grad_norm_ does; returns the norm before clipping.
// max_norm <= 0 only measures.
double clip_grad_norm(const NamedTensors& parameters, double max_norm);

}  // namespace cpt::train
