// cpt-train merge --config MERGE.yaml --output DIR [--random-seed N]   (mergekit's YAML schema)

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "commands.h"
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
};

int run_merge(const MergeArgs& args) {
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
                       "DARE's random drop with a fixed seed, on 4 threads"}});
  app->add_option("--config", args->config, "mergekit merge configuration (YAML)")->required()
      ->check(CLI::ExistingFile);
  app->add_option("--output", args->output, "directory for the merged Hugging Face model")->required();
  app->add_option("--random-seed", args->seed, "seed of DARE's random drop")->capture_default_str();
  app->add_option("--threads", args->threads, "worker threads (default: one per core)")->check(at_least(0));
  return {app, [args]() -> int { return run_merge(*args); }};
}

}  // namespace cpt::cli
