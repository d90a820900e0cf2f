#pragma once
// A SentencePiece model (the Llama-2 tokenizer, or any .model file).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cpt::data {

struct SentencePieceModule;  // the privately loaded library, see tokenizer.cpp

class Tokenizer {
 public:
  // Throws InputError naming the file when it is missing or not a model.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Safe to call from several threads at once: the model is read-only.
  void encode(std::string_view text, std::vector<int>& ids) const;
  std::string decode(const std::vector<int>& ids) const;

  int vocab_size() const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const SentencePieceModule* module_;
  void* model_ = nullptr;
};

}  // namespace cpt::data
