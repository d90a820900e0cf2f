// cpt-train generate --checkpoint DIR [--tokenizer MODEL] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S]

#include <cstdio>
#include <fmt/format.h>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "cpt/common/error.h"
#include "cpt/data/tokenizer.h"
#include "cpt/train/inference.h"

namespace fs = std::filesystem;

namespace cpt::cli {

namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string tokenizer;
  std::string prompt;
  int max_new_tokens = 128;
  double temperature = 0.8;
  double top_p = 0.95;
  uint64_t seed = 0;
};

int run_generate(const GenerateArgs& args) {
  const std::string path = args.tokenizer.empty() ? (fs::path(args.checkpoint) / "tokenizer.model").string() : args.tokenizer;
  const data::Tokenizer tokenizer(path);
  model::Llama model = train::load_model(args.checkpoint);
  if (tokenizer.vocab_size() != model->shape().vocab_size) {
    throw InputError(fmt::format("tokenizer '{}' has {} pieces but the model's vocabulary is {}", path,
                                 tokenizer.vocab_size(), model->shape().vocab_size));
  }
  std::vector<int> ids;
  tokenizer.encode(args.prompt, ids);
  std::vector<int64_t> prompt{tokenizer.bos_id()};
  prompt.insert(prompt.end(), ids.begin(), ids.end());
  train::SamplingOptions options;
  options.max_new_tokens = args.max_new_tokens;
  options.temperature = args.temperature;
  options.top_p = args.top_p;
  options.seed = args.seed;
  options.stop_token = tokenizer.eos_id();
  const auto tokens = train::generate(model, prompt, options);
  std::vector<int> out(tokens.begin() + 1, tokens.end());  // without BOS
  std::printf("%s\n", tokenizer.decode(out).c_str());
  return kExitOk;
}

}  // namespace

Command add_generate_command(CLI::App& parent) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* app = parent.add_subcommand("generate", "sample a continuation of a prompt from a checkpoint");
  app->add_option("--checkpoint", args->checkpoint, "checkpoint or Hugging Face model directory")->required();
  app->add_option("--tokenizer", args->tokenizer, "SentencePiece .model (default: the checkpoint's)");
  app->add_option("--prompt", args->prompt, "text to continue")->required();
  app->add_option("--max-new-tokens", args->max_new_tokens, "tokens to sample")->check(at_least(1))
      ->capture_default_str();
  app->add_option("--temperature", args->temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  app->add_option("--top-p", args->top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  return {app, [args]() -> int { return run_generate(*args); }};
}

}  // namespace cpt::cli
