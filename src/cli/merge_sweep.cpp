#include "merge_sweep.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "eval_sets.h"
#include "progress.h"
#include "cpt/backend/backend.h"
#include "cpt/common/error.h"
#include "cpt/config/config.h"
#include "cpt/dist/env.h"
#include "cpt/dist/process_group.h"
#include "cpt/io/atomic_file.h"
#include "cpt/merge/config.h"
#include "cpt/merge/merge.h"
#include "cpt/merge/sweep.h"
#include "cpt/model/config.h"
#include "cpt/train/inference.h"

namespace fs = std::filesystem;

namespace cpt::cli {

namespace {

std::string seconds_text(double seconds) {
  if (seconds < 90) return fmt::format("{:.0f}s", seconds);
  return fmt::format("{:.0f}m{:02.0f}s", std::floor(seconds / 60), std::fmod(seconds, 60));
}

// The merged model's parameters by name: where merge_into writes each tensor.
class ModelDestination {
 public:
  ModelDestination(model::Llama& model, const merge::MergePlan& plan, const std::string& source) {
    for (const auto& item : model->named_parameters()) parameters_[item.key()] = item.value();
    for (const auto& tensor : plan.tensors) {
      auto it = parameters_.find(tensor.name);
      if (it == parameters_.end()) {
        throw InputError(fmt::format("{}: the merge makes tensor '{}', which a Llama of its config.json does not have",
                                     source, tensor.name));
      }
      if (it->second.sizes().vec() != tensor.shape) {
        throw InputError(fmt::format("{}: the merge makes '{}' of shape {}, but its config.json gives {}", source,
                                     tensor.name, nlohmann::json(tensor.shape).dump(),
                                     nlohmann::json(it->second.sizes().vec()).dump()));
      }
    }
    if (plan.tensors.size() != parameters_.size()) {
      throw InputError(fmt::format("{}: the merge makes {} tensors but the model has {} parameters", source,
                                   plan.tensors.size(), parameters_.size()));
    }
  }

  float* operator()(const io::TensorSpec& tensor) const { return parameters_.at(tensor.name).data_ptr<float>(); }

  // A merge can overflow a 16-bit output dtype; its loss would read NaN.
  void check_finite(double t) const {
    torch::NoGradGuard no_grad;
    for (const auto& [name, parameter] : parameters_) {
      if (!torch::isfinite(parameter).all().item<bool>()) {
        throw InputError(fmt::format("the merge at t = {:g} holds NaN or infinite values in '{}'", t, name));
      }
    }
  }

