#pragma once
// Data parallelism over a process group, as DDP and ZeRO-1 do it.
//
// Parameters and gradients each live in one flat fp32 buffer, parameters in
// reverse order so that backward finishes the buffer front to back. The
// gradient buffer is cut into buckets (distributed.bucket_mb); during the
// backward of the last micro-batch of a step, a hook on each parameter's
// gradient accumulator starts a bucket's all-reduce as soon as all its
// gradients are final, so communication overlaps the rest of backward.
// Buckets start in index order on every rank, as collectives must.
//
// With ZeRO-1 each rank owns a contiguous 1/N of the flat buffer: after
// backward one reduce-scatter leaves each rank the summed gradients of its
// range only (no bucket overlap: the buckets do not split evenly over the
// ranks' ranges); the optimizer holds moments for that range and updates
// only it, and an all-gather then gives every rank the new weights. The
// traffic is that of one all-reduce, as with DDP.
// Torch-facing.

#include <memory>
#include <vector>

#include "cpt/dist/process_group.h"
#include "cpt/train/optimizer.h"

namespace cpt::train {

class DataParallel {
 public:
  // Moves `parameters` into the flat buffers (their values are kept) and
  // installs the gradient hooks. The parameters must outlive this object.
  DataParallel(dist::ProcessGroup& group, const NamedTensors& parameters, bool zero1, int64_t bucket_bytes);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  dist::ProcessGroup& group() { return group_; }
  const NamedTensors& parameters() const { return parameters_; }

  // What this rank's optimizer updates: every parameter whole, or its
  // ZeRO-1 range cut at parameter boundaries.
  std::vector<ParamSlice> owned_slices() const;
  bool sharded() const { return zero1_; }

  // Starts a step: gradients to zero, nothing in flight.
  void zero_grad();
  // The backward that follows is the step's last: its hooks start the
  // bucket all-reduces.
  void sync_during_next_backward();
  // Starts any bucket not yet started, waits for all and averages the
  // gradients over the ranks. Every rank then holds the same gradients.
  void finish_gradient_sync();
  // Clips the gradients to a global L2 norm of `max_norm` (0: no clipping)
  // and returns the norm before clipping. With ZeRO-1 the norm is summed
  // over the ranks' ranges, the only gradients that are final.
  double clip_grad_norm(double max_norm);
  // After the optimizer step with ZeRO-1: every rank gets every range.
  void gather_parameters();

  // Mean of `value` over the ranks.
  double mean(double value);

  // Of the last step's gradient buckets, how many the hooks started while
  // backward was still running (the rest started after it).
  size_t buckets() const;
  size_t buckets_started_during_backward() const { return started_during_backward_; }

 private:
  struct Buckets;
  void on_gradient_ready(size_t parameter);

  dist::ProcessGroup& group_;
  NamedTensors parameters_;
  bool zero1_;
  torch::Tensor flat_params_, flat_grads_;
  torch::Tensor owned_grads_;  // ZeRO-1: this rank's range, as the reduce-scatter leaves it
  std::vector<int64_t> offsets_;  // of each parameter in the flat buffers
  std::shared_ptr<Buckets> buckets_;
  size_t started_during_backward_ = 0;
};

}  // namespace cpt::train
