#include "cpt/data/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "cpt/common/error.h"

namespace fs = std::filesystem;

namespace cpt::data {

namespace {

// GPT-2's byte-level alphabet: every byte as a printable character, the
// printable ASCII and Latin-1 ones as themselves, the rest from U+0100 on.
std::vector<int32_t> byte_to_codepoint() {
  std::vector<int32_t> out(256, -1);
  int32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    out[static_cast<size_t>(b)] = printable ? b : next++;
  }
  return out;
}

std::string utf8(int32_t codepoint) {
  utf8proc_uint8_t buffer[4];
  const auto length = utf8proc_encode_char(codepoint, buffer);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

// GPT-2's pre-tokenizer pattern, which ByteLevel uses when use_regex is true.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Invalid UTF-8 becomes U+FFFD, as Python's decode(errors="replace") would
// hand the text to HF tokenizers.
std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t codepoint = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(p, left, &codepoint);
    if (used < 0) {
      out += "\xEF\xBF\xBD";
      ++p;
      --left;
    } else {
      out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(used));
      p += used;
      left -= used;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    if (static_cast<unsigned char>(*p) < 0x80) {
      ++p, --left;
      continue;
    }
    utf8proc_int32_t codepoint = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(p, left, &codepoint);
    if (used < 0) return false;
    p += used, left -= used;
  }
  return true;
}

}  // namespace

struct BpeTokenizer::Model {
  std::string path;
  std::unordered_map<std::string, int> vocab;  // byte-level token text -> id
  std::vector<std::string> id_text;            // id -> token text (added tokens: their content)
  std::vector<bool> id_added;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) -> (rank, merged id)
  bool ignore_merges = false;
  bool nfc = false;
  bool add_prefix_space = false;
  std::string pattern;  // the pre-tokenizer's split; empty: none
  pcre2_code* regex = nullptr;
  pcre2_match_context* limits = nullptr;  // bounds backtracking: a pathological pattern fails, not hangs
  int byte_id[256] = {};
  std::unordered_map<int32_t, uint8_t> codepoint_byte;
  struct Added {
    std::string content;
    int id;
  };
  std::vector<std::vector<Added>> added_by_first_byte = std::vector<std::vector<Added>>(256);  // longest first
  int bos = -1, eos = -1;

  ~Model() {
    if (regex != nullptr) pcre2_code_free(regex);
    if (limits != nullptr) pcre2_match_context_free(limits);
  }

  [[noreturn]] void fail(const std::string& message) const { throw InputError(fmt::format("{}: {}", path, message)); }

  int id_of(const std::string& token, const std::string& what) const {
    auto it = vocab.find(token);
    if (it == vocab.end()) fail(fmt::format("{} '{}' is not in the vocabulary", what, token));
    return it->second;
  }

  void bpe(const std::string& piece, std::vector<int>& out) const;
  void encode_plain(std::string_view text, std::vector<int>& out) const;
};

namespace {

// The words already split into ids, per thread: natural text repeats its
// words, and the merges of a word never change.
struct WordCache {
  const void* owner = nullptr;
  std::unordered_map<std::string, std::vector<int>> words;
};
thread_local WordCache word_cache;

}  // namespace

void BpeTokenizer::Model::bpe(const std::string& piece, std::vector<int>& out) const {
  if (word_cache.owner != this) {
    word_cache.owner = this;
    word_cache.words.clear();
  }
  if (auto hit = word_cache.words.find(piece); hit != word_cache.words.end()) {
    out.insert(out.end(), hit->second.begin(), hit->second.end());
    return;
  }
  std::vector<int> symbols;
  symbols.reserve(piece.size());
  for (unsigned char b : piece) symbols.push_back(byte_id[b]);
  bool whole = false;
  if (ignore_merges && symbols.size() > 1) {
    // Llama-3: a pre-token that is itself in the vocabulary is that token.
    std::string text;
    for (unsigned char b : piece) text += id_text[static_cast<size_t>(byte_id[b])];
    if (auto it = vocab.find(text); it != vocab.end()) {
      symbols.assign(1, it->second);
      whole = true;
    }
  }
  while (!whole && symbols.size() > 1) {
    int32_t best_rank = INT32_MAX, merged = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(symbols[i])) << 32) | static_cast<uint32_t>(symbols[i + 1]);
      auto it = merges.find(key);
      if (it != merges.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        merged = it->second.second;
        best = i;
      }
    }
    if (merged < 0) break;
    symbols[best] = merged;
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (word_cache.words.size() > 200'000) word_cache.words.clear();
  word_cache.words.emplace(piece, std::move(symbols));
}

