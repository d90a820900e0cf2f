#pragma once
// The data-parallel process group: PyTorch's c10d (TCPStore rendezvous at
// rank 0; Gloo collectives, or NCCL in a CUDA build) behind the few
// collectives the trainer uses. One process needs no c10d at all. Torch-facing.

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cpt/common/error.h"
#include "cpt/dist/config.h"
#include "cpt/dist/env.h"

namespace cpt::dist {

// A collective in flight. wait() blocks until it is done; it throws
// PeerFailure when it failed (a peer exited, or did not answer in time).
class Pending {
 public:
  Pending() = default;
  explicit Pending(std::function<void()> wait) : wait_(std::move(wait)) {}
  void wait();

 private:
  std::function<void()> wait_;
};

// The c10d backends this build has: gloo, and nccl in a CUDA build that
// found nccl.h.
std::vector<std::string> built_process_groups();

// The NCCL version this build's LibTorch carries ("2.30.7"); empty without NCCL.
std::string nccl_version();

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  // Joins the job `env` describes: a TCPStore at master_addr:master_port
  // (rank 0 serves it), then a config.backend (gloo | nccl) group over it. Every wait for a peer is
  // bounded by config.timeout_s. world_size 1 returns a local group.
  static std::unique_ptr<ProcessGroup> connect(const LaunchEnv& env, const Config& config);

  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual std::string backend_name() const = 0;

  // Sums `tensor` over the ranks, in place, asynchronously.
  virtual Pending all_reduce_sum(at::Tensor tensor) = 0;
  // Sums inputs[r] over the ranks into rank r's `output`, asynchronously:
  // one input per rank, each of output's shape and dtype.
  virtual Pending reduce_scatter_sum(at::Tensor output, std::vector<at::Tensor> inputs) = 0;
  // outputs[r] receives rank r's `local`; all have local's shape.
  virtual void all_gather(const at::Tensor& local, std::vector<at::Tensor> outputs) = 0;
  virtual void barrier() = 0;

 protected:
  ProcessGroup(int rank, int size) : rank_(rank), size_(size) {}

 private:
  int rank_, size_;
};

}  // namespace cpt::dist
