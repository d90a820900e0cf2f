// cpt-train merge --config MERGE.yaml --output DIR   (mergekit's YAML schema)

#include <memory>

#include "commands.h"
#include "cpt/common/error.h"

namespace cpt::cli {

namespace {

struct MergeArgs {
  std::string config;
  std::string output;
};

}  // namespace

Command add_merge_command(CLI::App& parent) {
  auto args = std::make_shared<MergeArgs>();
  CLI::App* app = parent.add_subcommand("merge", "merge checkpoints (linear, slerp, ties, dare, …) as mergekit does");
  app->add_option("--config", args->config, "mergekit merge configuration (YAML)")->required()
      ->check(CLI::ExistingFile);
  app->add_option("--output", args->output, "directory for the merged Hugging Face model")->required();
  return {app, [args]() -> int { throw NotBuiltYet("cpt-train merge", "model merging, issue #6"); }};
}

}  // namespace cpt::cli
