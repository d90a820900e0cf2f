#include "cpt/io/checksums.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "cpt/common/crc32c.h"
#include "cpt/common/error.h"
#include "support/temp_dir.h"

namespace cpt {
namespace {

TEST(Crc32c, MatchesTheStandardCheckValues) {
  // RFC 3720's check value, and iSCSI's 32 zero bytes.
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  // Extending in pieces equals one pass, at every split (the 8-byte path and the tail).
  const std::string text = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t split = 0; split <= text.size(); ++split) {
    EXPECT_EQ(crc32c(crc32c(0, text.data(), split), text.data() + split, text.size() - split),
              crc32c(0, text.data(), text.size()));
  }
}

// CRC-32C one bit at a time, straight from the polynomial: the reference
// for the hardware path's three interleaved lanes.
uint32_t bitwise_crc32c(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

TEST(Crc32c, LongInputsMatchTheBitwiseDefinitionAroundEveryLaneBoundary) {
  // The fast path takes 3 x 8 KiB at a time: lengths on both sides of one
  // and several such rounds, from unaligned starts, continuing a CRC.
  std::vector<uint8_t> bytes(5 * 24576 + 64);
  uint32_t state = 12345;
  for (auto& b : bytes) {
    state = state * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(state >> 24);
  }
  for (size_t size : {size_t{0}, size_t{7}, size_t{8191}, size_t{24575}, size_t{24576}, size_t{24577}, size_t{24583},
                      size_t{49152}, size_t{49159}, size_t{3 * 24576 + 100}, size_t{5 * 24576}}) {
    for (size_t start : {size_t{0}, size_t{3}}) {
      const uint8_t* p = bytes.data() + start;
      EXPECT_EQ(crc32c(0, p, size), bitwise_crc32c(0, p, size)) << size << " bytes from " << start;
      EXPECT_EQ(crc32c(0xDEADBEEF, p, size), bitwise_crc32c(0xDEADBEEF, p, size)) << size << " bytes from " << start;
    }
  }
}

TEST(Crc32c, CombinesTheChecksumsOfTwoPiecesIntoTheWholesAtEverySplit) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text.push_back(static_cast<char>((i * 131 + i / 7) & 0xFF));
  const uint32_t whole = crc32c(0, text.data(), text.size());
  for (size_t split = 0; split <= text.size(); split += (split < 70 ? 1 : 97)) {
    const size_t tail = text.size() - split;
    EXPECT_EQ(crc32c_combine(crc32c(0, text.data(), split), crc32c(0, text.data() + split, tail), tail), whole)
        << "split at " << split;
  }
  // Three pieces, combined left to right; and 4 GiB of zeros (lengths past 32 bits) against its known CRC.
  const uint32_t a = crc32c(0, text.data(), 1000), b = crc32c(0, text.data() + 1000, 3000),
                 c = crc32c(0, text.data() + 4000, 1000);
  EXPECT_EQ(crc32c_combine(crc32c_combine(a, b, 3000), c, 1000), whole);
  const std::string mib(size_t{1} << 20, '\0');
  uint32_t zeros = crc32c(0, mib.data(), mib.size());
  for (int doubling = 0; doubling < 12; ++doubling) zeros = crc32c_combine(zeros, zeros, uint64_t{1} << (20 + doubling));
  uint32_t streamed = 0;
  for (int i = 0; i < 4096; ++i) streamed = crc32c(streamed, mib.data(), mib.size());
  EXPECT_EQ(zeros, streamed);
}

TEST(Checksums, AFileLargerThanOneRangeIsReadOnEveryCoreAndCombined) {
  // 70 MB: two 64 MiB ranges, checksummed apart and combined.
  testing::TempDir dir;
  std::string bytes(70'000'000, '\0');
  for (size_t i = 0; i < bytes.size(); i += 4096) bytes[i] = static_cast<char>(i / 4096);
  dir.write("ckpt/trainer_state/optimizer.safetensors", bytes);
  dir.write("ckpt/config.json", "{}");
  const std::string ckpt = dir.file("ckpt");
  io::write_checksums(ckpt);
  const auto manifest = io::parse_checksums(testing::read_file(ckpt + "/" + io::kChecksumsFile), "checksums.json");
  EXPECT_EQ(manifest.at("trainer_state/optimizer.safetensors").crc32c, crc32c(0, bytes.data(), bytes.size()));
  EXPECT_NO_THROW(io::verify_checksums(ckpt));
  bytes[69'000'000] ^= 1;  // in the second range
  dir.write("ckpt/trainer_state/optimizer.safetensors", bytes);
  EXPECT_THROW(io::verify_checksums(ckpt), InputError);
  try {
    file_range_crc32c(ckpt + "/config.json", 1, 5);
    ADD_FAILURE() << "read past the end";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json' ended at byte 2"), std::string::npos) << e.what();
  }
}

TEST(Checksums, FilesChecksummedAsTheyWereWrittenAreNotReadAgain) {
  testing::TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  dir.write("ckpt/model.safetensors", std::string(100000, 'w'));
  dir.write("ckpt/trainer_state/optimizer.safetensors", std::string(5000, 'm'));
  dir.write("ckpt/config.json", "{}");
  // What the writer computed is taken as it is (here a value the bytes do
  // not have, to see it was not recomputed); a known entry whose size no
  // longer matches is read.
  io::write_checksums(ckpt, {{"model.safetensors", {100000, 0x12345678}},
                             {"trainer_state/optimizer.safetensors", {4999, 0x9abcdef0}}});
  const auto manifest = io::parse_checksums(testing::read_file(ckpt + "/" + io::kChecksumsFile), "checksums.json");
  ASSERT_EQ(manifest.size(), 3u);
  EXPECT_EQ(manifest.at("model.safetensors").crc32c, 0x12345678u);
  EXPECT_EQ(manifest.at("trainer_state/optimizer.safetensors").crc32c, file_crc32c(ckpt + "/trainer_state/optimizer.safetensors"));
  EXPECT_EQ(manifest.at("trainer_state/optimizer.safetensors").bytes, 5000u);
  EXPECT_EQ(manifest.at("config.json").crc32c, crc32c(0, "{}", 2));
}

TEST(Checksums, RecordEveryFileAndFindAFlipATruncationAndAMissingFile) {
  testing::TempDir dir;
  dir.write("ckpt/model.safetensors", std::string(100000, 'w'));
  dir.write("ckpt/config.json", "{}");
  dir.write("ckpt/trainer_state/optimizer.safetensors", std::string(5000, 'm'));
  const std::string ckpt = dir.file("ckpt");
  io::write_checksums(ckpt);
  const auto manifest = io::parse_checksums(testing::read_file(ckpt + "/" + io::kChecksumsFile), "checksums.json");
  EXPECT_EQ(manifest.size(), 3u);
  EXPECT_EQ(manifest.at("model.safetensors").bytes, 100000u);
  EXPECT_NO_THROW(io::verify_checksums(ckpt));

  dir.write("ckpt/model.safetensors", std::string(99999, 'w') + "v");
  try {
    io::verify_checksums(ckpt);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(ckpt + "/model.safetensors' is corrupt"), std::string::npos) << e.what();
  }
  // Only the files asked for are read.
  EXPECT_NO_THROW(io::verify_checksums(ckpt, [](const std::string& name) { return !io::is_model_file(name); }));

  dir.write("ckpt/model.safetensors", std::string(100000, 'w'));
  std::filesystem::resize_file(ckpt + "/trainer_state/optimizer.safetensors", 10);
  EXPECT_THROW(io::verify_checksums(ckpt), InputError);
  std::filesystem::remove(ckpt + "/trainer_state/optimizer.safetensors");
  try {
    io::verify_checksums(ckpt);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is missing from the checkpoint"), std::string::npos) << e.what();
  }
}

TEST(Checksums, MalformedManifestsAreRefusedWithTheirName) {
  for (const char* text : {"", "[]", R"({"algorithm": "md5", "files": {}})", R"({"algorithm": "crc32c"})",
                           R"({"algorithm": "crc32c", "files": {"a": {"bytes": -1, "crc32c": "00000000"}}})",
                           R"({"algorithm": "crc32c", "files": {"a": {"bytes": 1, "crc32c": "0x1"}}})",
                           R"({"algorithm": "crc32c", "files": {"../etc/passwd": {"bytes": 1, "crc32c": "00000000"}}})"}) {
    try {
      io::parse_checksums(text, "ckpt/trainer_state/checksums.json");
      FAIL() << text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("ckpt/trainer_state/checksums.json"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace cpt
