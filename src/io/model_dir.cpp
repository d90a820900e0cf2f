#include "cpt/io/model_dir.h"

#include <filesystem>
#include <fmt/format.h>
#include <fstream>

#include "cpt/common/error.h"

namespace fs = std::filesystem;

namespace cpt::io {

namespace {

// The step directory a `latest` file names, beside it.
std::string follow_latest(const fs::path& latest) {
  std::ifstream in(latest);
  std::string name;
  std::getline(in, name);
  while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
  const fs::path dir = latest.parent_path() / name;
  if (name.empty() || name.find('/') != std::string::npos || !fs::is_directory(dir)) {
    throw InputError(fmt::format("'{}' names checkpoint '{}', which is not there", latest.string(), name));
  }
  return dir.string();
}

}  // namespace

std::string resolve_model_dir(const std::string& path) {
  const fs::path p(path);
  std::error_code error;
  if (fs::exists(p / "config.json", error)) return path;
  if (p.filename() == "latest" && fs::is_regular_file(p, error)) return follow_latest(p);
  if (fs::is_regular_file(p / "latest", error)) return follow_latest(p / "latest");  // the checkpoints/ directory
  if (fs::is_regular_file(p / "checkpoints" / "latest", error)) return follow_latest(p / "checkpoints" / "latest");
  return path;
}

}  // namespace cpt::io
