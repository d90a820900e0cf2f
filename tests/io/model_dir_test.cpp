#include "cpt/io/model_dir.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "cpt/common/error.h"
#include "support/temp_dir.h"

namespace cpt::io {
namespace {

// A run directory as training leaves it: two checkpoints, `latest` naming the second.
struct RunDirectory {
  testing::TempDir dir;
  std::string root = dir.file("run");
  RunDirectory() {
    for (const char* step : {"step-00000010", "step-00000020"}) {
      std::filesystem::create_directories(root + "/checkpoints/" + step);
      dir.write(std::string("run/checkpoints/") + step + "/config.json", "{}");
    }
    dir.write("run/checkpoints/latest", "step-00000020\n");
  }
};

TEST(ModelDir, ARunItsCheckpointsAndLatestMeanTheLatestCheckpoint) {
  RunDirectory run;
  const std::string latest = run.root + "/checkpoints/step-00000020";
  EXPECT_EQ(resolve_model_dir(run.root), latest);
  EXPECT_EQ(resolve_model_dir(run.root + "/checkpoints"), latest);
  EXPECT_EQ(resolve_model_dir(run.root + "/checkpoints/latest"), latest);
  // A model directory is itself, and so is a path that is none of these (its reader says what is wrong).
  EXPECT_EQ(resolve_model_dir(run.root + "/checkpoints/step-00000010"), run.root + "/checkpoints/step-00000010");
  EXPECT_EQ(resolve_model_dir(run.dir.file("nothing")), run.dir.file("nothing"));
}

TEST(ModelDir, ALatestNamingAMissingCheckpointIsAnError) {
  RunDirectory run;
  run.dir.write("run/checkpoints/latest", "step-00000030\n");
  try {
    resolve_model_dir(run.root);
    FAIL() << "a dangling latest was followed";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "'" + run.root + "/checkpoints/latest' names checkpoint 'step-00000030', which is not there");
  }
}

}  // namespace
}  // namespace cpt::io
