#pragma once
// The device backend names a config may ask for.

#include <string>

namespace cpt::backend {

inline constexpr const char* kBackendNames[] = {"auto", "cpu", "cuda", "neuron"};

// Throws ConfigValueError("backend", …) listing the valid names.
void validate_name(const std::string& name);

}  // namespace cpt::backend
