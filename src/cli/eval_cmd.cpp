// cpt-train eval --checkpoint DIR|RUN [--config RUN.yaml] [--prefix [NAME=]PREFIX]... [--input FILE...]
//                [--seq-len N] [--batch N] [--max-batches N] [--tokenizer MODEL] [--json]

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <spdlog/spdlog.h>
#include <sstream>

#include "commands.h"
#include "eval_sets.h"
#include "progress.h"
#include "cpt/backend/backend.h"
#include "cpt/common/error.h"
#include "cpt/config/config.h"
#include "cpt/data/indexed_dataset.h"
#include "cpt/data/samples.h"
#include "cpt/data/text_input.h"
#include "cpt/data/tokenizer.h"
#include "cpt/dist/env.h"
#include "cpt/dist/process_group.h"
#include "cpt/io/model_dir.h"
#include "cpt/train/inference.h"

namespace fs = std::filesystem;

namespace cpt::cli {

namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string config;
  std::vector<std::string> overrides;
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::vector<std::string> prefixes;
  int seq_len = 0;
  int batch = 0;
  int max_batches = -1;  // -1: the eval set's own (data.eval[].max_batches), or every window
  bool json = false;
};

std::vector<int64_t> tokens_of_inputs(const EvalArgs& args, const std::string& checkpoint, int64_t model_vocab) {
  const std::string path = args.tokenizer.empty() ? checkpoint : args.tokenizer;  // a directory: its tokenizer.model or tokenizer.json
  const data::Tokenizer tokenizer(path);
  // Another tokenizer's ids would mostly fall inside the vocabulary and be
  // scored as garbage: refuse the pair, as generate does.
  if (!tokenizer.fits_model_vocab(model_vocab)) {
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
      if (file.format == data::InputFormat::kJsonl && record.find_first_not_of(" \t\r\f\v") == std::string::npos) continue;
      if (!data::document_text(record, file.format, "text", text, reason)) {
        throw InputError(fmt::format("{}:{}: {}", input, line, reason));
      }
      tokenizer.encode(text, ids);
      if (tokenizer.bos_id() >= 0) tokens.push_back(tokenizer.bos_id());  // Qwen2 has none
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      if (tokenizer.eos_id() >= 0) tokens.push_back(tokenizer.eos_id());
    }
  }
  return tokens;
}

// The run config that supplies the defaults: --config, else the one the
// checkpoint was saved under.
std::optional<config::Config> run_config(const EvalArgs& args, const std::string& checkpoint) {
  if (!args.config.empty()) {
    config::LoadOptions options;
    options.overrides = args.overrides;
    return config::load_file(args.config, options).config;
  }
  if (!args.overrides.empty()) throw InputError("eval --set needs --config RUN.yaml");
  const fs::path saved = fs::path(checkpoint) / "trainer_state" / "config.resolved.yaml";
  std::ifstream in(saved);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  try {
    return config::load_text(text.str(), saved.string()).config;
  } catch (const InputError& e) {
    spdlog::warn("{} no longer loads ({}); give --config RUN.yaml for the run's defaults", saved.string(), e.what());
    return std::nullopt;
  }
}

