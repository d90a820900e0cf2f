#pragma once
// When and how checkpoints are written.

#include <cstdint>
#include <string>

#include "cpt/common/bytes.h"

namespace cpt::io {

struct CheckpointConfig {
  int64_t every_steps = 500;                  // 0 = only at the end and on a signal
  int64_t keep_last = 3;                      // older step-* directories are deleted; 0 keeps all
  Bytes max_shard_size{5'000'000'000};       // per safetensors shard; "5GB" as Hugging Face writes it
  // The model files' dtype: fp32 (the master weights themselves) or bf16
  // (half the size, as released models ship; the fp32 master then goes
  // into trainer_state/master/ so a resume stays exact).
  std::string dtype = "fp32";

  template <class V>
  void fields(V& v) {
    v("every_steps", every_steps);
    v("keep_last", keep_last);
    v("max_shard_size", max_shard_size);
    v("dtype", dtype);
  }
};

void validate(const CheckpointConfig& config);

}  // namespace cpt::io
