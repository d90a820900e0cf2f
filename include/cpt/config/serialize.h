#pragma once
// The resolved config as JSON (for --json) and YAML (config.resolved.yaml):
// every key with the value the run uses, loadable again as a config.

#include <nlohmann/json.hpp>
#include <string>

#include "cpt/config/config.h"

namespace cpt::config {

// Model sizes are written out in full, so the file pins the shape even if a
// preset's numbers change later.
nlohmann::ordered_json to_json(const Config& config);

std::string to_yaml(const Config& config);

// The text of a resolved config file: a comment naming `source`, then to_yaml.
std::string resolved_yaml(const Config& config, const std::string& source);

// Writes <run.output_dir>/<file_name> (by default config.resolved.yaml)
// atomically; returns its path.
std::string write_resolved(const Config& config, const std::string& source,
                           const std::string& file_name = "config.resolved.yaml");

}  // namespace cpt::config
