// Every input a fuzzer ever broke a parser with stays a test: each file under
// tests/fuzz/regressions/<target>/ goes through its target again (here
// without sanitizers; scripts/fuzz.sh replays them under ASan and UBSan).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz/targets.h"

namespace fs = std::filesystem;

namespace cpt {
namespace {

TEST(FuzzRegressions, EveryKeptInputIsRefusedCleanly) {
  const fs::path root = fs::path(CPT_SOURCE_DIR) / "tests" / "fuzz" / "regressions";
  int replayed = 0;
  for (const auto& folder : fs::directory_iterator(root)) {
    const fuzz::Target& target = fuzz::target(folder.path().filename().string());  // a stray folder fails here
    for (const auto& file : fs::directory_iterator(folder.path())) {
      std::ifstream in(file.path(), std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      const std::string input = bytes.str();
      SCOPED_TRACE(file.path().string());
      EXPECT_NO_THROW(target.run(reinterpret_cast<const uint8_t*>(input.data()), input.size()));
      ++replayed;
    }
  }
  EXPECT_GT(replayed, 0) << "no regression inputs under " << root;
}

}  // namespace
}  // namespace cpt
