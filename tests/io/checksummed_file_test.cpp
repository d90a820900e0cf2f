#include "cpt/io/checksummed_file.h"

#include <gtest/gtest.h>
#include <sys/vfs.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "cpt/common/crc32c.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt {
namespace {

using Cache = io::ChecksummedFile::Cache;

// Pieces of every size around the 4 KiB block and the 4 MiB staging
// buffer, in shuffled order, written by two threads.
std::vector<std::pair<uint64_t, uint64_t>> shuffled_pieces(uint64_t size, std::mt19937_64& random) {
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  const uint64_t lengths[] = {1, 7, 4095, 4096, 4097, 12288, 100000, (uint64_t{4} << 20) + 3, 3};
  for (uint64_t at = 0, i = 0; at < size; ++i) {
    const uint64_t n = std::min(lengths[(i + random()) % std::size(lengths)], size - at);
    pieces.emplace_back(at, n);
    at += n;
  }
  std::shuffle(pieces.begin(), pieces.end(), random);
  return pieces;
}

class ChecksummedFileTest : public ::testing::TestWithParam<Cache> {};

TEST_P(ChecksummedFileTest, PiecesInAnyOrderFromTwoThreadsMakeTheFileAndItsCrc) {
  testing::TempDir dir;
  std::mt19937_64 random(7);
  for (const uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{4096}, uint64_t{4097}, uint64_t{9} << 20 | 123}) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    const std::string path = dir.file("file-" + std::to_string(size));
    io::ChecksummedFile file(path, size, GetParam());
    const auto pieces = shuffled_pieces(size, random);
    auto write_every_other = [&](size_t first) {
      for (size_t i = first; i < pieces.size(); i += 2) file.write(pieces[i].first, bytes.data() + pieces[i].first, pieces[i].second);
    };
    std::thread other(write_every_other, 1);
    write_every_other(0);
    other.join();
    const io::FileChecksum checksum = file.finish();
    EXPECT_EQ(checksum.bytes, size);
    EXPECT_EQ(checksum.crc32c, crc32c(0, bytes.data(), bytes.size())) << size;
    ASSERT_EQ(std::filesystem::file_size(path), size);
    EXPECT_EQ(testing::read_file(path), bytes) << size;
    EXPECT_EQ(file_crc32c(path), checksum.crc32c);
  }
}

// A writer that goes from the start to the end (a safetensors file's
// header, then its tensors) is gathered into whole staging buffers; the
// same file with its first piece last, or its second half written
// backwards by another thread at the same time, must come out the same.
TEST_P(ChecksummedFileTest, InOrderWritesWithOthersOutOfOrderMakeTheFileAndItsCrc) {
  testing::TempDir dir;
  std::mt19937_64 random(11);
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  for (const uint64_t size : {uint64_t{1}, uint64_t{4095}, uint64_t{4096}, 8 * kMiB - 1, 8 * kMiB, 8 * kMiB + 1,
                              25 * kMiB + 321}) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    auto pieces = shuffled_pieces(size, random);
    std::sort(pieces.begin(), pieces.end());
    for (const std::string order : {"in order", "first piece last", "second half backwards beside"}) {
      SCOPED_TRACE(std::to_string(size) + ", " + order);
      const std::string path = dir.file("file");
      io::ChecksummedFile file(path, size, GetParam());
      const auto write = [&](size_t i) { file.write(pieces[i].first, bytes.data() + pieces[i].first, pieces[i].second); };
      if (order == "in order") {
        for (size_t i = 0; i < pieces.size(); ++i) write(i);
      } else if (order == "first piece last") {
        for (size_t i = 1; i < pieces.size(); ++i) write(i);
        write(0);
      } else {
        const size_t half = pieces.size() / 2;
        std::thread other([&] {
          for (size_t i = pieces.size(); i-- > half;) write(i);
        });
        for (size_t i = 0; i < half; ++i) write(i);
        other.join();
      }
      const io::FileChecksum checksum = file.finish();
      EXPECT_EQ(checksum.crc32c, crc32c(0, bytes.data(), bytes.size()));
      ASSERT_EQ(std::filesystem::file_size(path), size);
      EXPECT_TRUE(testing::read_file(path) == bytes);
    }
  }
}

