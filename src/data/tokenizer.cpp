#include "cpt/data/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

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

// The fields of a SentencePiece ModelProto (protobuf wire format) that
// decide whether word-by-word encoding is exact. Debian's libsentencepiece
// does not install the generated proto header, so they are read here.
class ProtoFields {
 public:
  explicit ProtoFields(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  // The next field, false at the end or on malformed input.
  bool next(uint32_t& field, uint64_t& value, std::string_view& bytes) {
    uint64_t key = 0;
    if (!varint(key)) return false;
    field = static_cast<uint32_t>(key >> 3);
    switch (key & 7) {
      case 0: return varint(value);
      case 1: return skip(8);
      case 5: return skip(4);
      case 2: {
        uint64_t size = 0;
        if (!varint(size) || size > static_cast<uint64_t>(end_ - p_)) return false;
        bytes = std::string_view(p_, size);
        p_ += size;
        return true;
      }
      default: return false;
    }
  }
  bool at_end() const { return p_ == end_; }

 private:
  bool varint(uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const auto byte = static_cast<uint8_t>(*p_++);
      out |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  const char* p_;
  const char* end_;
};

// SentencePiece normalises a text as a whole (whitespace runs collapsed,
// spaces escaped to U+2581, a dummy U+2581 in front) and then segments it.
// Cut at a single space between two printable ASCII characters, the pieces
// are those of the parts encoded one by one when
//   - the model is BPE: its merges compare piece scores, never sums, so the
//     order of merges within a word does not depend on the text before it.
//     (Unigram's Viterbi compares float sums of scores along the path, and
//     a different prefix sum can round an exact tie the other way: 64 places in
//     37 MB of dictionary text came out differently; Unigram stays whole.)
//   - no piece holds a space or U+2581 after its first character, so none
//     spans a cut (true of every model trained with split_by_whitespace);
//   - the normaliser is a built-in one, whose rules map single characters,
//     never across a space; user rules ("user_defined") could;
//   - the dummy prefix is added and whitespace escaped, in front: each part
//     then starts with the U+2581 the space before it became.
// Returns whether `model_file` meets all four.
bool splits_at_spaces_exactly(const std::string& model_file) {
  std::ifstream in(model_file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ProtoFields model(bytes);
  uint32_t field = 0;
  uint64_t value = 0;
  std::string_view message;
  bool bpe = false, dummy_prefix = true, escape = true, suffix = false, normalizer_seen = false, builtin = false;
  while (model.next(field, value, message)) {
    if (field == 1) {  // pieces: SentencePiece { piece = 1 }
      ProtoFields piece(message);
      while (piece.next(field, value, message)) {
        if (field != 1) continue;
        for (size_t i = 1; i < message.size(); ++i) {
          if (message[i] == ' ' || message.substr(i, 3) == "\xE2\x96\x81") return false;
        }
      }
    } else if (field == 2) {  // trainer_spec { model_type = 3 (BPE: 2), treat_whitespace_as_suffix = 24 }
      ProtoFields spec(message);
      while (spec.next(field, value, message)) {
        if (field == 3) bpe = value == 2;
        if (field == 24) suffix = value != 0;
      }
    } else if (field == 3) {  // normalizer_spec { name = 1, add_dummy_prefix = 3, escape_whitespaces = 5 }
      normalizer_seen = true;
      ProtoFields spec(message);
      while (spec.next(field, value, message)) {
        if (field == 1) {
          builtin = message == "nmt_nfkc" || message == "nfkc" || message == "nmt_nfkc_cf" || message == "nfkc_cf" ||
                    message == "identity";
        } else if (field == 3) {
          dummy_prefix = value != 0;
        } else if (field == 5) {
          escape = value != 0;
        }
      }
    }
  }
  return model.at_end() && bpe && normalizer_seen && builtin && dummy_prefix && escape && !suffix;
}

bool printable_ascii(char c) { return c > ' ' && c < 0x7f; }

std::atomic<uint64_t> next_instance{1};

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
  word_by_word_ = splits_at_spaces_exactly(path_);
  instance_ = next_instance++;
}

Tokenizer::~Tokenizer() {
  if (model_ != nullptr) module_->free(model_);
}

void Tokenizer::encode(std::string_view text, std::vector<int>& ids) const {
  if (bpe_) return bpe_->encode(text, ids);
  if (word_by_word_) return encode_word_by_word(text, ids);
  encode_whole(text, ids);
}

void Tokenizer::encode_whole(std::string_view text, std::vector<int>& ids) const {
  ids.clear();
  std::string error;
  if (!module_->encode(model_, text.data(), text.size(), &ids, &error)) {
    throw std::runtime_error(fmt::format("SentencePiece encode failed: {}", error));
  }
}

namespace {

struct WordHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// One thread's words of one Tokenizer. Bounded: a corpus of endless
// distinct words (ids, hashes) starts it over rather than growing it.
struct WordCache {
  static constexpr size_t kMaxWords = 1 << 18;
  static constexpr size_t kMaxWordBytes = 64;
  uint64_t instance = 0;
  std::unordered_map<std::string, std::vector<int>, WordHash, std::equal_to<>> words;
};

}  // namespace

void Tokenizer::encode_word_by_word(std::string_view text, std::vector<int>& ids) const {
  thread_local WordCache cache;
  if (cache.instance != instance_) {
    cache.words.clear();
    cache.instance = instance_;
  }
  ids.clear();
  std::vector<int> part_ids;
  const auto add = [&](std::string_view part) {
    if (part.size() > WordCache::kMaxWordBytes) {
      encode_whole(part, part_ids);
      ids.insert(ids.end(), part_ids.begin(), part_ids.end());
      return;
    }
    auto it = cache.words.find(part);
    if (it == cache.words.end()) {
      if (cache.words.size() >= WordCache::kMaxWords) cache.words.clear();
      encode_whole(part, part_ids);
      it = cache.words.emplace(std::string(part), part_ids).first;
    }
    ids.insert(ids.end(), it->second.begin(), it->second.end());
  };
  size_t start = 0;
  for (size_t i = 1; i + 1 < text.size(); ++i) {
    if (text[i] == ' ' && printable_ascii(text[i - 1]) && printable_ascii(text[i + 1])) {
      add(text.substr(start, i - start));
      start = i + 1;
    }
  }
  add(text.substr(start));
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
