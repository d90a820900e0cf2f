#include "cpt/data/indexed_dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "cpt/common/error.h"
#include "support/datasets.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt::data {
namespace {

// megatron-core's own reader and writer (tests/data/megatron_indexed.py).
const std::string kMegatron = std::string(CPT_PYTHON " ") + CPT_SOURCE_DIR + "/tests/data/megatron_indexed.py";

std::vector<int64_t> all_tokens(const IndexedDataset& d) {
  std::vector<int64_t> out(static_cast<size_t>(d.tokens()));
  d.read_tokens(0, d.tokens(), out.data());
  return out;
}

TEST(IndexedDataset, RoundTripsUint16AndInt32) {
  testing::TempDir dir;
  const std::vector<std::vector<int32_t>> docs = {{1, 2, 3}, {}, {65535, 0}, {7}};
  testing::write_dataset(dir.file("u16"), docs, TokenDtype::kUint16);
  std::vector<std::vector<int32_t>> wide = {{1, 100000}, {2147483647}};
  testing::write_dataset(dir.file("i32"), wide, TokenDtype::kInt32);

  const IndexedDataset u16(dir.file("u16"));
  EXPECT_EQ(u16.dtype(), TokenDtype::kUint16);
  EXPECT_EQ(u16.documents(), 4);
  EXPECT_EQ(u16.tokens(), 6);
  EXPECT_EQ(u16.document_length(1), 0);
  EXPECT_EQ(u16.document_offset(2), 3);
  EXPECT_EQ(all_tokens(u16), (std::vector<int64_t>{1, 2, 3, 65535, 0, 7}));

  const IndexedDataset i32(dir.file("i32"));
  EXPECT_EQ(i32.dtype(), TokenDtype::kInt32);
  EXPECT_EQ(all_tokens(i32), (std::vector<int64_t>{1, 100000, 2147483647}));
}

TEST(IndexedDataset, DtypeFollowsMegatronsVocabularyRule) {
  EXPECT_EQ(dtype_for_vocab(32000), TokenDtype::kUint16);
  EXPECT_EQ(dtype_for_vocab(65499), TokenDtype::kUint16);
  EXPECT_EQ(dtype_for_vocab(65500), TokenDtype::kInt32);
  EXPECT_EQ(dtype_for_vocab(128256), TokenDtype::kInt32);
}

TEST(IndexedDataset, ReadsWhatMegatronCoreWrote) {
  testing::TempDir dir;
  // Documents of several sequences, as Megatron writes sentence-split data.
  const testing::CommandResult written =
      testing::run_command(fmt::format("{} write {} 1,3,4,5,8 '[[3,2],[5],[1],[4,4,1]]'", kMegatron, dir.file("ref")));
  ASSERT_EQ(written.exit_code, 0) << written.err;
  for (int code : {1, 3, 4, 5, 8}) {
    const IndexedDataset d(dir.file(fmt::format("ref{}", code)));
    EXPECT_EQ(static_cast<int>(d.dtype()), code);
    EXPECT_EQ(d.documents(), 4);
    EXPECT_EQ(d.sequences(), 7);
    EXPECT_EQ(d.document_length(0), 5);
    EXPECT_EQ(d.document_length(3), 9);
    EXPECT_EQ(d.document_offset(3), 11);
    const auto tokens = all_tokens(d);
    ASSERT_EQ(tokens.size(), 20u);
    for (int64_t i = 0; i < d.tokens(); ++i) {
      EXPECT_EQ(tokens[static_cast<size_t>(i)], code == 1 ? i % 256 : i) << "dtype code " << code << ", token " << i;
    }
  }
}

TEST(IndexedDataset, MegatronCoreReadsWhatWeWrote) {
  testing::TempDir dir;
  testing::write_dataset(dir.file("ours"), {{5, 6, 7}, {8}, {}, {9, 10}});
  testing::write_dataset(dir.file("wide"), {{1, 100000}, {2147483647}}, TokenDtype::kInt32);
  for (const auto& [name, dtype, sequences, indices] :
       {std::tuple{"ours", 8, "[[5,6,7],[8],[],[9,10]]", "[0,1,2,3,4]"},
        std::tuple{"wide", 4, "[[1,100000],[2147483647]]", "[0,1,2]"}}) {
    const testing::CommandResult r = testing::run_command(kMegatron + " read " + dir.file(name));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto json = nlohmann::json::parse(r.out);
    EXPECT_EQ(json["dtype_code"], dtype) << name;
    EXPECT_EQ(json["sequences"], nlohmann::json::parse(sequences)) << name;
    EXPECT_EQ(json["document_indices"], nlohmann::json::parse(indices)) << name;
  }
}

TEST(IndexedDataset, AnUnfinishedWriterLeavesNothing) {
  testing::TempDir dir;
  {
    IndexedDatasetWriter writer(dir.file("partial"), TokenDtype::kUint16);
    const int32_t tokens[] = {1, 2};
    writer.add_document(tokens, 2);
  }
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 0);
}