TEST_P(ChecksummedFileTest, RefusesToFinishAFileWithAGapOrAnOverlap) {
  testing::TempDir dir;
  const std::string bytes(10000, 'x');
  {
    io::ChecksummedFile gap(dir.file("gap"), 10000, GetParam());
    gap.write(0, bytes.data(), 5000);
    gap.write(5001, bytes.data(), 4999);
    EXPECT_THROW(
        {
          try {
            gap.finish();
          } catch (const std::logic_error& e) {
            EXPECT_NE(std::string(e.what()).find("[5000, 5001) were written never"), std::string::npos) << e.what();
            throw;
          }
        },
        std::logic_error);
  }
  {
    io::ChecksummedFile overlap(dir.file("overlap"), 10000, GetParam());
    overlap.write(0, bytes.data(), 6000);
    overlap.write(5000, bytes.data(), 5000);
    EXPECT_THROW(overlap.finish(), std::logic_error);
  }
  io::ChecksummedFile short_file(dir.file("short"), 10000, GetParam());
  short_file.write(0, bytes.data(), 9999);
  EXPECT_THROW(short_file.finish(), std::logic_error);
  EXPECT_THROW(short_file.write(9999, bytes.data(), 2), std::out_of_range);
}

INSTANTIATE_TEST_SUITE_P(Cache, ChecksummedFileTest, ::testing::Values(Cache::kKeep, Cache::kBypass),
                         [](const auto& info) { return info.param == Cache::kKeep ? "PageCache" : "Direct"; });

TEST(ChecksummedFile, BypassesThePageCacheOnFileSystemsThatAllowIt) {
  testing::TempDir dir;
  io::ChecksummedFile kept(dir.file("kept"), 1, Cache::kKeep);
  EXPECT_FALSE(kept.bypasses_cache());
  // ext4 and xfs take O_DIRECT; elsewhere the file is written buffered,
  // which the tests above cover too.
  struct statfs info {};
  ASSERT_EQ(::statfs(dir.path().c_str(), &info), 0);
  constexpr long kExt4 = 0xEF53, kXfs = 0x58465342;
  if (info.f_type == kExt4 || info.f_type == kXfs) {
    io::ChecksummedFile direct(dir.file("direct"), 1, Cache::kBypass);
    EXPECT_TRUE(direct.bypasses_cache());
  }
}

TEST(ChecksummedFile, WritesThroughThePageCacheOnTmpfs) {
  // tmpfs takes O_DIRECT (Linux 6.6+), but its files are memory: staging
  // the bytes first would only add a copy. /dev/shm is tmpfs on Linux.
  const std::string shm = "/dev/shm";
  struct statfs info {};
  if (::statfs(shm.c_str(), &info) != 0 || info.f_type != 0x01021994) GTEST_SKIP() << shm << " is not tmpfs here";
  const std::string path = shm + "/cpt-test-" + std::to_string(std::random_device{}());
  std::vector<uint8_t> bytes(3 * 4096 + 5);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 31 + 7);
  {
    io::ChecksummedFile file(path, bytes.size(), Cache::kBypass);
    EXPECT_FALSE(file.bypasses_cache());
    file.write(0, bytes.data(), bytes.size());
    const io::FileChecksum sum = file.finish();
    EXPECT_EQ(sum.bytes, bytes.size());
    EXPECT_EQ(sum.crc32c, crc32c(0, bytes.data(), bytes.size()));
  }
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> read((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  EXPECT_EQ(read, bytes);
}

}  // namespace
}  // namespace cpt
