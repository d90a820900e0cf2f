// cpt-train generate --checkpoint DIR [--tokenizer MODEL] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S]

#include <memory>

#include "commands.h"
#include "cpt/common/error.h"

namespace cpt::cli {

namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string tokenizer;
  std::string prompt;
  int max_new_tokens = 128;
  double temperature = 0.8;
  double top_p = 0.95;
  int64_t seed = 0;
};

}  // namespace

Command add_generate_command(CLI::App& parent) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* app = parent.add_subcommand("generate", "sample a continuation of a prompt from a checkpoint");
  app->add_option("--checkpoint", args->checkpoint, "checkpoint or Hugging Face model directory")->required();
  app->add_option("--tokenizer", args->tokenizer, "SentencePiece .model (default: the checkpoint's)");
  app->add_option("--prompt", args->prompt, "text to continue")->required();
  app->add_option("--max-new-tokens", args->max_new_tokens, "tokens to sample")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--temperature", args->temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  app->add_option("--top-p", args->top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  return {app, [args]() -> int { throw NotBuiltYet("cpt-train generate", "the CPT core, issue #4"); }};
}

}  // namespace cpt::cli
