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
// With ZeRO-1 each rank owns a contiguous 1/N of the flat buffer: the
// optimizer holds moments for that range only and updates only it; an
// all-gather then gives every rank the new weights. Gloo has no
// reduce-scatter in LibTorch 1.13, so gradients are all-reduced in full
// either way; the sharding saves optimizer memory, N x on the moments.
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
  std::vector<int64_t> offsets_;  // of each parameter in the flat buffers
  std::shared_ptr<Buckets> buckets_;
  size_t started_during_backward_ = 0;
};

}  // namespace cpt::train
