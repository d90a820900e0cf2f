#pragma once
// Learning rate at each optimizer step: linear warmup from 0, then cosine,
// linear, constant, or warmup-stable-decay down to min_lr_ratio · lr.

#include <cstdint>

#include "cpt/train/config.h"

namespace cpt::train {

// `step` counts from 1 (the first update); `total` is train.steps.
double learning_rate(const OptimizerConfig& optimizer, const ScheduleConfig& schedule, int64_t step, int64_t total);

}  // namespace cpt::train
