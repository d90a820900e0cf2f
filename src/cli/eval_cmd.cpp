// cpt-train eval --checkpoint DIR [--tokenizer MODEL] (--input FILE... | --prefix PREFIX) [--seq-len N] [--json]

#include <cstdio>
#include <fmt/format.h>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "commands.h"
#include "cpt/common/error.h"
#include "cpt/data/indexed_dataset.h"
#include "cpt/data/text_input.h"
#include "cpt/data/tokenizer.h"
#include "cpt/train/inference.h"

namespace fs = std::filesystem;

namespace cpt::cli {

namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string prefix;
  int seq_len = 0;
  int batch = 4;
  bool json = false;
};

std::vector<int64_t> tokens_of_inputs(const EvalArgs& args, int64_t model_vocab) {
  const std::string path = args.tokenizer.empty() ? (fs::path(args.checkpoint) / "tokenizer.model").string() : args.tokenizer;
  const data::Tokenizer tokenizer(path);
  // Another tokenizer's ids would mostly fall inside the vocabulary and be
  // scored as garbage: refuse the pair, as generate does.
  if (tokenizer.vocab_size() != model_vocab) {
    throw InputError(fmt::format("tokenizer '{}' has {} pieces but the model's vocabulary is {}; evaluate with the "
                                 "tokenizer the model was trained with",
                                 path, tokenizer.vocab_size(), model_vocab));
  }
  std::vector<int64_t> tokens;
  std::vector<int> ids;
  std::string record, text, reason;
  for (const auto& input : args.inputs) {
    const data::InputFile file = data::classify_input(input);
    data::RecordReader reader(file);
    int64_t line = 0;
    while (reader.next(record, line)) {
      if (!data::document_text(record, file.format, "text", text, reason)) {
        throw InputError(fmt::format("{}:{}: {}", input, line, reason));
      }
      tokenizer.encode(text, ids);
      tokens.push_back(tokenizer.bos_id());
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      tokens.push_back(tokenizer.eos_id());
    }
  }
  return tokens;
}

int run_eval(const EvalArgs& args) {
  if (args.inputs.empty() == args.prefix.empty()) {
    throw InputError("cpt-train eval needs exactly one of --input FILE... or --prefix PREFIX");
  }
  model::Llama model = train::load_model(args.checkpoint);
  const int64_t context = model->shape().max_position_embeddings;
  if (args.seq_len > context) {
    throw InputError(fmt::format("--seq-len {} is longer than the model's context of {} tokens "
                                 "(max_position_embeddings of '{}'); use --seq-len {} or less",
                                 args.seq_len, context, args.checkpoint, context));
  }
  std::vector<int64_t> tokens;
  if (!args.prefix.empty()) {
    const data::IndexedDataset dataset(args.prefix);
    tokens.resize(static_cast<size_t>(dataset.tokens()));
    dataset.read_tokens(0, dataset.tokens(), tokens.data());
  } else {
    tokens = tokens_of_inputs(args, model->shape().vocab_size);
  }
  for (int64_t t : tokens) {
    if (t < 0 || t >= model->shape().vocab_size) {
      throw InputError(fmt::format("token id {} is outside the model's vocabulary of {}", t, model->shape().vocab_size));
    }
  }
  const int64_t seq_len = args.seq_len > 0 ? args.seq_len : context;
  const train::PerplexityResult r = train::perplexity(model, tokens, seq_len, args.batch);
  if (args.json) {
    const nlohmann::ordered_json out = {{"checkpoint", args.checkpoint}, {"seq_len", seq_len}, {"windows", r.windows},
                                        {"tokens", r.tokens}, {"loss", r.loss}, {"ppl", r.ppl}};
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("%s: loss %.4f, perplexity %.3f over %lld tokens (%lld windows of %lld)\n", args.checkpoint.c_str(),
                r.loss, r.ppl, static_cast<long long>(r.tokens), static_cast<long long>(r.windows),
                static_cast<long long>(seq_len));
  }
  return kExitOk;
}

}  // namespace

Command add_eval_command(CLI::App& parent) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* app = parent.add_subcommand("eval", "loss and perplexity of a checkpoint on text or token shards");
  app->add_option("--checkpoint", args->checkpoint, "checkpoint or Hugging Face model directory")->required();
  app->add_option("--tokenizer", args->tokenizer, "SentencePiece .model (default: the checkpoint's)");
  app->add_option("--input", args->inputs, "text files (.txt, .jsonl, optionally .gz/.zst) to evaluate on (repeatable)");
  app->add_option("--prefix", args->prefix, "token shard to evaluate on");
  app->add_option("--seq-len", args->seq_len, "tokens per window (default: the model's maximum)")
      ->check(at_least(1));
  app->add_option("--batch", args->batch, "windows per forward pass")->check(at_least(1))->capture_default_str();
  app->add_flag("--json", args->json, "print one JSON object");
  return {app, [args]() -> int { return run_eval(*args); }};
}

}  // namespace cpt::cli
