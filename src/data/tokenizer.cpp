#include "cpt/data/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <mutex>
#include <stdexcept>

#include "cpt/common/error.h"
#include "cpt/data/bpe_tokenizer.h"
#include "cpt/common/plugin.h"
#include "sentencepiece_module.h"

namespace fs = std::filesystem;

namespace cpt::data {

// The loaded libcpt_sentencepiece.so, shared by every Tokenizer.
struct SentencePieceModule {
  decltype(&cpt_spm_load) load;
  decltype(&cpt_spm_free) free;
  decltype(&cpt_spm_piece_size) piece_size;
  decltype(&cpt_spm_bos_id) bos_id;
  decltype(&cpt_spm_eos_id) eos_id;
  decltype(&cpt_spm_encode) encode;
  decltype(&cpt_spm_decode) decode;
};

namespace {

constexpr const char* kModuleName = "libcpt_sentencepiece.so";

template <class F>
void bind(void* handle, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(handle, name));
  if (out == nullptr) throw std::runtime_error(fmt::format("{} lacks {}", kModuleName, name));
}

}  // namespace

static const SentencePieceModule& load_module() {
  static std::once_flag once;
  static SentencePieceModule module;
  static std::string failure;
  std::call_once(once, [] {
    std::string tried;
    for (const auto& path : plugin_candidates(kModuleName, "CPT_SENTENCEPIECE_MODULE")) {
      if (!fs::exists(path)) {
        tried += " " + path;
        continue;
      }
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle == nullptr) {
        failure = fmt::format("cannot load {}: {}", path, dlerror());
        return;
      }
      bind(handle, "cpt_spm_load", module.load);
      bind(handle, "cpt_spm_free", module.free);
      bind(handle, "cpt_spm_piece_size", module.piece_size);
      bind(handle, "cpt_spm_bos_id", module.bos_id);
      bind(handle, "cpt_spm_eos_id", module.eos_id);
      bind(handle, "cpt_spm_encode", module.encode);
      bind(handle, "cpt_spm_decode", module.decode);
      return;
    }
    failure = fmt::format("cannot find {} (looked at{}); set CPT_SENTENCEPIECE_MODULE to its path", kModuleName, tried);
  });
  if (!failure.empty()) throw std::runtime_error(failure);
  return module;
}

Tokenizer::Tokenizer(const std::string& requested) : path_(requested) {
  if (fs::is_directory(requested)) {
    path_ = (fs::path(requested) / "tokenizer.model").string();
    if (!fs::exists(path_)) path_ = (fs::path(requested) / "tokenizer.json").string();
    if (!fs::exists(path_)) {
      throw InputError(fmt::format("tokenizer directory '{}' has neither tokenizer.model nor tokenizer.json", requested));
    }
  }
  if (!fs::is_regular_file(path_)) {
    throw InputError(fmt::format("tokenizer '{}' does not exist or is not a file", path_));
  }
  if (is_tokenizer_json(path_)) {
    bpe_ = std::make_unique<BpeTokenizer>(path_);
    return;
  }
  module_ = &load_module();
  std::string error;
  model_ = module_->load(path_.c_str(), &error);
  if (model_ == nullptr) {
    throw InputError(fmt::format("cannot load SentencePiece model '{}': {}", path_, error));
  }
}

Tokenizer::~Tokenizer() {
  if (model_ != nullptr) module_->free(model_);
}

void Tokenizer::encode(std::string_view text, std::vector<int>& ids) const {
  if (bpe_) return bpe_->encode(text, ids);
  ids.clear();
  std::string error;
  if (!module_->encode(model_, text.data(), text.size(), &ids, &error)) {
    throw std::runtime_error(fmt::format("SentencePiece encode failed: {}", error));
  }
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  if (bpe_) return bpe_->decode(ids);
  std::string text, error;
  if (!module_->decode(model_, &ids, &text, &error)) {
    throw std::runtime_error(fmt::format("SentencePiece decode failed: {}", error));
  }
  return text;
}

int Tokenizer::vocab_size() const { return bpe_ ? bpe_->vocab_size() : module_->piece_size(model_); }
bool Tokenizer::fits_model_vocab(int64_t model_vocab) const {
  return bpe_ ? vocab_size() <= model_vocab : vocab_size() == model_vocab;
}
int Tokenizer::bos_id() const { return bpe_ ? bpe_->bos_id() : module_->bos_id(model_); }
int Tokenizer::eos_id() const { return bpe_ ? bpe_->eos_id() : module_->eos_id(model_); }

}  // namespace cpt::data
