// cpt-train [train] --config FILE.yaml [--set KEY=VALUE]... [--dry-run] [--resume auto|PATH|none]

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include <memory>

#include "commands.h"
#include "cpt/common/error.h"
#include "cpt/config/config.h"
#include "cpt/config/serialize.h"
#include "cpt/dist/env.h"
#include "cpt/train/plan.h"
#include "cpt/train/trainer.h"

namespace cpt::cli {

void add_train_flags(CLI::App& app, TrainArgs& args) {
  app.add_option("--config", args.config, "run configuration (YAML)")->check(CLI::ExistingFile);
  app.add_option("--set", args.overrides, "override a config key, e.g. --set optimizer.lr=3e-5 (repeatable)")
      ->type_name("KEY=VALUE")
      ->take_all()
      ->allow_extra_args(false);
  app.add_flag("--dry-run", args.dry_run, "print the resolved config and the plan, then exit");
  app.add_flag("--json", args.json, "with --dry-run: print one JSON object instead of text");
  app.add_option("--resume", args.resume, "auto (newest checkpoint in output_dir) | PATH | none")
      ->capture_default_str();
  app.add_option("--world-size", args.world_size,
                 "plan for this many data-parallel ranks (default: from torchrun/SLURM, else 1)")
      ->check(at_least(1));
}

Command add_train_command(CLI::App& parent) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* app = parent.add_subcommand("train", "continue pre-training a model (the default command)");
  add_examples(*app, {{"cpt-train train --config configs/medical.yaml --dry-run", "check the config and see the plan"},
                      {"srun cpt-train train --config configs/medical.yaml --set train.steps=4000",
                       "one rank per SLURM task; a longer schedule than the file's"},
                      {"cpt-train train --config configs/medical.yaml --set model.init_from=runs/medical --set "
                       "run.output_dir=runs/medical-phase2",
                       "a new phase from the latest checkpoint of another run"}});
  add_train_flags(*app, *args);
  app->get_option("--config")->required();
  return {app, [args] { return run_train(*args); }};
}

int run_train(const TrainArgs& args) {
  config::LoadOptions options;
  options.overrides = args.overrides;
  options.world_size = args.world_size > 0 ? args.world_size : dist::launch_env_from_environment().world_size;
  config::Loaded loaded = config::load_file(args.config, options);
  const train::Plan plan = train::make_plan(loaded.config, options.world_size);

  if (args.dry_run) {
    for (const auto& warning : loaded.warnings) spdlog::warn("{}", warning);
    if (args.json) {
      nlohmann::ordered_json out = {{"config", config::to_json(loaded.config)},
                                    {"plan", train::to_json(plan)},
                                    {"warnings", loaded.warnings}};
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf("# resolved config (%s)\n%s\n%s", args.config.c_str(), config::to_yaml(loaded.config).c_str(),
                  train::describe(plan).c_str());
    }
    return kExitOk;
  }

  train::TrainOptions train_options;
  train_options.resume = args.resume;
  return train::run_training(loaded, train_options);
}

}  // namespace cpt::cli
