// `cpt-train tokenize` with Hugging Face tokenizer.json files (byte-level
// BPE, as Llama-3 and Qwen2 ship them): the ids equal HF tokenizers' own on
// 11,000 documents of packaged text in several scripts, BOS and EOS come
// from the tokenizer's config, and what is not implemented is refused.

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cpt/data/indexed_dataset.h"
#include "support/python.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt {
namespace {

using testing::run_command;

struct Corpus {
  testing::TempDir dir;
  std::string docs = dir.file("docs.jsonl");
  Corpus() {
    const auto made = run_command(fmt::format(CPT_PYTHON " {}/tests/data/hf_bpe.py corpus {}", CPT_SOURCE_DIR, docs));
    EXPECT_EQ(made.exit_code, 0) << made.err;
  }
};

const Corpus& corpus() {
  static const Corpus shared;
  return shared;
}

std::vector<std::vector<int64_t>> read_documents(const std::string& prefix) {
  const data::IndexedDataset dataset(prefix);
  std::vector<std::vector<int64_t>> out;
  for (int64_t d = 0; d < dataset.documents(); ++d) {
    std::vector<int64_t> ids(static_cast<size_t>(dataset.document_length(d)));
    dataset.read_tokens(dataset.document_offset(d), static_cast<int64_t>(ids.size()), ids.data());
    out.push_back(ids);
  }
  return out;
}

TEST(TokenizerJson, IdsEqualHfTokenizersOnElevenThousandDocumentsInSeveralScripts) {
  ASSERT_TRUE(testing::python_has("tokenizers"));
  const Corpus& c = corpus();
  // llama3: Llama-3's regex, ignore_merges, BOS by template; qwen2: Qwen2's
  // regex and NFC, no BOS; gpt2: ByteLevel's own regex.
  for (const std::string style : {"llama3", "qwen2", "gpt2"}) {
    const std::string dir = c.dir.file(style);
    const auto made = run_command(fmt::format(CPT_PYTHON " {}/tests/data/hf_bpe.py make {} {} {}", CPT_SOURCE_DIR, style,
                                              dir, c.docs));
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const auto encoded = run_command(fmt::format(CPT_PYTHON " {}/tests/data/hf_bpe.py encode {}/tokenizer.json {} {}",
                                                 CPT_SOURCE_DIR, dir, c.docs, c.dir.file(style + ".json")));
    ASSERT_EQ(encoded.exit_code, 0) << encoded.err;
    const auto theirs = nlohmann::json::parse(testing::read_file(c.dir.file(style + ".json")))["ids"];
    // The tokenizer named as a directory, with two workers; BOS as the
    // tokenizer's config says (qwen2's names none; gpt2 has no config).
    const std::string prefix = c.dir.file(style + "-ours");
    const auto ours = run_command(fmt::format("{} tokenize --tokenizer {} --input {} --output-prefix {} --no-eos --workers 2 {}",
                                              CPT_BINARY, dir, c.docs, prefix, style == "gpt2" ? "--no-bos" : ""));
    ASSERT_EQ(ours.exit_code, 0) << ours.err;
    if (style == "qwen2") EXPECT_NE(ours.err.find("names no BOS token: documents start without one"), std::string::npos);
    const auto documents = read_documents(prefix);
    ASSERT_EQ(documents.size(), theirs.size());
    ASSERT_GE(documents.size(), 10'000u);
    size_t differ = 0;
    for (size_t d = 0; d < documents.size(); ++d) {
      if (documents[d] != theirs[d].get<std::vector<int64_t>>()) {
        if (++differ <= 3) ADD_FAILURE() << style << ": document " << d << " differs from HF tokenizers' ids";
      }
    }
    EXPECT_EQ(differ, 0u) << style;
  }
}

TEST(TokenizerJson, BosAndEosComeFromTheTokenizersConfig) {
  const Corpus& c = corpus();
  const std::string dir = c.dir.file("llama3-special");
  ASSERT_EQ(run_command(fmt::format(CPT_PYTHON " {}/tests/data/hf_bpe.py make llama3 {} {}", CPT_SOURCE_DIR, dir, c.docs))
                .exit_code,
            0);
  const std::string input = c.dir.write("two.jsonl", "{\"text\": \"Hello there.\"}\n{\"text\": \"<|end_of_text|>x\"}\n");
  const std::string prefix = c.dir.file("special");
  // The file itself this time, not its directory.
  const auto r = run_command(fmt::format("{} tokenize --tokenizer {}/tokenizer.json --input {} --output-prefix {}",
                                         CPT_BINARY, dir, input, prefix));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto documents = read_documents(prefix);
  ASSERT_EQ(documents.size(), 2u);
  // <|begin_of_text|> is 0 and <|end_of_text|> 1 (the trainer's special tokens, in order).
  EXPECT_EQ(documents[0].front(), 0);
  EXPECT_EQ(documents[0].back(), 1);
  // A special token written in the text is that token, as HF encodes it.
  EXPECT_EQ(documents[1][1], 1);
}

TEST(TokenizerJson, WhatIsNotImplementedIsRefusedNamingTheKey) {
  testing::TempDir dir;
  const std::string input = dir.write("a.jsonl", "{\"text\": \"x\"}\n");
  for (const auto& [json, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"model": {"type": "WordPiece", "vocab": {}}})", "model.type is \"WordPiece\"; cpt-train reads byte-level BPE"},
           {R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}})",
            "model.byte_fallback is true: this is a SentencePiece-style BPE; give its tokenizer.model instead"},
           {R"({"normalizer": {"type": "NFKC"}, "pre_tokenizer": {"type": "ByteLevel"},
               "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
            "normalizer {\"type\":\"NFKC\"} is not implemented (only none and NFC)"},
           {R"({"pre_tokenizer": {"type": "Metaspace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
            "pre_tokenizer step {\"type\":\"Metaspace\"} is not implemented"},
           {R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
            "byte 0x00's character '\u0100' is not in the vocabulary"}}) {
    const std::string path = dir.write("tokenizer.json", json);
    const auto r = run_command(fmt::format("{} tokenize --tokenizer {} --input {} --output-prefix {}", CPT_BINARY, path,
                                           input, dir.file("out")));
    EXPECT_EQ(r.exit_code, 2) << json;
    EXPECT_NE(r.err.find(path + ": " + message), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace cpt
