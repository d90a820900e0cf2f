#include "cpt/common/plugin.h"

#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace cpt {

std::vector<std::string> plugin_candidates(const std::string& file_name, const char* env_var) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv(env_var); env != nullptr && *env != '\0') candidates.emplace_back(env);
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back((exe.parent_path() / file_name).string());
    candidates.push_back((exe.parent_path().parent_path() / file_name).string());
    candidates.push_back((exe.parent_path().parent_path() / "lib" / file_name).string());
  }
  candidates.push_back(std::string(CPT_MODULE_DIR) + "/" + file_name);
  return candidates;
}

}  // namespace cpt
