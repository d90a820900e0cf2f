#include "cpt/train/schedule.h"

#include <gtest/gtest.h>

namespace cpt::train {
namespace {

double lr(const std::string& decay, int64_t step, int64_t warmup = 10, int64_t total = 110) {
  OptimizerConfig o;
  o.lr = 1.0;
  ScheduleConfig s;
  s.decay = decay;
  s.warmup_steps = warmup;
  s.min_lr_ratio = 0.1;
  s.wsd_decay_ratio = 0.2;
  return learning_rate(o, s, step, total);
}

TEST(Schedule, WarmsUpLinearlyFromZero) {
  EXPECT_DOUBLE_EQ(lr("cosine", 1), 0.1);
  EXPECT_DOUBLE_EQ(lr("cosine", 5), 0.5);
  EXPECT_DOUBLE_EQ(lr("cosine", 10), 1.0);
}

TEST(Schedule, CosineEndsAtTheFloorThroughItsMidpoint) {
  EXPECT_NEAR(lr("cosine", 60), 0.55, 1e-12);   // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(lr("cosine", 110), 0.1, 1e-12);
  EXPECT_NEAR(lr("cosine", 500), 0.1, 1e-12);   // past the end stays at the floor
}

TEST(Schedule, LinearConstantAndWsd) {
  EXPECT_NEAR(lr("linear", 60), 0.55, 1e-12);
  EXPECT_NEAR(lr("linear", 110), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(lr("constant", 100), 1.0);
  EXPECT_DOUBLE_EQ(lr("wsd", 90), 1.0);          // stable until 80% of the decay phase
  EXPECT_NEAR(lr("wsd", 100), 0.55, 1e-12);      // halfway through the last 20%
  EXPECT_NEAR(lr("wsd", 110), 0.1, 1e-12);
}

TEST(Schedule, NoWarmupStartsAtThePeak) { EXPECT_NEAR(lr("cosine", 1, 0, 100), 1.0, 1e-3); }

}  // namespace
}  // namespace cpt::train
