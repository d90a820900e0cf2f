#include "cpt/io/run_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cpt/common/error.h"
#include "support/temp_dir.h"

namespace cpt {
namespace {

TEST(RunLock, HoldsTheDirectoryAndReleasesItAtTheEnd) {
  testing::TempDir dir;
  const std::string out = dir.file("run");
  {
    const io::RunLock lock(out);
    const auto holder = nlohmann::json::parse(testing::read_file(lock.path()));
    EXPECT_EQ(holder["pid"], ::getpid());
    try {
      const io::RunLock second(out);  // this process is alive: a live holder
      FAIL() << "two locks on one directory";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("is in use by another run"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(lock.path()), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(std::filesystem::exists(out + "/" + io::RunLock::kFileName));
}

TEST(RunLock, ADeadHolderOnThisHostOrAGarbledFileIsStale) {
  testing::TempDir dir;
  const std::string out = dir.file("run");
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  // A pid far above pid_max: no such process.
  dir.write("run/.cpt-train.lock", nlohmann::json({{"host", host}, {"pid", 1 << 30}}).dump());
  EXPECT_NO_THROW(io::RunLock{out});
  dir.write("run/.cpt-train.lock", "not json");
  EXPECT_NO_THROW(io::RunLock{out});
}

}  // namespace
}  // namespace cpt
