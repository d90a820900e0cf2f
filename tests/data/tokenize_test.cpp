#include "cpt/data/tokenize.h"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cpt/common/error.h"
#include "cpt/data/indexed_dataset.h"
#include "cpt/data/tokenizer.h"
#include "support/python.h"
#include "support/run_command.h"
#include "support/temp_dir.h"
#include "support/test_tokenizer.h"

namespace cpt::data {
namespace {

std::string jsonl(const std::vector<std::string>& texts) {
  std::string out;
  for (const auto& t : texts) out += nlohmann::json{{"text", t}}.dump() + "\n";
  return out;
}

std::vector<std::vector<int64_t>> documents_of(const std::string& prefix) {
  const IndexedDataset d(prefix);
  std::vector<std::vector<int64_t>> docs;
  for (int64_t i = 0; i < d.documents(); ++i) {
    std::vector<int64_t> tokens(static_cast<size_t>(d.document_length(i)));
    d.read_tokens(d.document_offset(i), d.document_length(i), tokens.data());
    docs.push_back(tokens);
  }
  return docs;
}

TokenizeOptions options_for(const std::string& input, const std::string& prefix, int workers = 2) {
  TokenizeOptions o;
  o.tokenizer = testing::test_tokenizer().model;
  o.inputs = {input};
  o.output_prefix = prefix;
  o.workers = workers;
  return o;
}

// The reference: Debian's spm_encode, one document per line.
std::vector<std::vector<int64_t>> spm_encode(const std::vector<std::string>& texts, const testing::TempDir& dir) {
  std::string plain;
  for (const auto& t : texts) plain += t + "\n";
  const std::string path = dir.write("plain.txt", plain);
  const testing::CommandResult r =
      testing::run_command("spm_encode --model=" + testing::test_tokenizer().model + " --output_format=id " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::vector<int64_t>> docs;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<int64_t> ids{1};  // BOS
    std::istringstream words(line);
    for (int64_t id; words >> id;) ids.push_back(id);
    ids.push_back(2);  // EOS
    docs.push_back(ids);
  }
  return docs;
}

TEST(Tokenize, IdsEqualSpmEncodeWithBosAndEosInInputOrder) {
  testing::TempDir dir;
  const auto& texts = testing::test_tokenizer().documents;
  ASSERT_GT(texts.size(), 3000u) << "enough documents for several chunks per worker";
  const std::string input = dir.write("docs.jsonl", jsonl(texts));
  const TokenizeReport report = tokenize(options_for(input, dir.file("out"), 3));
  EXPECT_EQ(report.documents, static_cast<int64_t>(texts.size()));
  EXPECT_EQ(report.dtype, TokenDtype::kUint16);
  const auto ours = documents_of(dir.file("out"));
  const auto reference = spm_encode(texts, dir);
  ASSERT_EQ(ours.size(), reference.size());
  for (size_t i = 0; i < ours.size(); ++i) ASSERT_EQ(ours[i], reference[i]) << "document " << i;
}

TEST(Tokenize, OneWorkerAndManyWorkersWriteTheSameBytes) {
  testing::TempDir dir;
  const std::string input = dir.write("docs.jsonl", jsonl(testing::test_tokenizer().documents));
  tokenize(options_for(input, dir.file("one"), 1));
  tokenize(options_for(input, dir.file("four"), 4));
  EXPECT_EQ(testing::read_file(dir.file("one.bin")), testing::read_file(dir.file("four.bin")));
  EXPECT_EQ(testing::read_file(dir.file("one.idx")), testing::read_file(dir.file("four.idx")));
}

TEST(Tokenize, ReadsGzipZstdAndTextFiles) {
  testing::TempDir dir;
  const std::vector<std::string> texts(testing::test_tokenizer().documents.begin(),
                                       testing::test_tokenizer().documents.begin() + 50);
  const std::string input = dir.write("docs.jsonl", jsonl(texts));
  ASSERT_EQ(std::system(("gzip -k " + input + " && zstd -q -k " + input).c_str()), 0);
  tokenize(options_for(input, dir.file("plain")));
  tokenize(options_for(input + ".gz", dir.file("gz")));
  tokenize(options_for(input + ".zst", dir.file("zst")));
  EXPECT_EQ(testing::read_file(dir.file("plain.bin")), testing::read_file(dir.file("gz.bin")));
  EXPECT_EQ(testing::read_file(dir.file("plain.bin")), testing::read_file(dir.file("zst.bin")));

  // A .txt file is one document, newlines and all.
  const std::string txt = dir.write("one.txt", texts[0] + "\n" + texts[1]);
  TokenizeOptions o = options_for(txt, dir.file("txt"));
  o.inputs.push_back(input);
  const TokenizeReport report = tokenize(o);
  EXPECT_EQ(report.documents, 51);
  EXPECT_EQ(report.files[0].documents, 1);
}

TEST(Tokenize, BosAndEosCanBeLeftOut) {
  testing::TempDir dir;
  const std::string input = dir.write("docs.jsonl", jsonl({"hello world"}));
  TokenizeOptions o = options_for(input, dir.file("bare"));
  o.add_bos = false;
  o.add_eos = false;
  tokenize(o);
  const auto docs = documents_of(dir.file("bare"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_NE(docs[0].front(), 1);
  EXPECT_NE(docs[0].back(), 2);
}

TEST(Tokenize, CountsBadRecordsPerFileAndKeepsTheRest) {
  testing::TempDir dir;
  const std::string input = dir.write("mixed.jsonl",
                                      "{\"text\": \"good one\"}\n"
                                      "\n"
                                      "not json\n"
                                      "  \r\n"
                                      "{\"body\": \"wrong key\"}\n"
                                      "{\"text\": 42}\n"
                                      "[1, 2]\n"
                                      "{\"text\": \"bad \xff byte\"}\n"
                                      "{\"text\": \"good two\"}\n");
  const TokenizeReport report = tokenize(options_for(input, dir.file("out")));
  EXPECT_EQ(report.documents, 2);
  EXPECT_EQ(report.files[0].bad_records, 5) << "blank lines are not bad records";
  EXPECT_EQ(report.files[0].first_bad, "line 3: invalid JSON");
  EXPECT_EQ(report.files[0].examples,
            (std::vector<std::string>{"line 3: invalid JSON", "line 5: no \"text\" key", "line 6: \"text\" is a number, not a string"}));
}

// Progress counts the input whose documents are written: with equal
// documents, its share of the bytes is the share of the documents.
TEST(Tokenize, ProgressFollowsTheDocumentsWrittenNotTheInputRead) {
  testing::TempDir dir;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "a compiler translates source code into machine code. ";
  const std::string line = nlohmann::json{{"text", text}}.dump() + "\n";
  const int64_t documents = (12 << 20) / static_cast<int64_t>(line.size());
  std::string input;
  for (int64_t d = 0; d < documents; ++d) input += line;
  const std::string path = dir.write("even.jsonl", input);
  std::vector<TokenizeProgress> events;
  tokenize(options_for(path, dir.file("out"), /*workers=*/1), [&](const TokenizeProgress& p) { events.push_back(p); });
  ASSERT_FALSE(events.empty()) << "no progress in 12 MB: the input is too small to see it";
  for (const auto& p : events) {
    const double bytes = static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
    const double written = static_cast<double>(p.documents) / static_cast<double>(documents);
    EXPECT_NEAR(bytes, written, 0.01) << p.documents << " of " << documents << " documents written";
  }
}

TEST(Tokenize, StrictStopsAtTheFirstBadRecordAndWritesNothing) {
  testing::TempDir dir;
  const std::string input = dir.write("mixed.jsonl", "{\"text\": \"good\"}\n{\"text\": \"x\"}\n{\"txt\": \"y\"}\n");
  TokenizeOptions o = options_for(input, dir.file("out"));
  o.strict = true;
  try {
    tokenize(o);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), input + ":3: no \"text\" key (--strict stops at the first bad record)");
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.idx")));
}

TEST(Tokenize, ReportsBadInputsBeforeWork) {
  testing::TempDir dir;
  const std::string input = dir.write("docs.jsonl", jsonl({"a"}));
  EXPECT_THROW(tokenize(options_for(dir.file("missing.jsonl"), dir.file("out"))), InputError);
  EXPECT_THROW(tokenize(options_for(dir.write("doc.pdf", "x"), dir.file("out"))), InputError);
  EXPECT_THROW(tokenize(options_for(input, dir.file("no/such/dir/out"))), InputError);
  TokenizeOptions o = options_for(input, dir.file("out"));
  o.tokenizer = dir.file("nope.model");
  EXPECT_THROW(tokenize(o), InputError);
  const std::string broken = dir.write("broken.jsonl.zst", "definitely not zstd");
  EXPECT_THROW(tokenize(options_for(broken, dir.file("out"))), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.bin")));
}

TEST(Tokenizer, DecodesWhatItEncodes) {
  const Tokenizer tokenizer(testing::test_tokenizer().model);
  EXPECT_EQ(tokenizer.vocab_size(), 2000);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  EXPECT_EQ(tokenizer.eos_id(), 2);
  std::vector<int> ids;
  const std::string text = "A compiler translates source code. Ünïcödé survives via byte fallback: 日本";
  tokenizer.encode(text, ids);
  EXPECT_EQ(tokenizer.decode(ids), text);
}

// A SentencePiece model trained on the test corpus with extra spm_train flags.
std::string train_model(const testing::TempDir& dir, const std::string& name, const std::string& flags) {
  std::string corpus;
  for (const auto& t : testing::test_tokenizer().documents) corpus += t + "\n";
  const std::string input = dir.write(name + "-corpus.txt", corpus);
  const auto trained = testing::run_command("spm_train --input=" + input + " --model_prefix=" + dir.file(name) +
                                            " --vocab_size=2000 --byte_fallback=true --minloglevel=2 --num_threads=2 " +
                                            flags + " >/dev/null 2>&1");
  EXPECT_EQ(trained.exit_code, 0) << trained.err;
  return dir.file(name + ".model");
}

// Texts whose spaces sit next to everything a cut must respect: runs of
// spaces, tabs and newlines, non-ASCII and NFKC-mapped characters (no-break
// and ideographic spaces, full-width letters, a combining accent, U+2581
// itself), punctuation and digits, words longer than a cached one, and
// the FOLDOC documents, alone and three to a multi-line text.
std::vector<std::string> texts_around_spaces() {
  std::vector<std::string> texts = {"",
                                    " ",
                                    "a",
                                    "a b",
                                    " a b ",
                                    "a  b",
                                    "a \tb\t c",
                                    "line one\nline two\n\n  three",
                                    "caf\u00e9 au lait, na\u00efve co\u00f6perate",
                                    "no\u00a0break and\u3000ideographic space",
                                    "\uff26\uff35\uff2c\uff2c width and \u2460 circled",
                                    "e \u0301 accent after a space",
                                    "\u2581 literal \u2581marker\u2581 here",
                                    "x = f(y) + 42; // 3.14 * r ** 2 - 1e-9 != 0",
                                    "supercalifragilisticexpialidocious-and-then-some-more-hyphenated-words-past-sixty-four-bytes "
                                    "then short ones",
                                    "\xf0\x9f\x98\x80 emoji \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text"};
  const auto& documents = testing::test_tokenizer().documents;
  for (size_t i = 0; i < 1500 && i < documents.size(); ++i) texts.push_back(documents[i]);
  for (size_t i = 0; i + 2 < 600 && i + 2 < documents.size(); i += 3) {
    texts.push_back(documents[i] + "\n" + documents[i + 1] + "\n\n" + documents[i + 2]);
  }
  return texts;
}

// The reference: the venv's Python SentencePiece (what Megatron-LM's
// preprocessing and transformers' slow tokenizers encode with), one
// encode() per whole text.
std::vector<std::vector<int>> python_encode(const std::string& model, const std::vector<std::string>& texts,
                                            const testing::TempDir& dir) {
  nlohmann::json all = texts;
  const std::string input = dir.write("texts.json", all.dump());
  const auto result = testing::run_command(
      std::string(CPT_PYTHON) + " -c \"import json, sys, sentencepiece as s; m = s.SentencePieceProcessor(model_file=sys.argv[1]); "
      "print(json.dumps(m.encode(json.load(open(sys.argv[2], encoding='utf-8')))))\" " + model + " " + input);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return nlohmann::json::parse(result.out).get<std::vector<std::vector<int>>>();
}

void expect_encodes_as_python(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                              const std::vector<std::vector<int>>& reference) {
  ASSERT_EQ(texts.size(), reference.size());
  std::vector<int> ids;
  // Twice: the second pass takes every word from the cache.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < texts.size(); ++i) {
      tokenizer.encode(texts[i], ids);
      ASSERT_EQ(ids, reference[i]) << "pass " << pass << ", text " << i << ": " << nlohmann::json(texts[i]).dump();
    }
  }
}

TEST(Tokenizer, BpeModelsEncodeWordByWordExactlyAsSentencePieceDoes) {
  ASSERT_TRUE(testing::python_has("sentencepiece"));
  testing::TempDir dir;
  const std::string model = train_model(dir, "bpe", "--model_type=bpe");
  const Tokenizer tokenizer(model);
  ASSERT_TRUE(tokenizer.encodes_word_by_word());
  const auto texts = texts_around_spaces();
  const auto reference = python_encode(model, texts, dir);
  expect_encodes_as_python(tokenizer, texts, reference);
  // Two threads at once through another Tokenizer of the same model, each
  // thread with its own cache, from cold.
  const Tokenizer second(model);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(2, 0);
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int> ids;
      for (size_t i = 0; i < texts.size(); ++i) {
        second.encode(texts[i], ids);
        if (ids != reference[i]) ++mismatches[static_cast<size_t>(t)];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>({0, 0}));
}

TEST(Tokenizer, EncodesWholeTextsWhereWordByWordWouldNotBeExact) {
  ASSERT_TRUE(testing::python_has("sentencepiece"));
  testing::TempDir dir;
  const auto texts = texts_around_spaces();
  const std::vector<std::string> first(texts.begin(), texts.begin() + 400);
  // Unigram sums float scores along its path (a tie can round differently
  // after another prefix); the others change what a space becomes.
  for (const auto& [name, flags] : std::vector<std::pair<std::string, std::string>>{
           {"unigram", "--model_type=unigram"},
           {"no-dummy-prefix", "--model_type=bpe --add_dummy_prefix=false"},
           {"suffix", "--model_type=bpe --treat_whitespace_as_suffix=true"}}) {
    SCOPED_TRACE(name);
    const std::string model = train_model(dir, name, flags);
    const Tokenizer tokenizer(model);
    EXPECT_FALSE(tokenizer.encodes_word_by_word());
    expect_encodes_as_python(tokenizer, first, python_encode(model, first, dir));
  }
  // A built-in normaliser other than the default keeps it on.
  const std::string identity = train_model(dir, "identity", "--model_type=bpe --normalization_rule_name=identity");
  const Tokenizer tokenizer(identity);
  EXPECT_TRUE(tokenizer.encodes_word_by_word());
  expect_encodes_as_python(tokenizer, first, python_encode(identity, first, dir));
}

}  // namespace
}  // namespace cpt::data
