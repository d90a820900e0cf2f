// cpt-train generate --checkpoint DIR [--tokenizer MODEL] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S] [--truncate-prompt]

#include <cstdio>
#include <fmt/format.h>
#include <filesystem>
#include <memory>
#include <spdlog/spdlog.h>

#include "commands.h"
#include "cpt/common/error.h"
#include "cpt/data/tokenizer.h"
#include "cpt/io/model_dir.h"
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
  bool truncate_prompt = false;
};

int run_generate(const GenerateArgs& args) {
  const std::string checkpoint = io::resolve_model_dir(args.checkpoint);
  const std::string path = args.tokenizer.empty() ? checkpoint : args.tokenizer;  // a directory: its tokenizer.model or tokenizer.json
  const data::Tokenizer tokenizer(path);
  model::Llama model = train::load_model(checkpoint);
  if (!tokenizer.fits_model_vocab(model->shape().vocab_size)) {
    throw InputError(fmt::format("tokenizer '{}' has {} pieces but the model's vocabulary is {}", path,
                                 tokenizer.vocab_size(), model->shape().vocab_size));
  }
  std::vector<int> ids;
  tokenizer.encode(args.prompt, ids);
  std::vector<int64_t> prompt;
  if (tokenizer.bos_id() >= 0) prompt.push_back(tokenizer.bos_id());  // Qwen2 has none
  prompt.insert(prompt.end(), ids.begin(), ids.end());
  if (prompt.empty()) throw InputError("the prompt is empty and the tokenizer has no BOS token to start from");
  // The prompt must leave room in the context for at least one new token.
  const int64_t context = model->shape().max_position_embeddings;
  if (static_cast<int64_t>(prompt.size()) >= context) {
    if (!args.truncate_prompt) {
      throw InputError(fmt::format("the prompt is {} tokens (with BOS) and the model's context is {}: nothing can be "
                                   "generated; shorten it, or pass --truncate-prompt to keep its last {} tokens",
                                   prompt.size(), context, context - 1));
    }
    const size_t dropped = prompt.size() - static_cast<size_t>(context - 1);
    prompt.erase(prompt.begin() + 1, prompt.begin() + 1 + static_cast<std::ptrdiff_t>(dropped));
    spdlog::warn("--truncate-prompt: dropped the first {} tokens of the prompt to fit the context of {}", dropped,
                 context);
  }
  const size_t prompt_tokens = prompt.size();
  train::SamplingOptions options;
  options.max_new_tokens = args.max_new_tokens;
  options.temperature = args.temperature;
  options.top_p = args.top_p;
  options.seed = args.seed;
  options.stop_token = tokenizer.eos_id();
  train::StopReason stopped{};
  const auto tokens = train::generate(model, prompt, options, &stopped);
  std::vector<int> out(tokens.begin() + (tokenizer.bos_id() >= 0 ? 1 : 0), tokens.end());  // without BOS
  std::printf("%s\n", tokenizer.decode(out).c_str());
  std::fflush(stdout);
  // On stderr, so the text on stdout stays clean for a pipe.
  spdlog::info("generated {} tokens after a {}-token prompt; stopped: {}", tokens.size() - prompt_tokens,
               prompt_tokens, train::describe(stopped));
  return kExitOk;
}

}  // namespace

Command add_generate_command(CLI::App& parent) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* app = parent.add_subcommand("generate", "sample a continuation of a prompt from a checkpoint");
  add_examples(*app, {{"cpt-train generate --checkpoint runs/medical --prompt \"The patient presented with\" --temperature 0",
                       "the greedy continuation from the run's latest checkpoint"},
                      {"cpt-train generate --checkpoint runs/medical/checkpoints/step-00001000 --prompt \"Aspirin\" "
                       "--max-new-tokens 64 --seed 3",
                       "a sampled continuation of an earlier checkpoint"}});
  app->add_option("--checkpoint", args->checkpoint,
                  "checkpoint or Hugging Face model directory; a run directory or RUN/checkpoints/latest means its "
                  "latest checkpoint")
      ->required();
  app->add_option("--tokenizer", args->tokenizer, "SentencePiece .model (default: the checkpoint's)");
  app->add_option("--prompt", args->prompt, "text to continue")->required();
  app->add_option("--max-new-tokens", args->max_new_tokens, "tokens to sample")->check(at_least(1))
      ->capture_default_str();
  app->add_option("--temperature", args->temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  app->add_option("--top-p", args->top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  app->add_flag("--truncate-prompt", args->truncate_prompt,
                "keep the end of a prompt longer than the model's context (otherwise refused)");
  return {app, [args]() -> int { return run_generate(*args); }};
}

}  // namespace cpt::cli
