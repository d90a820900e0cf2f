// --set KEY=VALUE: typed, repeatable, lists as [a, b], list entries by index.

#include <gtest/gtest.h>

#include "cpt/common/error.h"
#include "cpt/config/config.h"

namespace cpt::config {
namespace {

const char* kBase = R"(data:
  sources:
    - {name: medical, prefix: data/med, weight: 0.9}
    - {name: general, prefix: data/gen, weight: 0.1}
optimizer:
  lr: 1.0e-4
)";

Config with(std::vector<std::string> overrides) {
  LoadOptions options;
  options.overrides = std::move(overrides);
  return load_text(kBase, "base.yaml", options).config;
}

TEST(Overrides, ReplaceScalarsWithTypedValues) {
  const Config c = with({"optimizer.lr=3e-5", "train.activation_checkpointing=full", "train.steps=7", "schedule.warmup_steps=2",
                         "run.name=medical-v2", "model.preset=llama2-13b"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 3e-5);
  EXPECT_EQ(c.train.activation_checkpointing, "full");
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_EQ(c.schedule.warmup_steps, 2);
  EXPECT_EQ(c.run.name, "medical-v2");
  EXPECT_EQ(c.model.shape.hidden_size, 5120);
}

TEST(Overrides, ListsAreWrittenInFlowStyle) {
  const Config c = with({"optimizer.betas=[0.8,0.99]"});
  EXPECT_DOUBLE_EQ(c.optimizer.betas[0], 0.8);
  EXPECT_DOUBLE_EQ(c.optimizer.betas[1], 0.99);
}

TEST(Overrides, NumericPartsIndexIntoLists) {
  const Config c = with({"data.sources.1.weight=0.25", "data.sources.0.prefix=/fast/med"});
  EXPECT_DOUBLE_EQ(c.data.sources[1].weight, 0.25);
  EXPECT_EQ(c.data.sources[0].prefix, "/fast/med");
  EXPECT_DOUBLE_EQ(c.data.sources[0].weight, 0.9);
}

TEST(Overrides, CreateSectionsTheFileDoesNotHave) {
  const Config c = with({"schedule.decay=wsd", "distributed.timeout_s=30"});
  EXPECT_EQ(c.schedule.decay, "wsd");
  EXPECT_EQ(c.distributed.timeout_s, 30);
}

TEST(Overrides, LaterOnesWin) {
  EXPECT_DOUBLE_EQ(with({"optimizer.lr=1e-3", "optimizer.lr=2e-3"}).optimizer.lr, 2e-3);
}

TEST(Overrides, CanReplaceAWholeList) {
  const Config c = with({"data.sources=[{name: only, prefix: data/only}]"});
  ASSERT_EQ(c.data.sources.size(), 1u);
  EXPECT_EQ(c.data.sources[0].name, "only");
}

TEST(Overrides, InvalidYamlValueIsNamed) {
  try {
    with({"optimizer.betas=[0.9"});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--set optimizer.betas=[0.9: the value is not valid YAML", 0), 0u)
        << e.what();
  }
}

// A check across keys blamed on the file's line would hide that a flag
// changed the other side of the comparison.
TEST(Overrides, ACrossKeyErrorNamesTheFlagThatChangedTheOtherKey) {
  const std::string yaml = std::string(kBase) + "train: {steps: 100}\nschedule:\n  warmup_steps: 20\n";
  LoadOptions options;
  options.overrides = {"train.steps=10"};
  try {
    load_text(yaml, "base.yaml", options);
    FAIL() << "warmup beyond the steps was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "base.yaml:9: schedule.warmup_steps: 20 is more than train.steps 10; warmup must end before training "
              "does (train.steps is from --set train.steps=10)");
  }
  // Without the flag, the file's lines are the whole story.
  try {
    load_text(std::string(kBase) + "train: {steps: 10}\nschedule:\n  warmup_steps: 20\n", "base.yaml", {});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).find("--set"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cpt::config
