#pragma once
// Hugging Face tokenizer.json files of byte-level BPE, as Llama-3 and Qwen2
// ship them: the added (special) tokens matched first, an optional NFC
// normalizer, the pre-tokenizer's regex split (PCRE2 with Unicode
// properties; HF uses Oniguruma with the same pattern), the GPT-2 byte to
// character map, then the merges by rank. Ids equal HF tokenizers' encode
// (tests/data/bpe_tokenizer_test.cpp). What a file asks for that is not
// implemented (another model type, normalizer, pre-tokenizer or option) is
// refused when it is loaded, naming the key. Pure C++.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cpt::data {

class BpeTokenizer {
 public:
  // `path`: a tokenizer.json. Its directory's tokenizer_config.json, when
  // present, names BOS and EOS; otherwise the post-processor's template
  // names BOS. Throws InputError naming the file and key.
  explicit BpeTokenizer(const std::string& path);
  ~BpeTokenizer();
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // Ids of `text` without BOS/EOS. Safe from several threads at once.
  void encode(std::string_view text, std::vector<int>& ids) const;
  std::string decode(const std::vector<int>& ids) const;

  int vocab_size() const;  // the largest id + 1, added tokens included
  int bos_id() const;      // -1 when the tokenizer has none
  int eos_id() const;

 private:
  struct Model;
  void load(const std::string& path);
  std::unique_ptr<Model> model_;
};

// True when `path` holds JSON (a tokenizer.json) rather than a SentencePiece model.
bool is_tokenizer_json(const std::string& path);

}  // namespace cpt::data
