#include "cpt/io/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <limits>

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cpt/common/error.h"
#include "cpt/io/hf_model.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt::io {
namespace {

std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

TEST(Safetensors, RoundTripsWithPaddedHeaderAndFormatMetadata) {
  testing::TempDir dir;
  const std::string path = dir.file("t.safetensors");
  {
    SafetensorsWriter writer(path, {{"b.bias", Dtype::kF32, {3}}, {"a.weight", Dtype::kBF16, {2, 2}},
                                    {"scalar", Dtype::kF32, {}}, {"empty", Dtype::kF32, {0, 4}}},
                             {{"step", "12"}});
    const float bias[3] = {1, 2, 3};
    writer.write("b.bias", 4, bias + 1, 8);  // any order, any offset
    writer.write("b.bias", 0, bias, 4);
    const uint16_t w[4] = {0x3F80, 0x4000, 0x4040, 0x4080};
    writer.write("a.weight", 0, w, 8);
    const float s = 7;
    writer.write("scalar", 0, &s, 4);
    writer.finish();
  }
  const SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("step"), "12");
  // Larger element types first, then by name.
  std::vector<std::string> order;
  for (const auto& t : file.tensors()) order.push_back(t.spec.name);
  EXPECT_EQ(order, (std::vector<std::string>{"b.bias", "empty", "scalar", "a.weight"}));
  const TensorInfo* bias = file.find("b.bias");
  ASSERT_NE(bias, nullptr);
  float values[3];
  std::memcpy(values, file.data(*bias), 12);
  EXPECT_EQ(values[2], 3.0f);
  std::vector<float> w(4);
  to_f32(Dtype::kBF16, file.data(*file.find("a.weight")), w.data(), 4);
  EXPECT_EQ(w, (std::vector<float>{1, 2, 3, 4}));
  uint64_t header_size;
  std::memcpy(&header_size, testing::read_file(path).data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
}

// Every dtype the format (and so this project) knows, as safetensors spells it.
const std::vector<Dtype> kAllDtypes = {Dtype::kBool, Dtype::kU8,   Dtype::kI8,  Dtype::kF8E5M2, Dtype::kF8E4M3,
                                       Dtype::kI16,  Dtype::kU16,  Dtype::kF16, Dtype::kBF16,   Dtype::kI32,
                                       Dtype::kU32,  Dtype::kF32,  Dtype::kI64, Dtype::kU64,    Dtype::kF64};

// The bytes tests/io/safetensors_library.py's pattern() gives tensor `name`.
std::string pattern(const std::string& name, size_t count) {
  std::string bytes(count, '\0');
  for (size_t j = 0; j < count; ++j) {
    const int b = static_cast<int>((31 * j + name.size()) % 256);
    bytes[j] = static_cast<char>(name == "BOOL" ? b % 2 : b);
  }
  return bytes;
}

std::string hex(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

const std::string kLibrary = std::string(CPT_PYTHON " ") + CPT_SOURCE_DIR + "/tests/io/safetensors_library.py";

TEST(Safetensors, SafeOpenReadsEveryDtypeWeWrite) {
  testing::TempDir dir;
  const std::string path = dir.file("ours.safetensors");
  std::vector<TensorSpec> specs;
  for (Dtype d : kAllDtypes) specs.push_back({dtype_name(d), d, {2, 3}});
  specs.push_back({"scalar", Dtype::kF32, {}});
  specs.push_back({"empty", Dtype::kBF16, {0, 4}});
  {
    SafetensorsWriter writer(path, specs, {{"step", "12"}});
    for (const auto& s : specs) {
      const std::string bytes = pattern(s.name, s.nbytes());
      writer.write(s.name, 0, bytes.data(), bytes.size());
    }
    writer.finish();
  }
  const testing::CommandResult r = testing::run_command(kLibrary + " read " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["metadata"]["format"], "pt");
  EXPECT_EQ(json["metadata"]["step"], "12");
  ASSERT_EQ(json["tensors"].size(), specs.size());
  for (const auto& s : specs) {
    const auto& t = json["tensors"][s.name];
    EXPECT_EQ(t["dtype"], dtype_name(s.dtype)) << s.name;
    EXPECT_EQ(t["shape"].get<std::vector<int64_t>>(), s.shape) << s.name;
    EXPECT_EQ(t["bytes"], hex(pattern(s.name, s.nbytes()))) << s.name;
  }
}

TEST(Safetensors, ReadsEveryDtypeSafetensorsWrites) {
  testing::TempDir dir;
  const std::string path = dir.file("theirs.safetensors");
  const testing::CommandResult r = testing::run_command(kLibrary + " write " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("written_by"), "safetensors");
  EXPECT_EQ(file.tensors().size(), kAllDtypes.size());
  for (Dtype d : kAllDtypes) {
    const std::string name = dtype_name(d);
    const TensorInfo* t = file.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->spec.dtype, d) << name;
    EXPECT_EQ(t->spec.shape, (std::vector<int64_t>{2, 3})) << name;
    const std::string expected = pattern(name, t->spec.nbytes());
    EXPECT_EQ(hex(std::string(reinterpret_cast<const char*>(file.data(*t)), t->spec.nbytes())), hex(expected)) << name;
  }
}

TEST(Dtype, HalfConversionsRoundToNearestEvenLikeNumpyAndTorch) {
  // Reference values from numpy (float16) and torch (bfloat16) rounding.
  const float in[] = {1.0f, 1.00048828125f, 1.0009765625f, 65504.0f, 65520.0f, 6e-8f, 2.98e-8f, -0.0f, 1e-40f};
  uint16_t half[9];
  from_f32(Dtype::kF16, in, half, 9);
  EXPECT_EQ(half[0], 0x3C00);
  EXPECT_EQ(half[1], 0x3C00);  // exactly halfway: ties to even
  EXPECT_EQ(half[2], 0x3C01);
  EXPECT_EQ(half[3], 0x7BFF);
  EXPECT_EQ(half[4], 0x7C00);  // rounds past the largest half: inf
  EXPECT_EQ(half[5], 0x0001);  // subnormal
  EXPECT_EQ(half[6], 0x0000);  // below half the smallest subnormal
  EXPECT_EQ(half[7], 0x8000);
  EXPECT_EQ(half[8], 0x0000);
  const float bf_in[] = {1.00390625f, 1.01171875f, 3.14159265f};
  uint16_t bf[3];
  from_f32(Dtype::kBF16, bf_in, bf, 3);
  EXPECT_EQ(bf[0], 0x3F80);  // halfway between 1 and 1.0078125: to even
  EXPECT_EQ(bf[1], 0x3F82);  // halfway: to even (up)
  EXPECT_EQ(bf[2], 0x4049);
  float back[3];
  to_f32(Dtype::kF16, half, back, 3);
  EXPECT_EQ(back[2], 1.0009765625f);
}

TEST(Dtype, AllFiniteAndCopyIfFiniteFindOneNanOrInfinityAnywhereInEachFloatType) {
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()};
  // Long enough for several blocks of the check; the bad value at the
  // start, in the middle of a block, and last.
  const size_t n = 10'000;
  for (Dtype dtype : {Dtype::kF32, Dtype::kBF16, Dtype::kF16, Dtype::kF64}) {
    SCOPED_TRACE(dtype_name(dtype));
    std::vector<float> values(n);
    for (size_t i = 0; i < n; ++i) values[i] = static_cast<float>(i % 97) * (i % 2 ? -1e2f : 1e-3f);
    values[5] = 65504.0f;  // the largest half: finite in every type
    std::vector<uint8_t> bytes(n * dtype_bits(dtype) / 8);
    const auto encode = [&] {
      if (dtype == Dtype::kF64) {
        for (size_t i = 0; i < n; ++i) reinterpret_cast<double*>(bytes.data())[i] = values[i];
      } else {
        from_f32(dtype, values.data(), bytes.data(), n);
      }
    };
    encode();
    EXPECT_TRUE(all_finite(dtype, bytes.data(), n));
    // copy_if_finite answers the same and copies every byte either way.
    std::vector<uint8_t> copy(bytes.size());
    EXPECT_TRUE(copy_if_finite(dtype, bytes.data(), copy.data(), n));
    EXPECT_EQ(copy, bytes);
    for (size_t at : {size_t{0}, size_t{5000}, n - 1}) {
      for (float special : specials) {
        const float kept = values[at];
        values[at] = special;
        encode();
        EXPECT_FALSE(all_finite(dtype, bytes.data(), n)) << "at " << at << ": " << special;
        std::fill(copy.begin(), copy.end(), 0);
        EXPECT_FALSE(copy_if_finite(dtype, bytes.data(), copy.data(), n)) << "at " << at << ": " << special;
        EXPECT_EQ(copy, bytes);
        values[at] = kept;
      }
    }
  }
  const int32_t integers[] = {0x7f800000, -1};
  EXPECT_TRUE(all_finite(Dtype::kI32, integers, 2));  // not floats: nothing to check
}

