#include "cpt/data/config.h"

#include <cmath>
#include <fmt/format.h>
#include <set>

#include "cpt/common/error.h"

namespace cpt::data {

namespace {

// Name and prefix rules shared by training sources and eval sets.
void validate_shard_entry(const std::string& key, const std::string& name, const std::string& prefix,
                          std::set<std::string>& names, const char* kind) {
  if (name.empty()) throw ConfigValueError(key + ".name", fmt::format("is missing; every {} needs a name", kind));
  if (prefix.empty()) throw ConfigValueError(key + ".prefix", "is missing; give the shard path without .bin/.idx");
  if (!names.insert(name).second) {
    throw ConfigValueError(key + ".name", fmt::format("'{}' is used by two {}s; names must be unique", name, kind));
  }
}

}  // namespace

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
    if (!std::isfinite(source.weight) || source.weight <= 0.0) {
      throw ConfigValueError(key + ".weight",
                             fmt::format("{} is invalid; a weight must be > 0 (remove the source to stop using it)",
                                         source.weight));
    }
    validate_shard_entry(key, source.name, source.prefix, names, "source");
  }
  names.clear();
  for (size_t i = 0; i < config.eval.size(); ++i) {
    const EvalSet& set = config.eval[i];
    const std::string key = fmt::format("data.eval[{}]", i);
    if (set.max_batches <= 0) {
      throw ConfigValueError(key + ".max_batches", fmt::format("{} is invalid; it must be > 0", set.max_batches));
    }
    validate_shard_entry(key, set.name, set.prefix, names, "eval set");
  }
}

}  // namespace cpt::data
