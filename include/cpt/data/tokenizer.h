#pragma once
// The tokenizer of a model: a SentencePiece model (Llama-2, Mistral:
// tokenizer.model) or a byte-level BPE tokenizer.json (Llama-3, Qwen2),
// told apart by the file's contents. A directory means its tokenizer.model,
// else its tokenizer.json.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cpt::data {

struct SentencePieceModule;  // the privately loaded library, see tokenizer.cpp
class BpeTokenizer;

class Tokenizer {
 public:
  // Throws InputError naming the file when it is missing or not a model.
  explicit Tokenizer(const std::string& path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Safe to call from several threads at once: the model is read-only.
  void encode(std::string_view text, std::vector<int>& ids) const;
  std::string decode(const std::vector<int>& ids) const;

  int vocab_size() const;
  // Whether a model with `model_vocab` embedding rows is one for this
  // tokenizer: the same count for SentencePiece; at least the tokenizer's
  // for tokenizer.json, whose models pad their embeddings (Qwen2.5-7B:
  // 152,064 rows for 151,665 tokens).
  bool fits_model_vocab(int64_t model_vocab) const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;
  const std::string& path() const { return path_; }  // the file read
  bool is_bpe() const { return bpe_ != nullptr; }
  // Whether encode() splits a SentencePiece text at single spaces and
  // reuses each thread's encodings of the words it has seen (only where
  // the model makes that exact: tokenizer.cpp says when).
  bool encodes_word_by_word() const { return word_by_word_; }

 private:
  void encode_word_by_word(std::string_view text, std::vector<int>& ids) const;
  void encode_whole(std::string_view text, std::vector<int>& ids) const;

  std::string path_;
  const SentencePieceModule* module_ = nullptr;
  void* model_ = nullptr;
  // Whether this SentencePiece model encodes a text as the concatenation of
  // its space-separated words' encodings (see tokenizer.cpp); then each
  // thread keeps the words it has seen, as HF tokenizers' BPE cache does.
  bool word_by_word_ = false;
  uint64_t instance_ = 0;  // tells the threads' word caches which Tokenizer filled them
  std::unique_ptr<BpeTokenizer> bpe_;
};

}  // namespace cpt::data
