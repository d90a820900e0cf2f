#include "cpt/common/strings.h"

#include <gtest/gtest.h>

#include "cpt/common/bytes.h"

namespace cpt {
namespace {

TEST(Strings, EditDistanceCountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(edit_distance("lr", "lr"), 0u);
  EXPECT_EQ(edit_distance("lrr", "lr"), 1u);
  EXPECT_EQ(edit_distance("optimiser", "optimizer"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(Strings, ClosestMatchSuggestsOnlyPlausibleTypos) {
  std::vector<std::string> keys = {"lr", "betas", "eps", "weight_decay", "grad_clip"};
  EXPECT_EQ(closest_match("lrr", keys), "lr");
  EXPECT_EQ(closest_match("weight_decy", keys), "weight_decay");
  EXPECT_EQ(closest_match("momentum", keys), std::nullopt);
}

TEST(Strings, WithThousandsGroupsDigits) {
  EXPECT_EQ(with_thousands(6738415616), "6,738,415,616");
  EXPECT_EQ(with_thousands(999), "999");
  EXPECT_EQ(with_thousands(1000), "1,000");
  EXPECT_EQ(with_thousands(-8388608), "-8,388,608");
}

TEST(Strings, HumanCountSaysCountsAsPeopleDo) {
  EXPECT_EQ(human_count(6738415616), "6.74B");
  EXPECT_EQ(human_count(90400), "90.4K");
  EXPECT_EQ(human_count(2.5e6), "2.5M");
  EXPECT_EQ(human_count(999), "999");
  EXPECT_EQ(human_count(0), "0");
}

TEST(Strings, SplitKeepsEmptyParts) {
  EXPECT_EQ(split("a.b.c", '.'), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split("a..b", '.'), (std::vector<std::string>{"a", "", "b"}));
}

TEST(Bytes, ParsesDecimalAndBinaryUnits) {
  EXPECT_EQ(parse_bytes("5GB"), 5'000'000'000);
  EXPECT_EQ(parse_bytes("500MB"), 500'000'000);
  EXPECT_EQ(parse_bytes("2GiB"), 2LL * 1024 * 1024 * 1024);
  EXPECT_EQ(parse_bytes("1.5 KiB"), 1536);
  EXPECT_EQ(parse_bytes("1000000"), 1'000'000);
  EXPECT_EQ(parse_bytes("5e9"), 5'000'000'000);
  EXPECT_EQ(parse_bytes("12B"), 12);
  EXPECT_EQ(parse_bytes("5 bananas"), std::nullopt);
  EXPECT_EQ(parse_bytes("GB"), std::nullopt);
  EXPECT_EQ(parse_bytes("-1GB"), std::nullopt);
}

}  // namespace
}  // namespace cpt
