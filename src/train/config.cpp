#include "cpt/train/config.h"

#include <cmath>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::train {

namespace {

void require_positive(const char* key, int64_t value) {
  if (value <= 0) throw ConfigValueError(key, fmt::format("{} is invalid; it must be > 0", value));
}

void require_non_negative(const char* key, int64_t value, const char* zero_means) {
  if (value < 0) throw ConfigValueError(key, fmt::format("{} is invalid; it must be >= 0 ({})", value, zero_means));
}

template <size_t N>
void require_one_of(const char* key, const std::string& value, const char* const (&valid)[N]) {
  std::vector<std::string> names(std::begin(valid), std::end(valid));
  for (const auto& name : names) {
    if (name == value) return;
  }
  throw ConfigValueError(key, fmt::format("'{}' is not valid; use one of: {}", value, join(names, ", ")));
}

void require_range(const char* key, double value, double low, double high, bool low_open, bool high_open) {
  bool ok = std::isfinite(value) && (low_open ? value > low : value >= low) && (high_open ? value < high : value <= high);
  if (!ok) {
    throw ConfigValueError(key, fmt::format("{} is invalid; it must be in {}{}, {}{}", value, low_open ? "(" : "[", low,
                                            high, high_open ? ")" : "]"));
  }
}

}  // namespace

void validate(const Config& c) {
  require_positive("train.global_batch_size", c.global_batch_size);
  require_positive("train.micro_batch_size", c.micro_batch_size);
  require_positive("train.steps", c.steps);
  require_non_negative("train.tokens", c.tokens, "0 means use train.steps");
  require_one_of("train.precision", c.precision, kPrecisions);
  if (c.activation_checkpointing == "true" || c.activation_checkpointing == "false") {
    // The key was a bool before selective recompute existed.
    throw ConfigValueError("train.activation_checkpointing",
                           fmt::format("'{}' is no longer valid; use {} (or selective)", c.activation_checkpointing,
                                       c.activation_checkpointing == "true" ? "full" : "none"));
  }
  require_one_of("train.activation_checkpointing", c.activation_checkpointing, kActivationCheckpointing);
  require_positive("train.max_nonfinite_steps", c.max_nonfinite_steps);
}

void validate(const OptimizerConfig& c) {
  if (!std::isfinite(c.lr) || c.lr <= 0.0) {
    throw ConfigValueError("optimizer.lr", fmt::format("{} is invalid; the learning rate must be > 0", c.lr));
  }
  require_range("optimizer.betas[0]", c.betas[0], 0.0, 1.0, false, true);
  require_range("optimizer.betas[1]", c.betas[1], 0.0, 1.0, false, true);
  require_range("optimizer.eps", c.eps, 0.0, 1.0, true, true);
  require_range("optimizer.weight_decay", c.weight_decay, 0.0, 1.0, false, false);
  if (!std::isfinite(c.grad_clip) || c.grad_clip < 0.0) {
    throw ConfigValueError("optimizer.grad_clip",
                           fmt::format("{} is invalid; use a norm > 0, or 0 to disable clipping", c.grad_clip));
  }
}

void validate(const ScheduleConfig& c) {
  require_non_negative("schedule.warmup_steps", c.warmup_steps, "0 means no warmup");
  require_one_of("schedule.decay", c.decay, kDecays);
  require_range("schedule.min_lr_ratio", c.min_lr_ratio, 0.0, 1.0, false, false);
  require_range("schedule.wsd_decay_ratio", c.wsd_decay_ratio, 0.0, 1.0, true, false);
}

void validate(const EvalConfig& c) {
  require_non_negative("eval.every_steps", c.every_steps, "0 means only at the end");
}

void validate(const LoggingConfig& c) {
  require_positive("logging.every_steps", c.every_steps);
  if (!std::isfinite(c.peak_tflops) || c.peak_tflops < 0.0) {
    throw ConfigValueError("logging.peak_tflops",
                           fmt::format("{} is invalid; use the device's peak in TFLOP/s, or 0 to look it up or "
                                       "measure it",
                                       c.peak_tflops));
  }
}

}  // namespace cpt::train