 private:
  std::map<std::string, torch::Tensor> parameters_;
};

}  // namespace

int run_merge_sweep(const MergeSweepArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  if (args.eval_config.empty()) {
    throw InputError("merge --sweep scores each point on a run's eval sets: give --eval-config RUN.yaml");
  }
  const merge::MergeConfig config = merge::load_merge_config(args.config);
  const merge::MixingAxis axis = merge::mixing_axis(config);
  std::vector<double> grid = args.grid.empty() ? merge::default_grid() : merge::parse_grid(args.grid);

  config::LoadOptions load;
  load.overrides = args.overrides;
  const config::Config run = config::load_file(args.eval_config, load).config;
  const std::vector<EvalSet> sets = run_eval_sets(run);
  if (sets.empty()) {
    throw InputError(fmt::format("{}: data.eval names no eval set; the sweep scores each merge on the run's eval sets",
                                 args.eval_config));
  }
  std::vector<std::string> names;
  for (const auto& set : sets) names.push_back(set.name);

  // Everything --pick needs is checked before the first merge.
  std::optional<merge::PickRule> rule;
  if (!args.pick.empty()) {
    rule = merge::parse_pick(args.pick, names, args.minimize);
    if (args.output.empty()) throw InputError("--pick writes the merge it picks: give --output DIR");
    merge::check_merge_output(config, args.output);
    const bool needs_base = std::any_of(rule->bounds.begin(), rule->bounds.end(), [](const auto& b) { return b.from_base; });
    if (needs_base && grid.front() != 0) {
      spdlog::info("the --pick rule compares with the base: t = 0 is added to the grid");
      grid.insert(grid.begin(), 0.0);
    }
  } else if (!args.output.empty()) {
    throw InputError("merge --sweep writes a merge only for --pick RULE; give --pick, or leave out --output");
  } else if (!args.minimize.empty()) {
    throw InputError("--minimize goes with --pick RULE");
  }

  const merge::MergePlan plan = merge::plan_merge(merge::at_mixing(config, axis, grid.front()));
  const model::Shape shape = model::hf_config_shape(plan.model_config, fmt::format("the merge of {}", args.config));
  model::validate(shape);
  if (run.model.shape.vocab_size != shape.vocab_size) {
    throw InputError(fmt::format("{}: model.vocab_size {} is not the merged model's {} (from '{}')", args.eval_config,
                                 run.model.shape.vocab_size, shape.vocab_size, axis.start));
  }
  // The run's windows and micro-batch, as `cpt-train eval --config` uses them.
  const int64_t seq_len = std::min(run.data.seq_len, shape.max_position_embeddings);
  const int64_t batch = run.train.micro_batch_size;
  std::vector<std::unique_ptr<const data::SourceSamples>> samples;
  for (const auto& set : sets) samples.push_back(open_eval_set(set, seq_len, shape.vocab_size));

  model::Llama model(shape);
  model->eval();
  const ModelDestination destination(model, plan, args.config);
  const std::unique_ptr<dist::ProcessGroup> group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
  const std::unique_ptr<backend::Backend> device = backend::select_backend("cpu", 0);

  spdlog::info("sweeping {} points of {}: t = 0 is {}, t = 1 is {}", grid.size(), axis.what, axis.start, axis.end);
  if (!args.json) {
    std::printf("%-6s", "t");
    for (const auto& name : names) std::printf(" %12s", name.c_str());
    std::printf("   (mean token loss; %s merge, t = 0: %s, t = 1: %s)\n", axis.method.c_str(), axis.start.c_str(),
                axis.end.c_str());
    std::fflush(stdout);
  }
  merge::MergeOptions options;
  options.config = args.config;
  options.seed = args.seed;
  options.threads = args.threads;
  ProgressLine progress("sweep");
  std::vector<merge::SweepPoint> points;
  for (size_t i = 0; i < grid.size(); ++i) {
    const double t = grid[i];
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string eta =
        i == 0 ? "" : fmt::format(", sweep ETA {}", seconds_text(elapsed / static_cast<double>(i) * static_cast<double>(grid.size() - i)));
    const std::string point = fmt::format("t = {:g} ({}/{})", t, i + 1, grid.size());
    merge::merge_into(merge::at_mixing(config, axis, t), options, destination, [&](const merge::MergeProgress& p) {
      progress.update(fmt::format("{}: merged {}/{} tensors{}", point, p.tensors_done, p.tensors_total, eta),
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    });
    destination.check_finite(t);
    merge::SweepPoint result;
    result.t = t;
    for (size_t s = 0; s < sets.size(); ++s) {
      const train::PerplexityResult r = train::evaluate_windows(
          model, *samples[s], batch, sets[s].max_batches, *group, *device,
          eval_progress(progress, fmt::format("{}: {}", point, sets[s].name), start));
      result.loss[sets[s].name] = r.loss;
    }
    progress.finish();
    if (!args.json) {
      std::printf("%-6g", t);
      for (const auto& name : names) std::printf(" %12.4f", result.loss.at(name));
      std::printf("\n");
      std::fflush(stdout);
    }
    points.push_back(result);
  }

  nlohmann::ordered_json table = merge::sweep_json(axis, args.config, names, points);
  table["eval_config"] = args.eval_config;
  table["seq_len"] = seq_len;
  table["batch"] = batch;
  std::optional<size_t> picked;
  if (rule) {
    picked = merge::pick(points, *rule);
    const merge::SweepPoint& base = points.front();
    std::vector<std::string> bounds;
    for (const auto& bound : rule->bounds) bounds.push_back(bound.describe(base));
    table["pick"] = {{"rule", rule->text}, {"bounds", bounds}, {"minimize", rule->minimize}};
    if (picked) {
      table["pick"]["t"] = points[*picked].t;
      table["pick"]["output"] = args.output;
    }
  }
  // Beside the run, where `cpt-train report` shows it.
  if (fs::is_directory(run.run.output_dir)) {
    const fs::path saved = fs::path(run.run.output_dir) / "sweeps" / (fs::path(args.config).stem().string() + ".json");
    fs::create_directories(saved.parent_path());
    io::write_file_atomic(saved.string(), table.dump(2) + "\n");
    spdlog::info("table saved as {} (cpt-train report {} shows it)", saved.string(), run.run.output_dir);
  }
  if (args.json) {
    std::printf("%s\n", table.dump(2).c_str());
    std::fflush(stdout);
  }
  if (!rule) return kExitOk;

  std::vector<std::string> bounds = table["pick"]["bounds"];
  if (!picked) {
    throw InputError(fmt::format("--pick \"{}\": no point of the sweep meets {}; nothing written", rule->text,
                                 fmt::join(bounds, " and ")));
  }
  const double t = points[*picked].t;
  spdlog::info("picked t = {:g}: the lowest {} loss ({:.4f}) with {}", t, rule->minimize,
               points[*picked].loss.at(rule->minimize), fmt::join(bounds, " and "));
  options.output = args.output;
  const merge::MergeReport report = merge::merge_models(merge::at_mixing(config, axis, t), options);
  spdlog::info("wrote {}: the merge at t = {:g}, {} tensors in {:.1f}s", args.output, t, report.tensors, report.seconds);
  return kExitOk;
}

}  // namespace cpt::cli
