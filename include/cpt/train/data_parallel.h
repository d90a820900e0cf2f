#pragma once
// Data parallelism over a process group, as DDP and ZeRO-1 do it, with
// Megatron's mixed precision: the model computes with parameters in the
// compute dtype (bf16 or fp32) while the optimizer updates fp32 master
// weights.
//
// Parameters and their gradients each live in one flat buffer of the
// compute dtype, parameters in reverse order so that backward finishes the
// buffer front to back. Gradients accumulate over micro-batches there
// (the projections' backward GEMMs add into them directly); the reduction
// over the ranks is in fp32, into the fp32 main gradients the optimizer
// reads. One process in bf16 on the host has no main gradients: the
// optimizer reads the bf16 buffer and writes the bf16 parameters in its
// one pass (adamw_kernel.h).
//
// Without ZeRO-1 the gradient buffer is cut into buckets
// (distributed.bucket_mb): during the backward of the last micro-batch, a
// hook on each parameter's gradient accumulator starts a bucket's
// all-reduce as soon as all its gradients are final, so communication
// overlaps the rest of backward. Buckets start in index order on every
// rank, as collectives must.
//
// With ZeRO-1 each rank owns a contiguous 1/N of the flat buffer: after
// backward a reduce-scatter (in fp32 chunks of bucket_mb) leaves each rank
// the summed gradients of its range only; the fp32 master weights and the
// moments exist for that range only; after the update the rank casts its
// range into the compute-dtype parameters and one all-gather of those
// gives every rank the new weights. The traffic is that of one all-reduce.
// Torch-facing.

#include <memory>
#include <utility>
#include <vector>

#include "cpt/dist/process_group.h"
#include "cpt/train/optimizer.h"

namespace cpt::train {

class DataParallel {
 public:
  // Moves `parameters` into the flat buffers of `compute_dtype` (their fp32
  // values seed the master weights) and installs the gradient hooks. The
  // parameters must outlive this object.
  DataParallel(dist::ProcessGroup& group, const NamedTensors& parameters, bool zero1, int64_t bucket_bytes,
               torch::ScalarType compute_dtype = torch::kFloat);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  dist::ProcessGroup& group() { return group_; }
  const NamedTensors& parameters() const { return parameters_; }
  torch::ScalarType compute_dtype() const { return compute_dtype_; }

  // What this rank's optimizer updates: the fp32 master weights and main
  // gradients of every parameter whole, or of its ZeRO-1 range cut at
  // parameter boundaries. bf16 on the host in one process: the bf16
  // gradients themselves, and the bf16 parameters to `publish`, so the
  // update is one pass (adamw_kernel.h) with no fp32 gradient copy.
  std::vector<ParamSlice> owned_slices() const;
  bool sharded() const { return zero1_; }

  // Starts a step: gradients to zero, nothing in flight.
  void zero_grad();
  // The backward that follows is the step's last: its hooks start the
  // bucket all-reduces.
  void sync_during_next_backward();
  // Starts any bucket not yet started, waits for all, and leaves the fp32
  // mean of the ranks' gradients in this rank's main gradients.
  void finish_gradient_sync();

  // After finish_gradient_sync: one collective for the step's statistics.
  // Returns a device tensor (5) of doubles: the mean over the ranks of
  // `local_loss` (a device scalar), the number of ranks with `stop` set,
  // the global L2 norm of the gradients, 1 when the loss or the norm is not
  // finite (else 0), and the factor that clips the gradients to `max_norm`
  // (1 when `max_norm` <= 0), which the optimizer applies as its
  // grad_scale; the host reads nothing.
  torch::Tensor reduce_statistics(const torch::Tensor& local_loss, bool stop, double max_norm);

  // After the optimizer step: casts this rank's master weights into the
  // parameters (unless the optimizer wrote them: the slices' `publish`)
  // and, with ZeRO-1, all-gathers them so every rank has every range.
  void publish_parameters();

  // The fp32 master weights of every parameter, whole, in the parameters'
  // shapes: views of the master when this rank holds all of them, else
  // (bf16 with ZeRO-1) gathered from the ranks, chunk by chunk, into host
  // memory; every rank must call it then.
  NamedTensors full_master_weights();
  // Sets every parameter, and this rank's master weights, from `values`
  // (whole fp32 tensors by parameter name, e.g. a checkpoint's).
  void load_master_weights(const NamedTensors& values);
  // True when the parameters are fp32 on the host and are the master
  // weights themselves: a load can then write straight into them.
  bool parameters_are_host_master() const;

  // Of the last step's gradient buckets, how many the hooks started while
  // backward was still running (the rest started after it).
  size_t buckets() const;
  size_t buckets_started_during_backward() const { return started_during_backward_; }

 private:
  struct Buckets;
  void on_gradient_ready(size_t parameter);
  void start_bucket(size_t k);
  // Elements [first, second) of the flat buffers: parameter i's part of this rank's range (empty: none).
  std::pair<int64_t, int64_t> owned_part(size_t i) const;
  // Copies parameter i's part of this rank's range from `values` (the whole parameter, flat) into the master.
  void copy_owned_part(size_t i, const torch::Tensor& values);
  bool mixed() const { return compute_dtype_ != torch::kFloat; }

  dist::ProcessGroup& group_;
  NamedTensors parameters_;
  bool zero1_;
  torch::ScalarType compute_dtype_;
  int64_t chunk_elements_;
  torch::Tensor flat_params_, flat_grads_;  // compute dtype, the whole model
  int64_t owned_begin_ = 0, owned_end_ = 0;  // this rank's range of the flat buffers
  // fp32, the owned range: views of flat_params_ / flat_grads_ where those
  // are fp32 and not sharded, else buffers of their own. With
  // update_in_one_pass_, main_grads_ is flat_grads_ (bf16).
  torch::Tensor master_, main_grads_;
  bool update_in_one_pass_ = false;
  std::vector<int64_t> offsets_;  // of each parameter in the flat buffers
  std::shared_ptr<Buckets> buckets_;
  size_t started_during_backward_ = 0;
};

}  // namespace cpt::train