TEST(Dtype, StreamCopyIfFiniteCopiesAtEveryAlignmentAndFindsABadValueBeforeInAndAfterTheStreamedLines) {
  // The streamed body starts at the target's first 64-byte line: every
  // start within a line, lengths around one and several lines, and the
  // bad value in the ordinary head, the streamed lines and the tail.
  for (Dtype dtype : {Dtype::kF32, Dtype::kBF16, Dtype::kF16, Dtype::kF64, Dtype::kI32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const size_t element = dtype_bits(dtype) / 8;
    const size_t per_line = 64 / element;
    for (size_t count : {size_t{0}, size_t{1}, per_line - 1, per_line, per_line + 1, 5 * per_line + 3, size_t{4099}}) {
      std::vector<float> values(count);
      for (size_t i = 0; i < count; ++i) values[i] = static_cast<float>(i % 89) * (i % 3 ? -0.5f : 3.0f);
      std::vector<uint8_t> bytes(count * element);
      const auto encode = [&] {
        if (dtype == Dtype::kF64) {
          for (size_t i = 0; i < count; ++i) reinterpret_cast<double*>(bytes.data())[i] = values[i];
        } else if (dtype == Dtype::kI32) {
          std::memcpy(bytes.data(), values.data(), bytes.size());  // float bits, never checked
        } else {
          from_f32(dtype, values.data(), bytes.data(), count);
        }
      };
      encode();
      std::vector<uint8_t> buffer(bytes.size() + 128);
      const size_t line_start = (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) % 64;
      for (size_t skew = 0; skew < per_line; ++skew) {
        uint8_t* target = buffer.data() + line_start + skew * element;
        SCOPED_TRACE(fmt::format("{} elements, {} past a line", count, skew));
        std::fill(buffer.begin(), buffer.end(), 0xab);
        EXPECT_TRUE(stream_copy_if_finite(dtype, bytes.data(), target, count));
        EXPECT_EQ(0, std::memcmp(target, bytes.data(), bytes.size()));
        // Nothing written outside the target.
        const auto untouched = [](uint8_t b) { return b == 0xab; };
        EXPECT_TRUE(std::all_of(buffer.data(), target, untouched));
        EXPECT_TRUE(std::all_of(target + bytes.size(), buffer.data() + buffer.size(), untouched));
        if (count == 0) continue;
        for (size_t at : {size_t{0}, std::min(count - 1, per_line - skew), count / 2, count - 1}) {
          const float kept = values[at];
          values[at] = -std::numeric_limits<float>::infinity();
          encode();
          std::fill(buffer.begin(), buffer.end(), 0);
          EXPECT_EQ(stream_copy_if_finite(dtype, bytes.data(), target, count), dtype == Dtype::kI32) << "at " << at;
          EXPECT_EQ(0, std::memcmp(target, bytes.data(), bytes.size())) << "at " << at;
          values[at] = std::numeric_limits<float>::quiet_NaN();
          encode();
          EXPECT_EQ(stream_copy_if_finite(dtype, bytes.data(), target, count), dtype == Dtype::kI32) << "at " << at;
          values[at] = kept;
          encode();
        }
      }
    }
  }
}

struct BadFile {
  const char* name;
  std::string bytes;
  std::string expected;
};

class BadSafetensorsTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(BadSafetensorsTest, IsRejectedWithItsRule) {
  testing::TempDir dir;
  const std::string path = dir.write("bad.safetensors", GetParam().bytes);
  try {
    SafetensorsFile file(path);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "'" + path + "': " + GetParam().expected);
  }
}

