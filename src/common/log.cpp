#include "cpt/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt {

void init_logging(const std::string& level, int rank) {
  std::vector<std::string> valid(std::begin(kLogLevels), std::end(kLogLevels));
  bool known = false;
  for (const auto& name : valid) known = known || name == level;
  if (!known) {
    throw InputError("--log-level '" + level + "' is not a level; use one of: " + join(valid, ", "));
  }
  spdlog::drop("cpt");
  auto logger = spdlog::stderr_color_mt("cpt");
  logger->set_pattern(fmt::format("%Y-%m-%d %H:%M:%S.%e [%^%l%$] [rank {}] %v", rank));
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace cpt
