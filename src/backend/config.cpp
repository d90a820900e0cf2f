#include "cpt/backend/config.h"

#include <fmt/format.h>
#include <vector>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::backend {

void validate_name(const std::string& name) {
  std::vector<std::string> valid(std::begin(kBackendNames), std::end(kBackendNames));
  for (const auto& known : valid) {
    if (known == name) return;
  }
  throw ConfigValueError("backend", fmt::format("'{}' is not a backend; valid: {}", name, join(valid, ", ")));
}

}  // namespace cpt::backend
