#include "cpt/cli/app.h"

#include <malloc.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <memory>
#include <optional>

#include "commands.h"
#include "cpt/common/error.h"
#include "cpt/common/log.h"
#include "cpt/common/strings.h"
#include "cpt/dist/env.h"

namespace cpt::cli {

CLI::Validator at_least(long long minimum) {
  return CLI::Validator(
      [minimum](std::string& text) -> std::string {
        long long value = 0;
        size_t used = 0;
        try {
          value = std::stoll(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != text.size()) return "'" + text + "' is not a whole number";
        if (value < minimum) return "must be at least " + std::to_string(minimum) + ", not " + text;
        return "";
      },
      ">=" + std::to_string(minimum));
}

void add_examples(CLI::App& app, const std::vector<std::pair<std::string, std::string>>& examples) {
  std::string text = "\nExamples:\n";
  for (const auto& [command, what] : examples) text += fmt::format("  {}\n      {}\n", command, what);
  app.footer(text);
}

int run_command_line(int argc, char** argv, const CommandLine& line) {
  // Keep freed memory in the heap: glibc otherwise returns every large
  // tensor to the kernel and faults it back in, zeroed, on the next step
  // (a third of a CPU training step went to page faults).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  init_logging("info", 0);
  try {
    CLI::App app{"cpt-train: continual pre-training of Llama models on domain data", "cpt-train"};
    app.require_subcommand(0, 1);
    app.fallthrough();  // --log-level may follow the subcommand
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "trace | debug | info | warn | error | off")->capture_default_str();
    const std::vector<Command> commands = line.add_commands(app);

    // A misspelt subcommand ("tokenise") would otherwise be taken as stray
    // arguments of the top-level command, or its --help as the top-level help.
    if (argc > 1 && argv[1][0] != '-') {
      std::vector<std::string> names;
      for (const Command& command : commands) names.push_back(command.app->get_name());
      if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
        std::string message = fmt::format("'{}' is not a cpt-train subcommand (they are {}; --config FILE trains)",
                                          argv[1], join(names, ", "));
        if (auto guess = closest_match(argv[1], names)) message += fmt::format("; did you mean '{}'?", *guess);
        spdlog::error("{}", message);
        return kExitBadInput;
      }
    }

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app.exit(e);  // --help
      app.exit(e);
      return kExitBadInput;
    }

    const Command* chosen = nullptr;
    for (const Command& command : commands) {
      if (command.app->parsed()) chosen = &command;
    }
    if (line.before_run) line.before_run(chosen != nullptr ? chosen->app->get_name() : "");
    init_logging(log_level, dist::launch_env_from_environment().rank);
    if (line.after_logging) line.after_logging(chosen != nullptr ? chosen->app->get_name() : "");
    if (chosen != nullptr) return chosen->run();
    if (line.without_subcommand) {
      if (const std::optional<int> code = line.without_subcommand()) return *code;
    }
    std::fprintf(stderr, "%s", app.help().c_str());
    spdlog::error("no subcommand and no --config given; try `cpt-train --config configs/tiny.yaml --dry-run`");
    return kExitBadInput;
  } catch (const PeerFailure& e) {
    spdlog::error("{}", e.what());
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    std::_Exit(kExitFailure);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return exit_code_for(e);
  }
}

}  // namespace cpt::cli
