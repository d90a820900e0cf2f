#include "cpt/io/config.h"

#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::io {

void validate(const CheckpointConfig& config) {
  if (config.every_steps < 0) {
    throw ConfigValueError("checkpoint.every_steps",
                           fmt::format("{} is invalid; use a step count > 0, or 0 to save only at the end",
                                       config.every_steps));
  }
  if (config.keep_last < 0) {
    throw ConfigValueError("checkpoint.keep_last",
                           fmt::format("{} is invalid; use a count > 0, or 0 to keep every checkpoint",
                                       config.keep_last));
  }
  if (config.max_shard_size.value <= 0) {
    throw ConfigValueError("checkpoint.max_shard_size",
                           fmt::format("{} is invalid; it must be > 0 bytes (e.g. 5GB)", config.max_shard_size.value));
  }
  if (config.dtype != "fp32" && config.dtype != "bf16") {
    throw ConfigValueError("checkpoint.dtype", fmt::format("'{}' is not valid; use one of: fp32, bf16", config.dtype));
  }
}

}  // namespace cpt::io
