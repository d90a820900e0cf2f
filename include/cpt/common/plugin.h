#pragma once
// Where a run-time loaded module of this project (libcpt_*.so) may be.

#include <string>
#include <vector>

namespace cpt {

// $env_var when set, else beside the running executable or one level up
// (tests live in build/tests/) or in ../lib, else the build directory it
// was made in; in that order.
std::vector<std::string> plugin_candidates(const std::string& file_name, const char* env_var);

}  // namespace cpt
