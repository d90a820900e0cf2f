// cpt-train tokenize --tokenizer MODEL|tokenizer.json|DIR --input PATH... --output-prefix PREFIX

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "progress.h"
#include "cpt/common/error.h"
#include "cpt/common/strings.h"
#include "cpt/data/tokenize.h"

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

std::string progress_line(const data::TokenizeProgress& p) {
  const double rate = p.seconds > 0 ? static_cast<double>(p.bytes_done) / p.seconds : 0;
  const double eta = rate > 0 ? static_cast<double>(p.bytes_total - p.bytes_done) / rate : 0;
  return fmt::format("{} documents, {} tokens, {:.1f} MB/s, {:.0f}% of input, ETA {:.0f}s",
                     with_thousands(p.documents), with_thousands(p.tokens), rate / 1e6,
                     p.bytes_total ? 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total)
                                   : 100.0,
                     eta);
}

int run_tokenize(const TokenizeArgs& args) {
  data::TokenizeOptions options;
  options.tokenizer = args.tokenizer;
  options.inputs = args.inputs;
  options.output_prefix = args.output_prefix;
  options.text_key = args.text_key;
  options.workers = args.workers;
  options.add_bos = !args.no_bos;
  options.add_eos = !args.no_eos;
  options.strict = args.strict;

  ProgressLine progress("tokenize");
  auto on_progress = [&](const data::TokenizeProgress& p) { progress.update(progress_line(p), p.seconds); };
  const data::TokenizeReport report = data::tokenize(options, on_progress);
  progress.finish();
  for (const auto& file : report.files) {
    if (file.bad_records > 0) {
      const int64_t records = file.bad_records + file.documents;
      // Most of a file skipped is more likely a wrong --text-key or encoding than a few bad lines.
      const bool most = 2 * file.bad_records > records;
      spdlog::warn("{}: skipped {} of {} records ({:.1f}%){}; e.g. {}", file.path, with_thousands(file.bad_records),
                   with_thousands(records), 100.0 * static_cast<double>(file.bad_records) / static_cast<double>(records),
                   most ? ", most of the file: check --text-key and that the file is UTF-8 JSON lines" : "",
                   join(file.examples, "; "));
    }
  }
  spdlog::info("wrote {}.bin/.idx: {} documents, {} {} tokens in {:.1f}s ({:.1f} MB/s of input)",
               args.output_prefix, with_thousands(report.documents), with_thousands(report.tokens),
               data::dtype_name(report.dtype), report.seconds,
               report.seconds > 0 ? static_cast<double>(report.input_bytes) / report.seconds / 1e6 : 0.0);
  return kExitOk;
}

}  // namespace

Command add_tokenize_command(CLI::App& parent) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* app = parent.add_subcommand("tokenize", "turn raw text into Megatron-compatible .bin/.idx token shards");
  add_examples(*app, {{"cpt-train tokenize --tokenizer llama2/tokenizer.model --input pubmed.jsonl.zst "
                       "--output-prefix data/pubmed",
                       "JSON lines with a \"text\" key, compressed or not, into data/pubmed.bin/.idx"},
                      {"cpt-train tokenize --tokenizer /models/Meta-Llama-3.1-8B --input a.txt --input b.txt "
                       "--output-prefix data/notes --workers 8",
                       "plain text files, one document each, with 8 encoding threads"},
                      {"cpt-train tokenize --tokenizer llama2/tokenizer.model --input patents.jsonl --text-key abstract "
                       "--output-prefix data/patents",
                       "the documents under another JSON key"}});
  app->add_option("--tokenizer", args->tokenizer,
                  "SentencePiece .model or HF tokenizer.json (byte-level BPE: Llama-3, Qwen2), or a model directory "
                  "holding one")
      ->required()
      ->check(CLI::ExistingPath);
  app->add_option("--input", args->inputs, ".jsonl or .txt files, optionally .gz/.zst (repeatable)")->required();
  app->add_option("--output-prefix", args->output_prefix, "writes PREFIX.bin and PREFIX.idx")->required();
  app->add_option("--text-key", args->text_key, "JSON key holding the document text")->capture_default_str();
  app->add_option("--workers", args->workers, "encoding threads (default: all cores)")->check(at_least(0));
  app->add_flag("--no-bos", args->no_bos, "do not prepend BOS to each document");
  app->add_flag("--no-eos", args->no_eos, "do not append EOS to each document");
  app->add_flag("--strict", args->strict, "stop at the first bad line instead of counting and skipping it");
  return {app, [args]() -> int { return run_tokenize(*args); }};
}

}  // namespace cpt::cli
