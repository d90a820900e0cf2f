#include "cpt/common/error.h"

namespace cpt {

NotBuiltYet::NotBuiltYet(const std::string& what, const std::string& tracked_in)
    : InputError(what + " is not built yet (" + tracked_in + ")") {}

ConfigValueError::ConfigValueError(std::string key, const std::string& message, std::vector<std::string> related)
    : InputError(message), key_(std::move(key)), related_(std::move(related)) {}

int exit_code_for(const std::exception& error) {
  if (dynamic_cast<const InputError*>(&error) != nullptr) return kExitBadInput;
  return kExitFailure;
}

}  // namespace cpt
