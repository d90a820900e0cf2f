#include "cpt/dist/env.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "cpt/common/error.h"

namespace cpt::dist {
namespace {

class LaunchEnvTest : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
  void TearDown() override { clear(); }
  static void clear() {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}) {
      ::unsetenv(name);
    }
  }
};

TEST_F(LaunchEnvTest, NoLauncherMeansOneProcess) {
  const LaunchEnv env = launch_env_from_environment();
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.launcher, "none");
}

TEST_F(LaunchEnvTest, ReadsTorchrun) {
  ::setenv("RANK", "5", 1);
  ::setenv("WORLD_SIZE", "8", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  const LaunchEnv env = launch_env_from_environment();
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.launcher, "torchrun");
}

TEST_F(LaunchEnvTest, ReadsSlurmWhenTorchrunIsAbsent) {
  ::setenv("SLURM_PROCID", "3", 1);
  ::setenv("SLURM_NTASKS", "16", 1);
  ::setenv("SLURM_LOCALID", "3", 1);
  const LaunchEnv env = launch_env_from_environment();
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 16);
  EXPECT_EQ(env.launcher, "slurm");
}

TEST_F(LaunchEnvTest, RejectsNonsense) {
  ::setenv("RANK", "two", 1);
  EXPECT_THROW(launch_env_from_environment(), InputError);
  ::setenv("RANK", "4", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  EXPECT_THROW(launch_env_from_environment(), InputError);
}

}  // namespace
}  // namespace cpt::dist
