// cpt-train eval --checkpoint DIR [--tokenizer MODEL] (--input FILE... | --prefix PREFIX) [--seq-len N]

#include <memory>

#include "commands.h"
#include "cpt/common/error.h"

namespace cpt::cli {

namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string prefix;
  int seq_len = 0;
  bool json = false;
};

}  // namespace

Command add_eval_command(CLI::App& parent) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* app = parent.add_subcommand("eval", "loss and perplexity of a checkpoint on text or token shards");
  app->add_option("--checkpoint", args->checkpoint, "checkpoint or Hugging Face model directory")->required();
  app->add_option("--tokenizer", args->tokenizer, "SentencePiece .model (default: the checkpoint's)");
  auto* input = app->add_option("--input", args->inputs, "text files to evaluate on (repeatable)");
  auto* prefix = app->add_option("--prefix", args->prefix, "token shard to evaluate on");
  input->excludes(prefix);
  app->add_option("--seq-len", args->seq_len, "tokens per window (default: the model's maximum)")
      ->check(CLI::PositiveNumber);
  app->add_flag("--json", args->json, "print one JSON object");
  return {app, [args]() -> int {
            if (args->inputs.empty() && args->prefix.empty()) {
              throw InputError("cpt-train eval needs --input FILE... or --prefix PREFIX");
            }
            throw NotBuiltYet("cpt-train eval", "the CPT core, issue #4");
          }};
}

}  // namespace cpt::cli
