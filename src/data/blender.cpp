#include "cpt/data/blender.h"

#include <cmath>
#include <cstdint>
#include <fmt/format.h>
#include <set>

#include "cpt/common/error.h"

namespace cpt::data {

nlohmann::json BlendState::to_json() const {
  nlohmann::json weights_json = nlohmann::json::object();
  for (const auto& [name, w] : weights) weights_json[name] = w;
  return {{"samples", samples},
          {"served", served},
          {"segment_start", segment_start},
          {"served_at_segment_start", served_at_segment_start},
          {"weights", weights_json}};
}

namespace {

// A count from a state file: a JSON integer, never negative. nlohmann's
// get<int64_t> on a float would be undefined behaviour past int64's range.
int64_t count_at(const nlohmann::json& json, const char* key) {
  const nlohmann::json& value = json.at(key);
  if (!value.is_number_integer() || (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) ||
      value.get<int64_t>() < 0) {
    throw InputError(fmt::format("data state is malformed: \"{}\" is {}, not a count", key, value.dump()));
  }
  return value.get<int64_t>();
}

std::map<std::string, int64_t> counts_at(const nlohmann::json& json, const char* key) {
  const nlohmann::json& object = json.at(key);
  if (!object.is_object()) throw InputError(fmt::format("data state is malformed: \"{}\" is not an object", key));
  std::map<std::string, int64_t> out;
  for (const auto& [name, value] : object.items()) out[name] = count_at(object, name.c_str());
  return out;
}

}  // namespace

BlendState BlendState::from_json(const nlohmann::json& json) {
  try {
    if (!json.is_object()) throw InputError("data state is malformed: not an object");
    BlendState state;
    state.samples = count_at(json, "samples");
    state.served = counts_at(json, "served");
    state.segment_start = count_at(json, "segment_start");
    state.served_at_segment_start = counts_at(json, "served_at_segment_start");
    const nlohmann::json& weights = json.at("weights");
    if (!weights.is_object()) throw InputError("data state is malformed: \"weights\" is not an object");
    for (const auto& [name, value] : weights.items()) {
      if (!value.is_number() || !std::isfinite(value.get<double>()) || !(value.get<double>() > 0)) {
        throw InputError(fmt::format("data state is malformed: weight of '{}' is {}", name, value.dump()));
      }
      state.weights[name] = value.get<double>();
    }
    return state;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("data state is malformed: {}", e.what()));
  }
}

Blender::Blender(std::vector<std::string> names, std::vector<double> weights)
    : names_(std::move(names)), weights_(std::move(weights)) {
  if (names_.empty() || names_.size() != weights_.size()) {
    throw std::invalid_argument("Blender needs one weight per source and at least one source");
  }
  double total = 0;
  for (double w : weights_) {
    if (!(w > 0) || !std::isfinite(w)) throw std::invalid_argument("Blender weights must be > 0");
    total += w;
  }
  for (double& w : weights_) w /= total;
  served_.assign(names_.size(), 0);
  segment_base_.assign(names_.size(), 0);
}

void Blender::restore(const BlendState& state) {
  samples_ = state.samples;
  retired_.clear();
  for (const auto& [name, count] : state.served) retired_[name] = count;
  for (size_t s = 0; s < names_.size(); ++s) {
    auto it = state.served.find(names_[s]);
    served_[s] = it == state.served.end() ? 0 : it->second;  // a new source starts at its beginning
    if (it != state.served.end()) retired_.erase(it->first);
  }
  bool same_mix = state.weights.size() == names_.size();
  for (size_t s = 0; s < names_.size() && same_mix; ++s) {
    auto it = state.weights.find(names_[s]);
    same_mix = it != state.weights.end() && it->second == weights_[s];
  }
  if (same_mix) {
    segment_start_ = state.segment_start;
    for (size_t s = 0; s < names_.size(); ++s) {
      const auto it = state.served_at_segment_start.find(names_[s]);
      if (it == state.served_at_segment_start.end()) {
        throw InputError(fmt::format("data state is malformed: served_at_segment_start has no '{}'", names_[s]));
      }
      segment_base_[s] = it->second;
    }
  } else {
    segment_start_ = samples_;
    segment_base_ = served_;
  }
}

Blender::Pick Blender::next() {
  // Largest deficit against the exact share of the segment so far, counting
  // this sample; ties go to the first source.
  const double position = static_cast<double>(samples_ - segment_start_ + 1);
  int best = 0;
  double best_deficit = -1e300;
  for (size_t s = 0; s < names_.size(); ++s) {
    const double deficit = weights_[s] * position - static_cast<double>(served_[s] - segment_base_[s]);
    if (deficit > best_deficit) {
      best_deficit = deficit;
      best = static_cast<int>(s);
    }
  }
  Pick pick{best, served_[static_cast<size_t>(best)]};
  ++served_[static_cast<size_t>(best)];
  ++samples_;
  return pick;
}

BlendState Blender::state() const {
  BlendState state;
  state.samples = samples_;
  state.served = retired_;
  state.segment_start = segment_start_;
  for (size_t s = 0; s < names_.size(); ++s) {
    state.served[names_[s]] = served_[s];
    state.served_at_segment_start[names_[s]] = segment_base_[s];
    state.weights[names_[s]] = weights_[s];
  }
  return state;
}

}  // namespace cpt::data
