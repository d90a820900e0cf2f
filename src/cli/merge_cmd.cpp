// cpt-train merge --config MERGE.yaml --output DIR [--random-seed N]   (mergekit's YAML schema)
// cpt-train merge --config MERGE.yaml --sweep --eval-config RUN.yaml [--grid T,T,…] [--json]
//                 [--pick "SET <= base + X%" [--minimize SET] --output DIR]

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "merge_sweep.h"
#include "progress.h"
#include "cpt/common/error.h"
#include "cpt/common/strings.h"
#include "cpt/merge/merge.h"

namespace cpt::cli {

namespace {

struct MergeArgs {
  std::string config;
  std::string output;
  uint64_t seed = 0;
  int threads = 0;
  bool sweep = false;
  MergeSweepArgs sweep_args;  // the flags only --sweep takes
};

int run_merge(const MergeArgs& args) {
  if (args.sweep) {
    MergeSweepArgs sweep = args.sweep_args;
    sweep.config = args.config;
    sweep.output = args.output;
    sweep.seed = args.seed;
    sweep.threads = args.threads;
    return run_merge_sweep(sweep);
  }
  if (args.output.empty()) throw InputError("merge needs --output DIR (or --sweep to compare mixing points)");
  for (const auto& [flag, given] : std::vector<std::pair<const char*, bool>>{
           {"--eval-config", !args.sweep_args.eval_config.empty()}, {"--grid", !args.sweep_args.grid.empty()},
           {"--pick", !args.sweep_args.pick.empty()}, {"--minimize", !args.sweep_args.minimize.empty()},
           {"--set", !args.sweep_args.overrides.empty()}, {"--json", args.sweep_args.json}}) {
    if (given) throw InputError(fmt::format("{} goes with --sweep", flag));
  }
  merge::MergeOptions options;
  options.config = args.config;
  options.output = args.output;
  options.seed = args.seed;
  options.threads = args.threads;
  ProgressLine progress("merge");
  auto on_progress = [&](const merge::MergeProgress& p) {
    const double rate = p.seconds > 0 ? static_cast<double>(p.bytes_done) / p.seconds : 0;
    const double eta = rate > 0 ? static_cast<double>(p.bytes_total - p.bytes_done) / rate : 0;
    const std::string line = fmt::format("{}/{} tensors, {:.2f}/{:.2f} GB, ETA {:.0f}s", p.tensors_done,
                                         p.tensors_total, static_cast<double>(p.bytes_done) / 1e9,
                                         static_cast<double>(p.bytes_total) / 1e9, eta);
    progress.update(line, p.seconds);
  };
  const merge::MergeReport report = merge::merge_models(options, on_progress);
  progress.finish();
  spdlog::info("wrote {}: {} tensors, {} in {} shard(s), {:.1f}s", args.output, report.tensors,
               human_bytes(static_cast<double>(report.output_bytes)), report.shards, report.seconds);
  return kExitOk;
}

}  // namespace

Command add_merge_command(CLI::App& parent) {
  auto args = std::make_shared<MergeArgs>();
  CLI::App* app = parent.add_subcommand("merge", "merge checkpoints (linear, slerp, ties, dare, …) as mergekit does");
  add_examples(*app, {{"cpt-train merge --config slerp.yaml --output merged/medical-chat",
                       "a mergekit config; a model path may be a run directory (its latest checkpoint)"},
                      {"cpt-train merge --config dare-ties.yaml --output merged/dare --random-seed 7 --threads 4",
                       "DARE's random drop with a fixed seed, on 4 threads"},
                      {"cpt-train merge --config slerp.yaml --sweep --eval-config configs/medical.yaml",
                       "the eval sets' loss at t = 0, 0.1, …, 1, nothing written"},
                      {"cpt-train merge --config slerp.yaml --sweep --eval-config configs/medical.yaml "
                       "--pick \"general <= base + 1%\" --output merged/medical-chat",
                       "writes the point with the lowest domain loss whose general loss is within 1% of the base's"}});
  app->add_option("--config", args->config, "mergekit merge configuration (YAML)")->required()
      ->check(CLI::ExistingFile);
  app->add_option("--output", args->output, "directory for the merged Hugging Face model (with --sweep: for --pick)");
  app->add_option("--random-seed", args->seed, "seed of DARE's random drop")->capture_default_str();
  app->add_option("--threads", args->threads, "worker threads (default: one per core)")->check(at_least(0));
  MergeSweepArgs& sweep = args->sweep_args;
  app->add_flag("--sweep", args->sweep,
                "try the two-model merge (slerp, linear, task_arithmetic) along its mixing parameter t and tabulate "
                "the eval sets' loss at each point, writing no model");
  app->add_option("--eval-config", sweep.eval_config,
                  "with --sweep: the run config whose data.eval sets, seq_len and micro-batch score each point, as "
                  "cpt-train eval --config does")
      ->check(CLI::ExistingFile);
  app->add_option("--set", sweep.overrides, "override a key of --eval-config (repeatable)")->type_name("KEY=VALUE");
  app->add_option("--grid", sweep.grid, "with --sweep: the values of t, ascending in [0, 1] (default 0,0.1,…,1)")
      ->type_name("T,T,…");
  app->add_option("--pick", sweep.pick,
                  "with --sweep: write the point with the lowest loss on the unbounded eval set among those meeting "
                  "RULE, e.g. \"general <= base + 1%\" (base: the loss at t = 0; also + 0.02, or a plain loss; "
                  "bounds joined by 'and')")
      ->type_name("RULE");
  app->add_option("--minimize", sweep.minimize, "with --pick: the eval set whose loss to minimize (default: the one no bound names)")
      ->type_name("SET");
  app->add_flag("--json", sweep.json, "with --sweep: print the table as one JSON object");
  return {app, [args]() -> int { return run_merge(*args); }};
}

}  // namespace cpt::cli
