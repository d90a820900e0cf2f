#include "cpt/data/blender.h"

#include <cmath>
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

BlendState BlendState::from_json(const nlohmann::json& json) {
  try {
    BlendState state;
    state.samples = json.at("samples").get<int64_t>();
    state.served = json.at("served").get<std::map<std::string, int64_t>>();
    state.segment_start = json.at("segment_start").get<int64_t>();
    state.served_at_segment_start = json.at("served_at_segment_start").get<std::map<std::string, int64_t>>();
    state.weights = json.at("weights").get<std::map<std::string, double>>();
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
    for (size_t s = 0; s < names_.size(); ++s) segment_base_[s] = state.served_at_segment_start.at(names_[s]);
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
