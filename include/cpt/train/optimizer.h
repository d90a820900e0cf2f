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

// What the optimizer updates of parameter `name`: elements [offset,
// offset + master.numel()) of it, flattened. `master` is the fp32 copy the
// update writes: the parameter itself in fp32 training, or (bf16 training)
// the optimizer's master weights, which the caller casts into the bf16
// parameters after each step. A whole slice keeps the parameter's shape, a
// partial one is 1-D.
struct ParamSlice {
  std::string name;
  torch::Tensor master;
  // master's shape; undefined: master.grad(), read at each step. fp32, or
  // (with `publish`) the bf16 gradients themselves.
  torch::Tensor grad;
  int64_t offset = 0;
  bool decayed = false;  // weight decay applies (matrices, not norms)
  // bf16 on the host, master's shape: the parameter the update also writes,
  // in the same pass (adamw_kernel.h). Undefined: the caller casts.
  torch::Tensor publish;
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
  // Every parameter whole, updated in place from its .grad(): one process,
  // fp32, no sharding.
  AdamW(const NamedTensors& parameters, const OptimizerConfig& config);

  // One update with learning rate `lr` by ATen's fused kernel
  // (_fused_adamw_, torch.optim.AdamW(fused=True)): it reads each element
  // once, where the multi-tensor form reads it about ten times. CPU and CUDA
  // both have it. `found_inf`, a device scalar (1: skip), lets the kernel
  // skip the update without the host reading anything; the step count then
  // stays where it was, on the device too. `grad_scale` (a float scalar,
  // undefined: 1) multiplies the gradients: clipping folded into the update.
  //
  // Slices that `publish` are updated by one pass of adamw_update instead,
  // on the host: gradient read in bf16, clipped, master, moments and the
  // bf16 parameter written at once.
  void step(double lr, const torch::Tensor& found_inf = {}, const torch::Tensor& grad_scale = {});

  // Updates applied. Reads the device's count: a host sync.
  int64_t steps() const;
  const std::vector<ParamSlice>& slices() const { return slices_; }

  std::vector<MomentSlice> state() const;
  // Restores the moments: `read(key, offset, out)` must fill `out` with
  // elements [offset, offset + out.numel()) of that moment, flattened, or
  // throw InputError naming what is missing.
  using MomentReader = std::function<void(const std::string& key, int64_t offset, torch::Tensor& out)>;
  void load_state(const MomentReader& read, int64_t steps);

 private:
  void step_on_host(double lr, const torch::Tensor& found_inf, const torch::Tensor& grad_scale);

  std::vector<ParamSlice> slices_;
  OptimizerConfig config_;
  bool on_host_ = false;  // the slices publish: step_on_host
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  // The fused kernel reads the step count from a device scalar per tensor:
  // views of one vector, so one add moves them all.
  torch::Tensor step_count_vector_;
  std::vector<torch::Tensor> step_counts_;
  int64_t host_steps_ = 0;  // without slices there is no device count
};


}  // namespace cpt::train
