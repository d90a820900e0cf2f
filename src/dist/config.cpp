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
}

}  // namespace cpt::dist
