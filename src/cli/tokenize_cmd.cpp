// cpt-train tokenize --tokenizer MODEL --input PATH... --output-prefix PREFIX

#include <memory>

#include "commands.h"
#include "cpt/common/error.h"

namespace cpt::cli {

namespace {

struct TokenizeArgs {
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string output_prefix;
  std::string text_key = "text";
  int workers = 0;
  bool no_bos = false;
  bool no_eos = false;
  bool strict = false;
};

}  // namespace

Command add_tokenize_command(CLI::App& parent) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* app = parent.add_subcommand("tokenize", "turn raw text into Megatron-compatible .bin/.idx token shards");
  app->add_option("--tokenizer", args->tokenizer, "SentencePiece .model")->required()->check(CLI::ExistingFile);
  app->add_option("--input", args->inputs, ".jsonl or .txt files, optionally .gz/.zst (repeatable)")->required();
  app->add_option("--output-prefix", args->output_prefix, "writes PREFIX.bin and PREFIX.idx")->required();
  app->add_option("--text-key", args->text_key, "JSON key holding the document text")->capture_default_str();
  app->add_option("--workers", args->workers, "encoding threads (default: all cores)")->check(CLI::NonNegativeNumber);
  app->add_flag("--no-bos", args->no_bos, "do not prepend BOS to each document");
  app->add_flag("--no-eos", args->no_eos, "do not append EOS to each document");
  app->add_flag("--strict", args->strict, "stop at the first bad line instead of counting and skipping it");
  return {app, [args]() -> int { throw NotBuiltYet("cpt-train tokenize", "the data pipeline, issue #3"); }};
}

}  // namespace cpt::cli
