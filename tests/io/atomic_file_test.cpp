#include "cpt/io/atomic_file.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "support/temp_dir.h"

namespace cpt::io {
namespace {

TEST(AtomicFile, WritesAndReplacesWholeFiles) {
  testing::TempDir dir;
  const std::string path = dir.file("state.json");
  write_file_atomic(path, "first");
  EXPECT_EQ(testing::read_file(path), "first");
  write_file_atomic(path, std::string(1 << 20, 'x'));
  EXPECT_EQ(testing::read_file(path).size(), 1u << 20);
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1) << "no temporary file is left behind";
}

TEST(AtomicFile, AFailedWriteKeepsThePreviousVersion) {
  testing::TempDir dir;
  const std::string path = dir.file("keep.txt");
  write_file_atomic(path, "previous");
  std::filesystem::create_directory(dir.file("keep.txt.tmp." + std::to_string(::getpid())));  // temp name is taken
  EXPECT_THROW(write_file_atomic(path, "new"), std::runtime_error);
  EXPECT_EQ(testing::read_file(path), "previous");
}

TEST(AtomicFile, NamesThePathWhenTheDirectoryIsMissing) {
  try {
    write_file_atomic("/nonexistent-dir/x.yaml", "x");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.yaml"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cpt::io
