#pragma once
// `merge --sweep`: a two-model merge tried along its mixing parameter t
// (t = 0 is the base model, t = 1 the other one), the losses of each point
// on the run's eval sets, and the rule that picks the point to write.
// Pure C++: the evaluation itself is the caller's.

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cpt/merge/config.h"

namespace cpt::merge {

// What t moves between.
struct MixingAxis {
  std::string method;  // slerp, linear or task_arithmetic
  std::string start;   // the model at t = 0 (the base model)
  std::string end;     // the model at t = 1
  std::string what;    // what t sets, for the table's heading
};

// Throws InputError unless `config` merges exactly two models by slerp,
// linear or task_arithmetic (naming what it does merge).
MixingAxis mixing_axis(const MergeConfig& config);

// `config` with t set at every level, replacing what the file says:
// slerp's t; linear's weights (1 - t, t); task_arithmetic's weight t of the
// end model's task vector.
MergeConfig at_mixing(const MergeConfig& config, const MixingAxis& axis, double t);

// 0, 0.1, …, 1.
std::vector<double> default_grid();
// "0,0.25,0.5" in ascending order, each in [0, 1]; throws InputError naming
// the item that is not.
std::vector<double> parse_grid(const std::string& text);

// One point of the sweep: the mean token loss of each eval set.
struct SweepPoint {
  double t = 0;
  std::map<std::string, double> loss;
};

// "SET <= REF [+|- X[%]]": the loss of SET at most REF (`base`: the loss of
// that set at t = 0, or a number) plus X, or plus X percent of REF.
struct LossBound {
  std::string set;
  bool from_base = true;
  double reference = 0;  // when !from_base
  double margin = 0;
  bool percent = false;

  double limit(const SweepPoint& base) const;
  std::string describe(const SweepPoint& base) const;
};

// Bounds joined by "and"; among the points that meet them all, the one with
// the lowest loss on `minimize` wins (the lower t on a tie).
struct PickRule {
  std::string text;
  std::vector<LossBound> bounds;
  std::string minimize;
};

// Throws InputError naming the part of `text` it cannot read, or a set that
// is not among `sets`. `minimize` empty: the one eval set no bound names.
PickRule parse_pick(const std::string& text, const std::vector<std::string>& sets, const std::string& minimize);

// The index of the winning point, or none when no point meets every bound.
// `points` must hold t = 0 when a bound refers to the base.
std::optional<size_t> pick(const std::vector<SweepPoint>& points, const PickRule& rule);

// The sweep as JSON (also what `cpt-train report` reads from RUN/sweeps/).
nlohmann::ordered_json sweep_json(const MixingAxis& axis, const std::string& merge_config,
                                  const std::vector<std::string>& sets, const std::vector<SweepPoint>& points);

}  // namespace cpt::merge