void PrintTo(const BadFile& c, std::ostream* out) { *out << c.name; }

const std::string kGood = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

INSTANTIATE_TEST_SUITE_P(
    Table, BadSafetensorsTest,
    ::testing::Values(
        BadFile{"too_short", "abc", "3 bytes is too short for a safetensors file"},
        BadFile{"header_past_end", raw_file(kGood, "").substr(0, 20), "header length 54 runs past the end of the 20-byte file"},
        BadFile{"huge_header", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "header length 4294967295 exceeds the 100 MB limit"},
        BadFile{"not_json", raw_file("{not json", ""), "the header is not valid UTF-8 JSON"},
        BadFile{"truncated_data", raw_file(kGood, "1234"), "the tensors end at byte 8 of the data but the file holds 4; it is truncated or has trailing bytes"},
        BadFile{"trailing_bytes", raw_file(kGood, "123456789"), "the tensors end at byte 8 of the data but the file holds 9; it is truncated or has trailing bytes"},
        BadFile{"wrong_size", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"),
                "tensor 'a' spans 8 bytes but [3] F32 needs 12"},
        BadFile{"hole", raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "12345678"),
                "tensor 'a' starts at byte 4 but the previous one ends at 0: holes and overlaps are invalid"},
        BadFile{"overlap", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "12345678"),
                "tensor 'b' starts at byte 4 but the previous one ends at 8: holes and overlaps are invalid"},
        BadFile{"unknown_dtype", raw_file(R"({"a":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}})", "12"),
                "tensor 'a' has unknown dtype \"F12\""},
        BadFile{"duplicate_name", raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", "12"),
                "the header names tensor 'a' twice"},
        BadFile{"metadata_not_strings", raw_file(R"({"__metadata__":{"step":3}})", ""), "__metadata__ value 'step' is not a string"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Shards, PackGreedilyInOrderAndNameFilesLikeHuggingFace) {
  std::vector<TensorSpec> specs = {{"a", Dtype::kF32, {10}}, {"b", Dtype::kF32, {10}}, {"big", Dtype::kF32, {100}},
                                   {"c", Dtype::kF32, {5}}};
  const auto shards = plan_shards(specs, 80);
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0].size(), 2u);
  EXPECT_EQ(shards[1][0].name, "big");  // oversized: its own shard
  EXPECT_EQ(shards[2][0].name, "c");
  EXPECT_EQ(shard_file_name(1, 3), "model-00002-of-00003.safetensors");
  EXPECT_EQ(shard_file_name(0, 1), "model.safetensors");
  const auto index = nlohmann::json::parse(shard_index_json(shards));
  EXPECT_EQ(index["metadata"]["total_size"], 500);
  EXPECT_EQ(index["weight_map"]["c"], "model-00003-of-00003.safetensors");
}

}  // namespace
}  // namespace cpt::io
