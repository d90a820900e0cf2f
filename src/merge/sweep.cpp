#include "cpt/merge/sweep.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <regex>
#include <set>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::merge {

namespace {

const std::vector<std::string> kSweepMethods = {"slerp", "linear", "task_arithmetic"};

// The models a slice (or the `models:` list with the base) merges, in order, once each.
std::vector<std::string> distinct_models(const MergeConfig& config) {
  std::vector<std::string> out;
  auto add = [&](const std::string& model) {
    if (!model.empty() && std::find(out.begin(), out.end(), model) == out.end()) out.push_back(model);
  };
  for (const auto& m : config.models) add(m.model);
  for (const auto& slice : config.slices) {
    for (const auto& source : slice.sources) add(source.model);
    add(slice.base_model);
  }
  add(config.base_model);
  return out;
}

Setting number_setting(double value) {
  Setting s;
  s.kind = Setting::Kind::kNumber;
  s.number = value;
  return s;
}

// Sets `name` to `value` globally and removes it from every other level,
// where it would take precedence.
void set_global(MergeConfig& config, const std::string& name, double value) {
  config.parameters[name] = number_setting(value);
  for (auto& m : config.models) m.parameters.erase(name);
  for (auto& slice : config.slices) {
    slice.parameters.erase(name);
    for (auto& source : slice.sources) source.parameters.erase(name);
  }
}

double parse_number(const std::string& text, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(value)) {
    throw InputError(fmt::format("{}: '{}' is not a number", what, text));
  }
  return value;
}

}  // namespace

MixingAxis mixing_axis(const MergeConfig& config) {
  if (std::find(kSweepMethods.begin(), kSweepMethods.end(), config.merge_method) == kSweepMethods.end()) {
    throw InputError(fmt::format("{}: merge --sweep varies the mixing of two models, which merge_method {} does not "
                                 "have; use {}",
                                 config.source, config.merge_method, join(kSweepMethods, ", ")));
  }
  const std::vector<std::string> models = distinct_models(config);
  if (models.size() != 2) {
    throw InputError(fmt::format("{}: merge --sweep mixes exactly two models; this merge has {} ({})", config.source,
                                 models.size(), join(models, ", ")));
  }
  std::string base = config.base_model;
  for (const auto& slice : config.slices) {
    if (!slice.base_model.empty() && !base.empty() && slice.base_model != base) {
      throw InputError(fmt::format("{}: merge --sweep needs one base model; the slices name '{}' and '{}'",
                                   config.source, base, slice.base_model));
    }
    if (base.empty()) base = slice.base_model;
  }
  MixingAxis axis;
  axis.method = config.merge_method;
  axis.start = base.empty() ? models.front() : base;  // linear without a base: the first model listed
  axis.end = models.front() == axis.start ? models.back() : models.front();
  if (axis.method == "slerp") {
    axis.what = "slerp's t";
  } else if (axis.method == "linear") {
    axis.what = "linear weights (1 - t, t)";
  } else {
    axis.what = "the weight of the task vector (lambda 1, not normalized)";
  }
  return axis;
}

MergeConfig at_mixing(const MergeConfig& config, const MixingAxis& axis, double t) {
  MergeConfig out = config;
  if (axis.method == "slerp") {
    set_global(out, "t", t);
    return out;
  }
  // Per-model weights: every occurrence of each model, in both forms.
  const auto weight_of = [&](const std::string& model) {
    if (axis.method == "linear") return model == axis.start ? 1 - t : t;
    return model == axis.end ? t : 0.0;  // the base contributes no task vector
  };
  bool start_listed = false;
  for (auto& m : out.models) {
    m.parameters["weight"] = number_setting(weight_of(m.model));
    start_listed = start_listed || m.model == axis.start;
  }
  // A linear base_model not among `models:` joins the merge without a weight of its own.
  if (axis.method == "linear" && !out.models.empty() && !start_listed) {
    InputSlice start;
    start.model = axis.start;
    start.parameters["weight"] = number_setting(weight_of(axis.start));
    out.models.push_back(start);
  }
  for (auto& slice : out.slices) {
    slice.parameters.erase("weight");
    for (auto& source : slice.sources) source.parameters["weight"] = number_setting(weight_of(source.model));
  }
  out.parameters.erase("weight");
  if (axis.method == "task_arithmetic") {
    // So that t = 1 is the end model itself: base + 1 * (end - base).
    set_global(out, "lambda", 1.0);
    set_global(out, "normalize", 0.0);
  } else {
    set_global(out, "normalize", 1.0);
  }
  return out;
}

std::vector<double> default_grid() {
  std::vector<double> grid;
  for (int i = 0; i <= 10; ++i) grid.push_back(i / 10.0);
  return grid;
}

std::vector<double> parse_grid(const std::string& text) {
  std::vector<double> grid;
  for (const std::string& raw : split(text, ',')) {
    const std::string item = trim(raw);
    const double t = parse_number(item, fmt::format("--grid {}", text));
    if (t < 0 || t > 1) throw InputError(fmt::format("--grid {}: {} is outside [0, 1]", text, item));
    if (!grid.empty() && t <= grid.back()) {
      throw InputError(fmt::format("--grid {}: the values must ascend, and {} does not follow {}", text, item,
                                   fmt::format("{:g}", grid.back())));
    }
    grid.push_back(t);
  }
  if (grid.empty()) throw InputError("--grid is empty; give values such as 0,0.25,0.5,0.75,1");
  return grid;
}

