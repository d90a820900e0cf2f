// cpt-train data inspect --prefix PREFIX
// cpt-train data preview --config FILE.yaml [--samples N]

#include <memory>

#include "commands.h"
#include "cpt/common/error.h"

namespace cpt::cli {

namespace {

struct DataArgs {
  std::string prefix;
  bool json = false;
  std::string config;
  std::vector<std::string> overrides;
  int samples = 4;
};

}  // namespace

Command add_data_command(CLI::App& parent) {
  auto args = std::make_shared<DataArgs>();
  CLI::App* app = parent.add_subcommand("data", "look at token shards and at the blended training stream");
  app->require_subcommand(1);

  CLI::App* inspect = app->add_subcommand("inspect", "validate a .bin/.idx shard and print its statistics");
  inspect->add_option("--prefix", args->prefix, "shard path without .bin/.idx")->required();
  inspect->add_flag("--json", args->json, "print one JSON object");

  CLI::App* preview = app->add_subcommand("preview", "decode the first samples of a config's blended stream");
  preview->add_option("--config", args->config, "run configuration (YAML)")->required()->check(CLI::ExistingFile);
  preview->add_option("--set", args->overrides, "override a config key (repeatable)")->type_name("KEY=VALUE");
  preview->add_option("--samples", args->samples, "how many samples to show")->check(CLI::PositiveNumber)
      ->capture_default_str();

  return {app, [args, inspect]() -> int {
            const std::string what = inspect->parsed() ? "cpt-train data inspect" : "cpt-train data preview";
            throw NotBuiltYet(what, "the data pipeline, issue #3");
          }};
}

}  // namespace cpt::cli
