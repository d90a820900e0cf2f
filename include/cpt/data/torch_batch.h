#pragma once
// The last hand-off of a micro-batch to LibTorch. Only torch-facing code
// includes this header.

#include <torch/types.h>

#include "cpt/data/loader.h"

namespace cpt::data {

struct TorchBatch {
  torch::Tensor tokens;   // (micro_batch, seq_len) int64
  torch::Tensor targets;  // (micro_batch, seq_len) int64
  // (micro_batch, seq_len) int64: position of each token within its document,
  // for position resets; starts at 0 wherever a document begins.
  torch::Tensor positions;
  // Host-side copy of where the documents lie, set by the trainer for
  // document masking before positions move to the device
  // (model::document_segments), so the forward reads nothing back.
  torch::Tensor document_segments;
  torch::Tensor source;  // (micro_batch) int64: the source each row came from
};

// Wraps the batch's buffers without copying: the tensors own the moved-in
// MicroBatch storage. `positions` is filled from the document starts.
TorchBatch to_torch(MicroBatch&& batch);

}  // namespace cpt::data