void BpeTokenizer::Model::encode_plain(std::string_view raw, std::vector<int>& out) const {
  if (raw.empty()) return;
  std::string text(raw);
  if (nfc) {
    const bool ascii = std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (!ascii) {
      utf8proc_uint8_t* normalized = nullptr;
      const utf8proc_ssize_t length =
          utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                       &normalized, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
      if (length < 0) fail(fmt::format("NFC normalization failed: {}", utf8proc_errmsg(length)));
      text.assign(reinterpret_cast<const char*>(normalized), static_cast<size_t>(length));
      std::free(normalized);
    }
  }
  if (add_prefix_space && text.front() != ' ') text.insert(text.begin(), ' ');
  if (regex == nullptr) {
    bpe(text, out);
    return;
  }
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const PCRE2_SIZE length = text.size();
  PCRE2_SIZE offset = 0, covered = 0;
  std::string piece;
  while (offset < length) {
    const int rc = pcre2_match(regex, subject, length, offset, PCRE2_NO_UTF_CHECK, match, limits);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(match);
      fail(fmt::format("the pre-tokenizer's regex failed with PCRE2 error {}", rc));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    const PCRE2_SIZE begin = ovector[0], end = ovector[1];
    // Split's "Isolated" behaviour: the text between matches is a piece too.
    if (begin > covered) bpe(text.substr(covered, begin - covered), out);
    if (end > begin) {
      bpe(text.substr(begin, end - begin), out);
      offset = end;
    } else {
      offset = begin + 1;  // an empty match: step over one character
      while (offset < length && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) ++offset;
      continue;
    }
    covered = end;
  }
  if (covered < length) bpe(text.substr(covered), out);
  pcre2_match_data_free(match);
}

bool is_tokenizer_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c)) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return c == '{';
  }
  return false;
}

BpeTokenizer::BpeTokenizer(const std::string& path) : model_(std::make_unique<Model>()) {
  Model& m = *model_;
  m.path = path;
  try {
    load(path);
  } catch (const nlohmann::json::exception& e) {
    m.fail(fmt::format("malformed: {}", e.what()));
  }
}

