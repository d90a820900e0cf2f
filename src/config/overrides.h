#pragma once
// --set KEY=VALUE: edits the parsed YAML tree before it is bound, so an
// override is type-checked and validated exactly like the file it replaces.

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "binder.h"

namespace cpt::config {

// KEY is dotted ("optimizer.lr"); a numeric part indexes a list
// ("data.sources.1.weight"). VALUE is YAML ("3e-5", "[0.9, 0.95]", "true").
// Returns the normalised paths it set. Throws InputError naming the flag.
OverrideOrigins apply_overrides(YAML::Node& root, const std::vector<std::string>& overrides);

}  // namespace cpt::config