// Another program truncates the .bin while it is mapped: the read that
// would have been SIGBUS reads zeros and is refused with the file's name.
TEST(IndexedDataset, ABinTruncatedWhileMappedIsAnErrorNotSigbus) {
  testing::TempDir dir;
  const std::string prefix = dir.file("shard");
  testing::write_dataset(prefix, testing::numbered_documents(4, 10, [](int) { return 5000; }));
  const data::IndexedDataset dataset(prefix);
  std::vector<int64_t> tokens(5000);
  dataset.read_tokens(dataset.document_offset(3), 5000, tokens.data());
  EXPECT_EQ(tokens.front(), 13);
  dataset.check_unchanged();
  std::filesystem::resize_file(prefix + ".bin", 100);
  try {
    dataset.read_tokens(dataset.document_offset(3), 5000, tokens.data());
    FAIL() << "a read past the new end was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(prefix + ".bin' was truncated"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dataset.check_unchanged(), InputError);
}

TEST(IndexedDataset, ABinRewrittenOrReplacedIsNoticed) {
  testing::TempDir dir;
  const std::string prefix = dir.file("shard");
  testing::write_dataset(prefix, testing::numbered_documents(3, 10, [](int) { return 100; }));
  const data::IndexedDataset dataset(prefix);
  testing::write_dataset(prefix, testing::numbered_documents(3, 20, [](int) { return 100; }));  // renamed over it
  try {
    dataset.check_unchanged();
    FAIL() << "a replaced .idx/.bin went unnoticed";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("was replaced by another file"), std::string::npos) << e.what();
  }
}

TEST(IndexedDataset, RejectsTokensTheDtypeCannotHold) {
  testing::TempDir dir;
  IndexedDatasetWriter writer(dir.file("x"), TokenDtype::kUint16);
  const int32_t tokens[] = {70000};
  EXPECT_THROW(writer.add_document(tokens, 1), InputError);
}

// Bad shards, each with the message it gets.
struct BadShard {
  const char* name;
  std::function<void(const std::string& prefix)> damage;
  std::string expected;  // {p} is the prefix
};

void patch(const std::string& path, size_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void truncate_to(const std::string& path, size_t size) { std::filesystem::resize_file(path, size); }

class BadShardTest : public ::testing::TestWithParam<BadShard> {};

TEST_P(BadShardTest, FailsWithItsMessage) {
  testing::TempDir dir;
  const std::string prefix = dir.file("shard");
  testing::write_dataset(prefix, {{1, 2, 3}, {4, 5}});  // 5 uint16 tokens, 2 sequences
  GetParam().damage(prefix);
  std::string expected = GetParam().expected;
  for (size_t at; (at = expected.find("{p}")) != std::string::npos;) expected.replace(at, 3, prefix);
  try {
    IndexedDataset dataset(prefix);
    FAIL() << "opened a bad shard";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), expected);
  }
}

void PrintTo(const BadShard& c, std::ostream* out) { *out << c.name; }

INSTANTIATE_TEST_SUITE_P(
    Table, BadShardTest,
    ::testing::Values(
        BadShard{"truncated_bin", [](const std::string& p) { truncate_to(p + ".bin", 7); },
                 "'{p}.bin': is 7 bytes but '{p}.idx' describes 10 bytes of 5 uint16 tokens; the pair does not match "
                 "or one is truncated"},
        BadShard{"idx_from_another_bin",
                 [](const std::string& p) {
                   testing::write_dataset(p + "-other", {{1, 2, 3, 4, 5, 6}});
                   std::filesystem::copy_file(p + "-other.bin", p + ".bin",
                                              std::filesystem::copy_options::overwrite_existing);
                 },
                 "'{p}.bin': is 12 bytes but '{p}.idx' describes 10 bytes of 5 uint16 tokens; the pair does not "
                 "match or one is truncated"},
        BadShard{"truncated_idx", [](const std::string& p) { truncate_to(p + ".idx", 50); },
                 "'{p}.idx': is 50 bytes but its header (2 sequences, 3 document boundaries) needs 82; the file is "
                 "truncated or corrupt"},
        BadShard{"short_idx", [](const std::string& p) { truncate_to(p + ".idx", 20); },
                 "'{p}.idx': 20 bytes is too short for the 34-byte header of a Megatron index"},
        BadShard{"bad_magic", [](const std::string& p) { patch(p + ".idx", 0, "NOTMEGA"); },
                 "'{p}.idx': bad magic: not a Megatron MMapIndexedDataset index"},
        BadShard{"dtype_99", [](const std::string& p) { patch(p + ".idx", 17, std::string(1, char(99))); },
                 "'{p}.idx': dtype code 99 is unknown; valid codes are 1-8"},
        BadShard{"float_dtype", [](const std::string& p) { patch(p + ".idx", 17, std::string(1, char(7))); },
                 "'{p}.idx': dtype float32 cannot hold token ids"},
        BadShard{"version_2", [](const std::string& p) { patch(p + ".idx", 9, std::string(1, char(2))); },
                 "'{p}.idx': index version 2 is not supported (only 1)"},
        BadShard{"pointer_not_cumulative",
                 [](const std::string& p) { patch(p + ".idx", 34 + 8 + 8, std::string(1, char(4))); },
                 "'{p}.idx': sequence 1 starts at byte 4 but the sequences before it end at 6; pointers must be "
                 "cumulative"},
        BadShard{"missing_bin", [](const std::string& p) { std::filesystem::remove(p + ".bin"); },
                 "cannot open '{p}.bin': No such file or directory"},
        BadShard{"missing_idx", [](const std::string& p) { std::filesystem::remove(p + ".idx"); },
                 "cannot open '{p}.idx': No such file or directory"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace cpt::data
