#include "cpt/data/blender.h"

#include <gtest/gtest.h>

#include <cmath>

namespace cpt::data {
namespace {

// Every prefix of the stream stays within one sample of weight × length.
void expect_within_one_sample(std::vector<double> weights, int64_t samples) {
  std::vector<std::string> names;
  for (size_t i = 0; i < weights.size(); ++i) names.push_back("s" + std::to_string(i));
  Blender blender(names, weights);
  double total = 0;
  for (double w : weights) total += w;
  std::vector<int64_t> counts(weights.size(), 0);
  double worst = 0;
  for (int64_t i = 1; i <= samples; ++i) {
    const Blender::Pick pick = blender.next();
    EXPECT_EQ(pick.sample, counts[static_cast<size_t>(pick.source)]);
    ++counts[static_cast<size_t>(pick.source)];
    for (size_t s = 0; s < weights.size(); ++s) {
      worst = std::max(worst, std::fabs(static_cast<double>(counts[s]) - weights[s] / total * static_cast<double>(i)));
    }
  }
  EXPECT_LE(worst, 1.0) << "worst deviation over " << samples << " samples";
}

TEST(Blender, EveryPrefixIsWithinOneSampleOfTheWeights) {
  expect_within_one_sample({0.9, 0.1}, 100'000);
  expect_within_one_sample({0.001, 0.999}, 100'000);
  expect_within_one_sample({0.5, 0.3, 0.2}, 100'000);
  expect_within_one_sample({3, 1, 1, 0.05}, 100'000);
}

TEST(Blender, StateRoundTripsThroughJson) {
  Blender blender({"a", "b"}, {0.7, 0.3});
  for (int i = 0; i < 123; ++i) blender.next();
  const BlendState state = BlendState::from_json(blender.state().to_json());
  EXPECT_EQ(state.samples, 123);
  EXPECT_EQ(state.served.at("a") + state.served.at("b"), 123);
  Blender resumed({"a", "b"}, {0.7, 0.3});
  resumed.restore(state);
  for (int i = 0; i < 1000; ++i) {
    const auto x = blender.next(), y = resumed.next();
    ASSERT_EQ(x.source, y.source);
    ASSERT_EQ(x.sample, y.sample);
  }
}

TEST(Blender, NewWeightsApplyExactlyFromTheResumePoint) {
  Blender before({"medical", "general"}, {0.9, 0.1});
  for (int i = 0; i < 1001; ++i) before.next();
  const BlendState saved = before.state();
  Blender after({"medical", "general", "code"}, {0.5, 0.25, 0.25});
  after.restore(saved);
  std::vector<int64_t> counts(3, 0);
  std::vector<int64_t> next_sample = {saved.served.at("medical"), saved.served.at("general"), 0};
  for (int i = 1; i <= 10'000; ++i) {
    const auto pick = after.next();
    // Each source continues at its own cursor: no sample twice, none skipped.
    ASSERT_EQ(pick.sample, next_sample[static_cast<size_t>(pick.source)]++);
    ++counts[static_cast<size_t>(pick.source)];
    ASSERT_LE(std::fabs(static_cast<double>(counts[0]) - 0.5 * i), 1.0);
    ASSERT_LE(std::fabs(static_cast<double>(counts[2]) - 0.25 * i), 1.0);
  }
}

TEST(Blender, ARemovedSourceKeepsItsCursorForLater) {
  Blender three({"a", "b", "c"}, {1, 1, 1});
  for (int i = 0; i < 30; ++i) three.next();
  Blender two({"a", "b"}, {1, 1});
  two.restore(three.state());
  for (int i = 0; i < 10; ++i) two.next();
  Blender back({"a", "b", "c"}, {1, 1, 1});
  back.restore(two.state());
  EXPECT_EQ(back.state().served.at("c"), 10);
  EXPECT_EQ(back.state().samples, 40);
}

TEST(Blender, RejectsMalformedState) {
  EXPECT_THROW(BlendState::from_json(nlohmann::json{{"samples", "many"}}), std::exception);
}

}  // namespace
}  // namespace cpt::data
