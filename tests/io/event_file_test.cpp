#include "cpt/io/event_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/python.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt::io {
namespace {

// TFRecord's checksum and framing, against the values of TensorBoard's
// own writer (tensorboard.summary.writer.record_writer.masked_crc32c).
TEST(EventFile, MaskedCrcAndFramingAreTfRecords) {
  EXPECT_EQ(masked_crc32c("hello", 5), 0x191c1fbbu);
  const std::string record = tfrecord("abc");
  ASSERT_EQ(record.size(), 8u + 4u + 3u + 4u);
  const auto u32 = [&](size_t at) {
    uint32_t value = 0;
    std::memcpy(&value, record.data() + at, 4);
    return value;
  };
  EXPECT_EQ(record.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(u32(8), 0x0e4999b0u) << "the masked CRC of the length";
  EXPECT_EQ(record.substr(12, 3), "abc");
  EXPECT_EQ(u32(15), 0x21f1576eu) << "the masked CRC of the record";
}

// TensorBoard's own loader reads back every scalar at its step, and a
// session START drops the later steps of an earlier file.
TEST(EventFile, TensorBoardReadsTheScalarsAndPurgesOnAResume) {
  ASSERT_TRUE(testing::python_has("tensorboard"));
  testing::TempDir dir;
  {
    EventFileWriter first(dir.path());
    for (int64_t step = 1; step <= 6; ++step) first.add_scalars(step, {{"loss", 10.0 - step}, {"eval/web/loss", 0.5}});
  }
  {
    // A resume from step 4: steps 5 and 6 run again, with other values.
    EventFileWriter second(dir.path(), 5);
    for (int64_t step = 5; step <= 7; ++step) second.add_scalars(step, {{"loss", 100.0 + step}});
  }
  const auto read = testing::run_command(
      fmt::format(CPT_PYTHON " {}/tests/io/read_events.py {}", CPT_SOURCE_DIR, dir.path()));
  ASSERT_EQ(read.exit_code, 0) << read.err;
  const auto scalars = nlohmann::json::parse(read.out);
  const nlohmann::json want = {{1, 9.0}, {2, 8.0}, {3, 7.0}, {4, 6.0}, {5, 105.0}, {6, 106.0}, {7, 107.0}};
  EXPECT_EQ(scalars["loss"], want);
  EXPECT_EQ(scalars["eval/web/loss"].size(), 4u) << "steps 5 and 6 of the first file are purged";
}

}  // namespace
}  // namespace cpt::io