double LossBound::limit(const SweepPoint& base) const {
  const double reference_loss = from_base ? base.loss.at(set) : reference;
  return reference_loss + (percent ? reference_loss * margin / 100 : margin);
}

std::string LossBound::describe(const SweepPoint& base) const {
  const std::string reference_text = from_base ? fmt::format("base {:.4f}", base.loss.at(set)) : fmt::format("{:g}", reference);
  if (margin == 0) return fmt::format("{} <= {:.4f} ({})", set, limit(base), reference_text);
  return fmt::format("{} <= {:.4f} ({} {} {}{})", set, limit(base), reference_text, margin < 0 ? "-" : "+",
                     fmt::format("{:g}", std::fabs(margin)), percent ? "%" : "");
}

PickRule parse_pick(const std::string& text, const std::vector<std::string>& sets, const std::string& minimize) {
  static const std::regex bound_pattern(
      R"(^\s*([A-Za-z0-9_.\-/]+)\s*<=\s*(base|[-+0-9.eE]+)\s*(?:([+-])\s*([0-9.eE+-]+)\s*(%?))?\s*$)");
  static const std::regex and_pattern(R"(\s+and\s+)");
  PickRule rule;
  rule.text = text;
  const auto known = [&](const std::string& set, const std::string& where) {
    if (std::find(sets.begin(), sets.end(), set) != sets.end()) return;
    std::string message = fmt::format("--pick \"{}\": {} '{}' is not an eval set of the run", text, where, set);
    if (auto guess = closest_match(set, sets)) message += fmt::format("; did you mean '{}'?", *guess);
    throw InputError(message + fmt::format(" (its sets: {})", join(sets, ", ")));
  };
  for (auto it = std::sregex_token_iterator(text.begin(), text.end(), and_pattern, -1); it != std::sregex_token_iterator();
       ++it) {
    const std::string part = it->str();
    std::smatch m;
    if (!std::regex_match(part, m, bound_pattern)) {
      throw InputError(fmt::format("--pick \"{}\": cannot read '{}'; write SET <= base + 1% (or base + 0.02, or a "
                                   "loss such as 2.5), bounds joined by 'and'",
                                   text, trim(part)));
    }
    LossBound bound;
    bound.set = m[1].str();
    known(bound.set, "bound set");
    bound.from_base = m[2].str() == "base";
    if (!bound.from_base) bound.reference = parse_number(m[2].str(), fmt::format("--pick \"{}\"", text));
    if (m[3].matched) {
      bound.margin = parse_number(m[4].str(), fmt::format("--pick \"{}\"", text)) * (m[3].str() == "-" ? -1 : 1);
      bound.percent = m[5].str() == "%";
    }
    rule.bounds.push_back(bound);
  }
  if (!minimize.empty()) {
    known(minimize, "--minimize");
    rule.minimize = minimize;
  } else {
    std::vector<std::string> free;
    for (const auto& set : sets) {
      const bool bounded = std::any_of(rule.bounds.begin(), rule.bounds.end(), [&](const LossBound& b) { return b.set == set; });
      if (!bounded) free.push_back(set);
    }
    if (free.size() != 1) {
      throw InputError(fmt::format("--pick \"{}\" leaves {} eval sets unbounded ({}); say which loss to minimize with "
                                   "--minimize SET",
                                   text, free.size(), free.empty() ? "none" : join(free, ", ")));
    }
    rule.minimize = free.front();
  }
  return rule;
}

std::optional<size_t> pick(const std::vector<SweepPoint>& points, const PickRule& rule) {
  const auto base = std::find_if(points.begin(), points.end(), [](const SweepPoint& p) { return p.t == 0; });
  const bool needs_base = std::any_of(rule.bounds.begin(), rule.bounds.end(), [](const LossBound& b) { return b.from_base; });
  if (needs_base && base == points.end()) throw InputError("the --pick rule compares with the base, but t = 0 was not evaluated");
  const SweepPoint none;
  std::optional<size_t> best;
  for (size_t i = 0; i < points.size(); ++i) {
    const SweepPoint& p = points[i];
    bool meets = true;
    for (const auto& bound : rule.bounds) meets = meets && p.loss.at(bound.set) <= bound.limit(needs_base ? *base : none);
    if (meets && (!best || p.loss.at(rule.minimize) < points[*best].loss.at(rule.minimize))) best = i;
  }
  return best;
}

nlohmann::ordered_json sweep_json(const MixingAxis& axis, const std::string& merge_config,
                                  const std::vector<std::string>& sets, const std::vector<SweepPoint>& points) {
  nlohmann::ordered_json out = {{"merge_config", merge_config}, {"merge_method", axis.method},
                                {"t0", axis.start},             {"t1", axis.end},
                                {"t_sets", axis.what},          {"sets", sets}};
  out["points"] = nlohmann::ordered_json::array();
  for (const auto& p : points) {
    nlohmann::ordered_json losses = nlohmann::ordered_json::object();
    for (const auto& set : sets) losses[set] = p.loss.at(set);
    out["points"].push_back({{"t", p.t}, {"loss", losses}});
  }
  return out;
}

}  // namespace cpt::merge
