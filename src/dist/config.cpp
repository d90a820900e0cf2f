#include "cpt/dist/config.h"

#include <fmt/format.h>
#include <string>
#include <vector>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::dist {

void validate(const Config& config) {
  std::vector<std::string> valid(std::begin(kProcessGroupBackends), std::end(kProcessGroupBackends));
  bool known = false;
  for (const auto& name : valid) known = known || name == config.backend;
  if (!known) {
    throw ConfigValueError("distributed.backend",
                           fmt::format("'{}' is not a process-group backend; valid: {}", config.backend, join(valid, ", ")));
  }
  if (config.timeout_s <= 0) {
    throw ConfigValueError("distributed.timeout_s", fmt::format("{} is invalid; it must be > 0 seconds",
                                                                config.timeout_s));
  }
  if (config.master_port < 0 || config.master_port > 65535) {
    throw ConfigValueError("distributed.master_port",
                           fmt::format("{} is not a port; use 1..65535, or 0 to take MASTER_PORT or derive it",
                                       config.master_port));
  }
  if (!(config.bucket_mb > 0) || config.bucket_mb > 4096) {
    throw ConfigValueError("distributed.bucket_mb", fmt::format("{} is invalid; use a size in (0, 4096] MB",
                                                                config.bucket_mb));
  }
}

}  // namespace cpt::dist
