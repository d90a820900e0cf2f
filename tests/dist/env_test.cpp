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
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                             "MASTER_ADDR", "MASTER_PORT", "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_JOB_ID"}) {
      ::unsetenv(name);
    }
  }
};

TEST_F(LaunchEnvTest, NoLauncherMeansOneProcess) {
  const LaunchEnv env = launch_env_from_environment();
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.launcher, "none");
  EXPECT_EQ(env.master_addr, "127.0.0.1");
}

TEST_F(LaunchEnvTest, SlurmWithoutAHostListNeedsMasterAddr) {
  ::setenv("SLURM_PROCID", "0", 1);
  ::setenv("SLURM_NTASKS", "2", 1);
  try {
    check_rendezvous(launch_env_from_environment());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "SLURM_JOB_NODELIST is not set; set MASTER_ADDR to rank 0's host");
  }
}

TEST_F(LaunchEnvTest, ReadsTorchrun) {
  ::setenv("RANK", "5", 1);
  ::setenv("WORLD_SIZE", "8", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("MASTER_ADDR", "10.1.2.3", 1);
  ::setenv("MASTER_PORT", "29501", 1);
  const LaunchEnv env = launch_env_from_environment();
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.launcher, "torchrun");
  EXPECT_EQ(env.master_addr, "10.1.2.3");
  EXPECT_EQ(env.master_port, 29501);
}

TEST_F(LaunchEnvTest, ReadsSlurmWhenTorchrunIsAbsent) {
  ::setenv("SLURM_PROCID", "3", 1);
  ::setenv("SLURM_NTASKS", "16", 1);
  ::setenv("SLURM_LOCALID", "3", 1);
  ::setenv("SLURM_NODELIST", "cn[100-103]", 1);
  const LaunchEnv env = launch_env_from_environment();
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 16);
  EXPECT_EQ(env.launcher, "slurm");
  EXPECT_EQ(env.master_addr, "cn100");
  EXPECT_EQ(env.master_port, 29500);
}

TEST_F(LaunchEnvTest, RejectsNonsense) {
  ::setenv("RANK", "two", 1);
  EXPECT_THROW(launch_env_from_environment(), InputError);
  ::setenv("RANK", "4", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  EXPECT_THROW(launch_env_from_environment(), InputError);
}

TEST_F(LaunchEnvTest, SlurmRendezvousIsTheFirstHostAndAPortFromTheJobId) {
  ::setenv("SLURM_PROCID", "3", 1);
  ::setenv("SLURM_NTASKS", "16", 1);
  ::setenv("SLURM_JOB_NODELIST", "gpu-[07-08,11],login1", 1);
  ::setenv("SLURM_JOB_ID", "4242123", 1);
  LaunchEnv env = launch_env_from_environment();
  EXPECT_EQ(env.master_addr, "gpu-07");
  EXPECT_EQ(env.master_port, 20000 + 4242123 % 20000);
  EXPECT_EQ(launch_env_from_environment(31000).master_port, 31000);  // the config's port wins over the derived one
  ::setenv("MASTER_ADDR", "head", 1);
  ::setenv("MASTER_PORT", "12345", 1);
  env = launch_env_from_environment(31000);
  EXPECT_EQ(env.master_addr, "head");
  EXPECT_EQ(env.master_port, 12345);
}

TEST_F(LaunchEnvTest, MultiProcessTorchrunNeedsMasterAddrAndPort) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "2", 1);
  EXPECT_NO_THROW(launch_env_from_environment()) << "rank and size are enough for logging and planning";
  try {
    check_rendezvous(launch_env_from_environment());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "MASTER_ADDR is not set; a multi-process torchrun-style launch needs MASTER_ADDR and MASTER_PORT");
  }
  ::setenv("MASTER_ADDR", "10.0.0.1", 1);
  ::setenv("MASTER_PORT", "99999", 1);
  try {
    launch_env_from_environment();
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "environment variable MASTER_PORT='99999' is not a valid number (1..65535)");
  }
  ::unsetenv("MASTER_PORT");
  try {
    check_rendezvous(launch_env_from_environment());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "MASTER_PORT is not set; a multi-process torchrun-style launch needs MASTER_ADDR and MASTER_PORT");
  }
  ::setenv("MASTER_PORT", "29400", 1);
  const LaunchEnv env = launch_env_from_environment();
  EXPECT_NO_THROW(check_rendezvous(env));
  EXPECT_EQ(env.master_addr, "10.0.0.1");
  EXPECT_EQ(env.master_port, 29400);
}

struct NodelistCase {
  const char* list;
  std::vector<std::string> hosts;
};

TEST(SlurmNodelist, ExpandsEveryDocumentedForm) {
  const std::vector<NodelistCase> table = {
      {"node01", {"node01"}},
      {"n1.cluster.org", {"n1.cluster.org"}},
      {"gpu-[01-04,07]", {"gpu-01", "gpu-02", "gpu-03", "gpu-04", "gpu-07"}},
      {"node[9-11]", {"node9", "node10", "node11"}},
      {"node[098-101]", {"node098", "node099", "node100", "node101"}},
      {"a[1-2],b3,c[5,7]", {"a1", "a2", "b3", "c5", "c7"}},
      {"tux[2,4-5]-ib", {"tux2-ib", "tux4-ib", "tux5-ib"}},
      {"rack[1-2]-n[01-02]", {"rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"}},
      {"x[3]", {"x3"}},
      {"login1,gpu-[1-2]", {"login1", "gpu-1", "gpu-2"}},
  };
  for (const auto& row : table) EXPECT_EQ(expand_slurm_nodelist(row.list), row.hosts) << row.list;
}

TEST(SlurmNodelist, MalformedListsNameTheListAndTheFault) {
  const std::vector<std::pair<const char*, const char*>> table = {
      {"", "SLURM host list '': it is empty"},
      {"gpu-[01-04", "SLURM host list 'gpu-[01-04': a '[' is never closed"},
      {"gpu-01]", "SLURM host list 'gpu-01]': a ']' has no '['"},
      {"gpu-[04-01]", "SLURM host list 'gpu-[04-01]': range '04-01' runs backwards"},
      {"gpu-[a-b]", "SLURM host list 'gpu-[a-b]': '[a-b]' is not a list of numbers"},
      {"gpu-[1,,2]", "SLURM host list 'gpu-[1,,2]': '[1,,2]' is not a list of numbers"},
      {"a,,b", "SLURM host list 'a,,b': it has an empty host name"},
      {"a[[1]]", "SLURM host list 'a[[1]]': brackets are nested"},
  };
  for (const auto& [list, message] : table) {
    try {
      expand_slurm_nodelist(list);
      ADD_FAILURE() << "no error for " << list;
    } catch (const InputError& e) {
      EXPECT_STREQ(e.what(), message);
    }
  }
}

}  // namespace
}  // namespace cpt::dist