int run_eval(const EvalArgs& args) {
  const std::string checkpoint = io::resolve_model_dir(args.checkpoint);
  if (checkpoint != args.checkpoint) spdlog::info("evaluating {}", checkpoint);
  if (!args.inputs.empty() && !args.prefixes.empty()) {
    throw InputError("cpt-train eval takes --input FILE... or --prefix PREFIX..., not both");
  }
  const std::optional<config::Config> run = run_config(args, checkpoint);
  model::Llama model = train::load_model(checkpoint);
  const model::Shape& shape = model->shape();
  if (run && run->model.shape.vocab_size != shape.vocab_size) {
    throw InputError(fmt::format("the run config's model.vocab_size {} is not the checkpoint's {} ({})",
                                 run->model.shape.vocab_size, shape.vocab_size, checkpoint));
  }
  const int64_t context = shape.max_position_embeddings;
  if (args.seq_len > context) {
    throw InputError(fmt::format("--seq-len {} is longer than the model's context of {} tokens "
                                 "(max_position_embeddings of '{}'); use --seq-len {} or less",
                                 args.seq_len, context, checkpoint, context));
  }
  // The run's window length and micro-batch, so the numbers are the ones training logged.
  const int64_t seq_len = args.seq_len > 0 ? args.seq_len : run ? std::min(run->data.seq_len, context) : context;
  const int64_t batch = args.batch > 0 ? args.batch : run ? run->train.micro_batch_size : 4;

  std::vector<EvalSet> sets;
  for (const std::string& spec : args.prefixes) {
    const size_t equals = spec.find('=');
    EvalSet set;
    set.name = equals == std::string::npos ? fs::path(spec).filename().string() : spec.substr(0, equals);
    set.prefix = equals == std::string::npos ? spec : spec.substr(equals + 1);
    sets.push_back(set);
  }
  if (sets.empty() && args.inputs.empty()) {
    if (!run || run->data.eval.empty()) {
      throw InputError(fmt::format("nothing to evaluate on: give --prefix PREFIX or --input FILE, or --config RUN.yaml "
                                   "with data.eval sets ({} keeps no run config)",
                                   checkpoint));
    }
    sets = run_eval_sets(*run);
  }
  if (args.max_batches >= 0) {
    for (auto& set : sets) set.max_batches = args.max_batches;
  }

  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  const auto report = [&](const std::string& name, const std::string& source, const train::PerplexityResult& r) {
    results.push_back({{"name", name}, {"source", source}, {"windows", r.windows}, {"tokens", r.tokens},
                       {"loss", r.loss}, {"ppl", r.ppl}});
    if (!args.json) {
      std::printf("%s: loss %.4f, perplexity %.3f over %lld tokens (%lld windows of %lld)\n", name.c_str(), r.loss,
                  r.ppl, static_cast<long long>(r.tokens), static_cast<long long>(r.windows),
                  static_cast<long long>(seq_len));
      std::fflush(stdout);
    }
  };
  ProgressLine progress("eval");
  const auto start = std::chrono::steady_clock::now();
  if (!args.inputs.empty()) {
    const std::vector<int64_t> tokens = tokens_of_inputs(args, checkpoint, shape.vocab_size);
    train::PerplexityResult r = train::perplexity(model, tokens, seq_len, batch, eval_progress(progress, "input", start));
    progress.finish();
    report("input", args.inputs.size() == 1 ? args.inputs.front() : fmt::format("{} files", args.inputs.size()), r);
  } else {
    const std::unique_ptr<dist::ProcessGroup> group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
    const std::unique_ptr<backend::Backend> device = backend::select_backend("cpu", 0);
    for (const EvalSet& set : sets) {
      const auto samples = open_eval_set(set, seq_len, shape.vocab_size);
      const train::PerplexityResult r =
          train::evaluate_windows(model, *samples, batch, set.max_batches, *group, *device,
                                  eval_progress(progress, set.name, start));
      progress.finish();
      report(set.name, set.prefix, r);
    }
  }
  if (args.json) {
    nlohmann::ordered_json out = {{"checkpoint", checkpoint}, {"seq_len", seq_len}, {"batch", batch}};
    // One set: its numbers at the top level too, as before several were allowed.
    if (results.size() == 1) {
      for (const char* key : {"windows", "tokens", "loss", "ppl"}) out[key] = results[0][key];
    }
    out["sets"] = results;
    std::printf("%s\n", out.dump(2).c_str());
  }
  return kExitOk;
}

}  // namespace

Command add_eval_command(CLI::App& parent) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* app = parent.add_subcommand("eval", "loss and perplexity of a checkpoint on text or token shards");
  add_examples(*app, {{"cpt-train eval --checkpoint runs/medical",
                       "the latest checkpoint on the run's eval sets: the values training logged"},
                      {"cpt-train eval --checkpoint runs/medical/checkpoints/step-00002000 --prefix pubmed=data/pubmed-val "
                       "--prefix web=data/web-val --max-batches 50",
                       "two held-out shards, 50 batches each"},
                      {"cpt-train eval --checkpoint models/Llama-2-7b-hf --input notes.jsonl --seq-len 4096 --json",
                       "a base model on raw text, as JSON"}});
  app->add_option("--checkpoint", args->checkpoint,
                  "checkpoint or Hugging Face model directory; a run directory or RUN/checkpoints/latest means its "
                  "latest checkpoint")
      ->required();
  app->add_option("--config", args->config,
                  "run config for the defaults: its data.eval sets, seq_len and micro-batch (default: the one the "
                  "checkpoint was saved under)")
      ->check(CLI::ExistingFile);
  app->add_option("--set", args->overrides, "override a key of --config (repeatable)")->type_name("KEY=VALUE");
  app->add_option("--tokenizer", args->tokenizer, "SentencePiece .model for --input (default: the checkpoint's)");
  app->add_option("--input", args->inputs, "text files (.txt, .jsonl, optionally .gz/.zst) to evaluate on (repeatable)");
  app->add_option("--prefix", args->prefixes, "token shard to evaluate on, as PREFIX or NAME=PREFIX (repeatable)");
  app->add_option("--seq-len", args->seq_len, "tokens per window (default: the run's data.seq_len, else the model's maximum)")
      ->check(at_least(1));
  app->add_option("--batch", args->batch, "windows per forward pass (default: the run's train.micro_batch_size, else 4)")
      ->check(at_least(1));
  app->add_option("--max-batches", args->max_batches,
                  "score only the first N batches of each set (default: data.eval's max_batches for the run's sets, "
                  "every window otherwise; 0 = every window)")
      ->check(at_least(0));
  app->add_flag("--json", args->json, "print one JSON object");
  return {app, [args]() -> int { return run_eval(*args); }};
}

}  // namespace cpt::cli
