#pragma once
// `cpt-train tokenize`: raw text → Megatron .bin/.idx with SentencePiece,
// encoded by N worker threads while the output keeps the input order.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cpt/data/indexed_dataset.h"

namespace cpt::data {

struct TokenizeOptions {
  std::string tokenizer;            // SentencePiece .model
  std::vector<std::string> inputs;  // .jsonl / .txt, optionally .gz / .zst
  std::string output_prefix;        // writes <prefix>.bin and <prefix>.idx
  std::string text_key = "text";    // JSONL key holding the document
  int workers = 0;                  // encoding threads; 0 = one per core
  bool add_bos = true;              // BOS before every document
  bool add_eos = true;              // EOS after every document (Megatron's EOD)
  bool strict = false;              // the first bad record is fatal
};

struct FileReport {
  std::string path;
  int64_t documents = 0;
  int64_t bad_records = 0;
  std::string first_bad;  // "line 12: invalid JSON"
  std::vector<std::string> examples;  // the first few bad records, first_bad first
};

struct TokenizeReport {
  int64_t documents = 0;
  int64_t tokens = 0;
  uint64_t input_bytes = 0;  // on disk
  double seconds = 0;
  TokenDtype dtype = TokenDtype::kUint16;
  std::vector<FileReport> files;
};

struct TokenizeProgress {
  int64_t documents = 0;
  int64_t tokens = 0;
  uint64_t bytes_done = 0;   // on-disk input bytes whose documents are written
  uint64_t bytes_total = 0;
  double seconds = 0;
};

// Runs the whole job. `on_progress` (optional) is called from the calling
// thread about twice a second. Throws InputError for bad inputs (and for the
// first bad record under `strict`), leaving no partial output behind.
TokenizeReport tokenize(const TokenizeOptions& options,
                        const std::function<void(const TokenizeProgress&)>& on_progress = {});

}  // namespace cpt::data
