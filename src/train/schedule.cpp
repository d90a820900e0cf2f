#include "cpt/train/schedule.h"

#include <algorithm>
#include <cmath>

namespace cpt::train {

double learning_rate(const OptimizerConfig& optimizer, const ScheduleConfig& schedule, int64_t step, int64_t total) {
  const double peak = optimizer.lr;
  const double floor = schedule.min_lr_ratio * peak;
  if (schedule.warmup_steps > 0 && step <= schedule.warmup_steps) {
    return peak * static_cast<double>(step) / static_cast<double>(schedule.warmup_steps);
  }
  const int64_t decay_steps = std::max<int64_t>(1, total - schedule.warmup_steps);
  const double progress =
      std::clamp(static_cast<double>(step - schedule.warmup_steps) / static_cast<double>(decay_steps), 0.0, 1.0);
  if (schedule.decay == "constant") return peak;
  if (schedule.decay == "linear") return peak - (peak - floor) * progress;
  if (schedule.decay == "wsd") {
    // Stable at the peak, then a linear decay over the last wsd_decay_ratio of the steps.
    const double start = 1.0 - schedule.wsd_decay_ratio;
    if (progress <= start) return peak;
    return peak - (peak - floor) * (progress - start) / schedule.wsd_decay_ratio;
  }
  return floor + 0.5 * (peak - floor) * (1.0 + std::cos(M_PI * progress));  // cosine
}

}  // namespace cpt::train