void BpeTokenizer::load(const std::string& path) {
  Model& m = *model_;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("tokenizer '{}' cannot be read", path));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    m.fail(fmt::format("not valid JSON: {}", e.what()));
  }
  const auto& model = json.value("model", nlohmann::json::object());
  if (model.value("type", std::string()) != "BPE") {
    m.fail(fmt::format("model.type is {}; cpt-train reads byte-level BPE tokenizer.json files (Llama-3, Qwen2), and "
                       "SentencePiece models as tokenizer.model",
                       model.value("type", nlohmann::json()).dump()));
  }
  if (model.value("byte_fallback", false)) {
    m.fail("model.byte_fallback is true: this is a SentencePiece-style BPE; give its tokenizer.model instead");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "") {
      m.fail(fmt::format("model.{} {} is not implemented", key, model[key].dump()));
    }
  }
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() > 0) {
    m.fail("model.dropout is set; BPE dropout is for training tokenizers, not for tokenizing data");
  }
  m.ignore_merges = model.value("ignore_merges", false);

  // Normalizer: none or NFC.
  const auto& normalizer = json.value("normalizer", nlohmann::json());
  if (!normalizer.is_null()) {
    const std::string type = normalizer.value("type", std::string());
    if (type == "NFC") {
      m.nfc = true;
    } else if (type == "Sequence" && normalizer.value("normalizers", nlohmann::json::array()).empty()) {
    } else {
      m.fail(fmt::format("normalizer {} is not implemented (only none and NFC)", normalizer.dump()));
    }
  }

  // Pre-tokenizer: ByteLevel (GPT-2's regex), or a Split by regex then ByteLevel without one.
  const auto& pre = json.value("pre_tokenizer", nlohmann::json());
  std::vector<nlohmann::json> steps;
  if (pre.is_object() && pre.value("type", std::string()) == "Sequence") {
    for (const auto& step : pre.value("pretokenizers", nlohmann::json::array())) steps.push_back(step);
  } else if (pre.is_object()) {
    steps.push_back(pre);
  }
  bool byte_level = false;
  for (const auto& step : steps) {
    const std::string type = step.value("type", std::string());
    if (type == "Split" && !byte_level && m.pattern.empty()) {
      if (!step.contains("pattern") || !step["pattern"].contains("Regex")) {
        m.fail(fmt::format("pre_tokenizer Split {} needs a Regex pattern", step.value("pattern", nlohmann::json()).dump()));
      }
      if (step.value("behavior", std::string()) != "Isolated" || step.value("invert", false)) {
        m.fail(fmt::format("pre_tokenizer Split with behavior {} and invert {} is not implemented (only Isolated)",
                           step.value("behavior", nlohmann::json()).dump(), step.value("invert", false)));
      }
      m.pattern = step["pattern"]["Regex"].get<std::string>();
    } else if (type == "ByteLevel" && !byte_level) {
      byte_level = true;
      m.add_prefix_space = step.value("add_prefix_space", false);
      if (step.value("use_regex", true)) {
        if (!m.pattern.empty()) m.fail("pre_tokenizer has a Split and a ByteLevel that uses its own regex too");
        m.pattern = kGpt2Pattern;
      }
    } else {
      m.fail(fmt::format("pre_tokenizer step {} is not implemented (a Split by regex, then ByteLevel)", step.dump()));
    }
  }
  if (!byte_level) m.fail("pre_tokenizer has no ByteLevel step; cpt-train reads byte-level BPE only");
  if (!m.pattern.empty()) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    m.regex = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(m.pattern.c_str()), PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &error_offset, nullptr);
    if (m.regex == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      m.fail(fmt::format("the pre-tokenizer's regex does not compile at offset {}: {}", error_offset,
                         reinterpret_cast<const char*>(message)));
    }
    pcre2_jit_compile(m.regex, PCRE2_JIT_COMPLETE);  // falls back to the interpreter where JIT is unavailable
    m.limits = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(m.limits, 10'000'000);
    pcre2_set_depth_limit(m.limits, 100'000);
  }

  // Vocabulary, added tokens, merges.
  int max_id = -1;
  const nlohmann::json vocab = model.value("vocab", nlohmann::json::object());  // items() must not outlive it
  const auto checked_id = [&](const nlohmann::json& id, const std::string& token) {
    if (!id.is_number_integer()) m.fail(fmt::format("token '{}' has id {}, not an integer", token, id.dump()));
    const int64_t value = id.get<int64_t>();
    if (value < 0 || value >= (int64_t{1} << 24)) m.fail(fmt::format("token '{}' has id {}, outside [0, 2^24)", token, value));
    return static_cast<int>(value);
  };
  for (const auto& [token, id] : vocab.items()) {
    m.vocab[token] = checked_id(id, token);
    max_id = std::max(max_id, m.vocab[token]);
  }
  struct Entry {
    int id;
    std::string content;
  };
  std::vector<Entry> added;
  for (const auto& token : json.value("added_tokens", nlohmann::json::array())) {
    for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
      if (token.value(flag, false)) {
        m.fail(fmt::format("added token {} sets {}, which is not implemented", token.value("content", std::string()), flag));
      }
    }
    const std::string content = token.at("content").get<std::string>();
    added.push_back({checked_id(token.at("id"), content), content});
    max_id = std::max(max_id, added.back().id);
  }
  if (max_id < 0) m.fail("model.vocab is empty");
  m.id_text.assign(static_cast<size_t>(max_id) + 1, std::string());
  m.id_added.assign(static_cast<size_t>(max_id) + 1, false);
  for (const auto& [token, id] : m.vocab) m.id_text[static_cast<size_t>(id)] = token;
  for (const auto& a : added) {
    m.id_text[static_cast<size_t>(a.id)] = a.content;
    m.id_added[static_cast<size_t>(a.id)] = true;
    if (!a.content.empty()) {
      m.added_by_first_byte[static_cast<unsigned char>(a.content[0])].push_back({a.content, a.id});
    }
  }
  for (auto& bucket : m.added_by_first_byte) {
    std::sort(bucket.begin(), bucket.end(), [](const Model::Added& a, const Model::Added& b) {
      return a.content.size() > b.content.size();
    });
  }
  const std::vector<int32_t> codepoints = byte_to_codepoint();
  for (int b = 0; b < 256; ++b) {
    const std::string ch = utf8(codepoints[static_cast<size_t>(b)]);
    m.byte_id[b] = m.id_of(ch, fmt::format("byte 0x{:02X}'s character", b));
    m.codepoint_byte[codepoints[static_cast<size_t>(b)]] = static_cast<uint8_t>(b);
  }
  int32_t rank = 0;
  for (const auto& merge : model.value("merges", nlohmann::json::array())) {
    std::string left, right;
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ', 1);
      if (space == std::string::npos) m.fail(fmt::format("merge '{}' is not two tokens", text));
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      m.fail(fmt::format("merge {} is not two tokens", merge.dump()));
    }
    const int a = m.id_of(left, "merge part"), b = m.id_of(right, "merge part"), merged = m.id_of(left + right, "merge result");
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    m.merges.emplace(key, std::make_pair(rank++, merged));  // the first (lowest) rank of a repeated merge wins
  }

  // BOS and EOS: tokenizer_config.json's names, else the post-processor's template.
  const auto id_named = [&](const nlohmann::json& value) {
    std::string name;
    if (value.is_string()) name = value.get<std::string>();
    if (value.is_object()) name = value.value("content", std::string());
    if (name.empty()) return -1;
    for (const auto& a : added) {
      if (a.content == name) return a.id;
    }
    auto it = m.vocab.find(name);
    return it == m.vocab.end() ? -1 : it->second;
  };
  const fs::path config_path = fs::path(path).parent_path() / "tokenizer_config.json";
  bool from_config = false;
  if (fs::exists(config_path)) {
    std::ifstream config_in(config_path);
    try {
      const auto config = nlohmann::json::parse(config_in);
      m.bos = id_named(config.value("bos_token", nlohmann::json()));
      m.eos = id_named(config.value("eos_token", nlohmann::json()));
      // Llama-3's config names a BOS that its post-processor adds; a config
      // that says add_bos_token false means none.
      if (config.contains("add_bos_token") && config["add_bos_token"] == false) m.bos = -1;
      from_config = true;
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: not valid JSON: {}", config_path.string(), e.what()));
    }
  }
  if (!from_config) {
    std::vector<nlohmann::json> processors;
    const auto& post = json.value("post_processor", nlohmann::json());
    if (post.is_object() && post.value("type", std::string()) == "Sequence") {
      for (const auto& p : post.value("processors", nlohmann::json::array())) processors.push_back(p);
    } else if (post.is_object()) {
      processors.push_back(post);
    }
    for (const auto& p : processors) {
      if (p.value("type", std::string()) != "TemplateProcessing") continue;
      bool before_text = true;
      for (const auto& item : p.value("single", nlohmann::json::array())) {
        if (item.contains("Sequence")) before_text = false;
        if (item.contains("SpecialToken")) {
          const int id = id_named(item["SpecialToken"].value("id", nlohmann::json()));
          (before_text ? m.bos : m.eos) = id;
        }
      }
    }
  }
}

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::encode(std::string_view raw, std::vector<int>& ids) const {
  const Model& m = *model_;
  ids.clear();
  std::string repaired;
  std::string_view text = raw;
  if (!is_valid_utf8(raw)) {
    repaired = valid_utf8(raw);
    text = repaired;
  }
  // Added tokens first, leftmost and longest, on the raw text.
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const auto& bucket = m.added_by_first_byte[static_cast<unsigned char>(text[i])];
    const Model::Added* found = nullptr;
    for (const auto& a : bucket) {
      if (text.compare(i, a.content.size(), a.content) == 0) {
        found = &a;
        break;
      }
    }
    if (found == nullptr) {
      ++i;
      continue;
    }
    m.encode_plain(text.substr(start, i - start), ids);
    ids.push_back(found->id);
    i += found->content.size();
    start = i;
  }
  m.encode_plain(text.substr(start), ids);
}

std::string BpeTokenizer::decode(const std::vector<int>& ids) const {
  const Model& m = *model_;
  std::string out;
  for (int id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= m.id_text.size()) continue;
    const std::string& text = m.id_text[static_cast<size_t>(id)];
    if (m.id_added[static_cast<size_t>(id)]) {
      out += text;
      continue;
    }
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
    while (left > 0) {
      utf8proc_int32_t codepoint = 0;
      const utf8proc_ssize_t used = utf8proc_iterate(p, left, &codepoint);
      if (used <= 0) break;
      auto it = m.codepoint_byte.find(codepoint);
      if (it != m.codepoint_byte.end()) out += static_cast<char>(it->second);
      p += used;
      left -= used;
    }
  }
  return out;
}

int BpeTokenizer::vocab_size() const { return static_cast<int>(model_->id_text.size()); }
int BpeTokenizer::bos_id() const { return model_->bos; }
int BpeTokenizer::eos_id() const { return model_->eos; }

}  // namespace cpt::data
