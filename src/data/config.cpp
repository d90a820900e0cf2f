#include "cpt/data/config.h"

#include <cmath>
#include <fmt/format.h>
#include <set>

#include "cpt/common/error.h"

namespace cpt::data {

void validate(const Config& config) {
  if (config.seq_len <= 0) {
    throw ConfigValueError("data.seq_len", fmt::format("{} is invalid; it must be > 0", config.seq_len));
  }
  if (config.sources.empty()) {
    throw ConfigValueError("data.sources", "is missing; list at least one {name, prefix, weight} training source");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < config.sources.size(); ++i) {
    const Source& source = config.sources[i];
    const std::string key = fmt::format("data.sources[{}]", i);
    if (source.name.empty()) throw ConfigValueError(key + ".name", "is missing; every source needs a name");
    if (source.prefix.empty()) {
      throw ConfigValueError(key + ".prefix", "is missing; give the shard path without .bin/.idx");
    }
    if (!std::isfinite(source.weight) || source.weight <= 0.0) {
      throw ConfigValueError(key + ".weight",
                             fmt::format("{} is invalid; a weight must be > 0 (remove the source to stop using it)",
                                         source.weight));
    }
    if (!names.insert(source.name).second) {
      throw ConfigValueError(key + ".name", fmt::format("'{}' is used by two sources; names must be unique",
                                                        source.name));
    }
  }
  names.clear();
  for (size_t i = 0; i < config.eval.size(); ++i) {
    const EvalSet& set = config.eval[i];
    const std::string key = fmt::format("data.eval[{}]", i);
    if (set.name.empty()) throw ConfigValueError(key + ".name", "is missing; every eval set needs a name");
    if (set.prefix.empty()) {
      throw ConfigValueError(key + ".prefix", "is missing; give the shard path without .bin/.idx");
    }
    if (set.max_batches <= 0) {
      throw ConfigValueError(key + ".max_batches", fmt::format("{} is invalid; it must be > 0", set.max_batches));
    }
    if (!names.insert(set.name).second) {
      throw ConfigValueError(key + ".name", fmt::format("'{}' is used by two eval sets; names must be unique",
                                                        set.name));
    }
  }
}

}  // namespace cpt::data
