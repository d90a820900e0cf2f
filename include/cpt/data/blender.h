#pragma once
// Which source serves global sample i. Megatron's greedy rule: give the
// sample to the source furthest below its share, so every prefix of the
// stream is within a sample of the exact proportions.
//
// Resuming with different weights, or with a source added or removed, starts
// a new segment: every source continues at its own cursor (nothing served
// twice, nothing skipped) and the new weights hold exactly from that sample on.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cpt::data {

struct BlendState {
  int64_t samples = 0;                     // global samples served so far
  std::map<std::string, int64_t> served;   // per source name: its cursor
  // The segment the greedy rule runs in: where it began and the weights it uses.
  int64_t segment_start = 0;
  std::map<std::string, int64_t> served_at_segment_start;
  std::map<std::string, double> weights;   // normalised

  nlohmann::json to_json() const;
  static BlendState from_json(const nlohmann::json& json);  // throws InputError on a malformed state
};

class Blender {
 public:
  // Weights need not sum to 1; they are normalised. Throws on empty or ≤ 0.
  Blender(std::vector<std::string> names, std::vector<double> weights);

  // Continues from a saved state. The same sources and weights continue the
  // saved segment bit for bit; anything else starts a new segment here.
  void restore(const BlendState& state);

  // The source index for the next global sample, and that source's cursor
  // (its sample number) before this call.
  struct Pick {
    int source;
    int64_t sample;
  };
  Pick next();

  BlendState state() const;
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<double>& weights() const { return weights_; }

 private:
  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::vector<int64_t> served_;
  std::vector<int64_t> segment_base_;  // served_ at segment start
  int64_t samples_ = 0;
  int64_t segment_start_ = 0;
  std::map<std::string, int64_t> retired_;  // cursors of sources no longer configured
};

}  // namespace cpt::data
