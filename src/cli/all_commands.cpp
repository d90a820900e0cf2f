// cpt-train-torch's command line: every subcommand, and `--config X` alone
// as `train --config X` (see cpt/cli/app.h).

#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "cpt/backend/cpu_threads.h"
#include "cpt/cli/app.h"

namespace cpt::cli {

int run(int argc, char** argv) {
  // `cpt-train --config X` is `cpt-train train --config X`.
  auto top_train = std::make_shared<TrainArgs>();
  CommandLine line;
  line.add_commands = [top_train](CLI::App& app) {
    add_train_flags(app, *top_train);
    add_examples(app, {{"cpt-train --config configs/medical.yaml --dry-run", "the resolved config and the plan: memory, FLOPs, tokens"},
                       {"cpt-train --config configs/medical.yaml", "train; run again after a stop and it resumes from the latest checkpoint"},
                       {"cpt-train eval --checkpoint runs/medical", "the latest checkpoint's loss on the run's eval sets"}});
    return std::vector<Command>{
        add_train_command(app),    add_tokenize_command(app), add_data_command(app),    add_eval_command(app),
        add_generate_command(app), add_merge_command(app),    add_report_command(app),  add_version_command(app),
    };
  };
  // The commands that run the model set their CPU threads first; version
  // reports the threads a run would use.
  auto runs_model = [top_train](const std::string& command) {
    if (command.empty()) return !top_train->config.empty();
    return command == "train" || command == "eval" || command == "generate" || command == "version" || command == "merge";
  };
  line.before_run = [runs_model](const std::string& command) {
    if (runs_model(command)) backend::configure_cpu_threads();
  };
  line.after_logging = [runs_model](const std::string& command) {
    if (runs_model(command)) spdlog::debug("{}", backend::describe_cpu_threads());
  };
  line.without_subcommand = [top_train]() -> std::optional<int> {
    if (top_train->config.empty()) return std::nullopt;
    return run_train(*top_train);
  };
  return run_command_line(argc, argv, line);
}

}  // namespace cpt::cli
