#pragma once
// One registration function per subcommand (one file each). Each adds its
// flags to `parent` and returns the action to run if it was chosen.

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cpt::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// What one of cpt-train's two executables offers (see cpt/cli/app.h), run
// by run_command_line: the shared --log-level, the check of the subcommand's
// name, parsing, and one error line with its exit code.
struct CommandLine {
  // Adds the executable's subcommands (and any top-level flags) to `app`.
  std::function<std::vector<Command>(CLI::App&)> add_commands;
  // Run with the chosen subcommand's name ("" for none) before and after
  // logging is set up from --log-level.
  std::function<void(const std::string&)> before_run, after_logging;
  // When no subcommand was chosen: an exit code, or none to print the help.
  std::function<std::optional<int>()> without_subcommand;
};

int run_command_line(int argc, char** argv, const CommandLine& line);

// Flags shared by `cpt-train --config X` and `cpt-train train --config X`.
struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool dry_run = false;
  bool json = false;
  std::string resume = "auto";
  int world_size = 0;  // 0: from the launcher's environment
};

// Count validators whose refusal names the bound ("must be at least 1, not 0")
// instead of CLI11's, which prints the largest double in full.
CLI::Validator at_least(long long minimum);

// Ends `app`'s --help with real command lines, each with what it does.
void add_examples(CLI::App& app, const std::vector<std::pair<std::string, std::string>>& examples);

void add_train_flags(CLI::App& app, TrainArgs& args);
int run_train(const TrainArgs& args);

Command add_train_command(CLI::App& parent);
Command add_tokenize_command(CLI::App& parent);
Command add_data_command(CLI::App& parent);
Command add_eval_command(CLI::App& parent);
Command add_generate_command(CLI::App& parent);
Command add_merge_command(CLI::App& parent);
Command add_version_command(CLI::App& parent);
Command add_report_command(CLI::App& parent);

}  // namespace cpt::cli
