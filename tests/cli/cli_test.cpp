// The binary as users and scripts call it: flags, exit codes, one-line errors.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt {
namespace {

using testing::CommandResult;
using testing::run_command;

const std::string kBinary = CPT_BINARY;
const std::string kConfigs = std::string(CPT_SOURCE_DIR) + "/configs/";

CommandResult cpt_train(const std::string& args) { return run_command(kBinary + " " + args); }

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

TEST(Cli, MedicalDryRunReportsTheSevenBillionPlan) {
  const CommandResult r = cpt_train("--config " + kConfigs + "medical.yaml --dry-run --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["plan"]["parameters"], 6'738'415'616);
  EXPECT_EQ(json["plan"]["tokens_per_step"], 8'388'608);
  EXPECT_EQ(json["config"]["optimizer"]["lr"], 1.5e-5);
  // Neither the base model nor the shards exist here: listed, not fatal.
  EXPECT_FALSE(json["warnings"].empty());
  EXPECT_NE(r.err.find("[warning]"), std::string::npos);
}

TEST(Cli, TrainSubcommandIsTheSameAsTheDefault) {
  const CommandResult a = cpt_train("--config " + kConfigs + "tiny.yaml --dry-run --json");
  const CommandResult b = cpt_train("train --config " + kConfigs + "tiny.yaml --dry-run --json");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(Cli, DryRunTextShowsResolvedConfigAndPlan) {
  const CommandResult r = cpt_train("--config " + kConfigs + "tiny.yaml --dry-run --set optimizer.lr=2e-3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lr: 0.002"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokens per step"), std::string::npos);
  EXPECT_NE(r.out.find("memory per rank"), std::string::npos);
}

TEST(Cli, WorldSizeFlagAndEnvironmentPlanPerRank) {
  const CommandResult flag =
      cpt_train("--config " + kConfigs + "medical.yaml --dry-run --json --world-size 64 --log-level error");
  ASSERT_EQ(flag.exit_code, 0) << flag.err;
  EXPECT_EQ(nlohmann::json::parse(flag.out)["plan"]["micro_batches_per_rank"], 32);
  const CommandResult env =
      run_command("WORLD_SIZE=64 RANK=0 " + kBinary + " --config " + kConfigs + "medical.yaml --dry-run --json");
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(nlohmann::json::parse(env.out)["plan"]["world_size"], 64);
}

TEST(Cli, MisspeltKeyExitsTwoWithOneLine) {
  testing::TempDir dir;
  const std::string path = dir.write("bad.yaml", "data:\n  sources: [{name: a, prefix: p}]\noptimizer:\n  lrr: 1e-5\n");
  const CommandResult r = cpt_train("--config " + path + " --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(path + ":4: unknown key 'optimizer.lrr'; did you mean 'lr'?"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(Cli, BadValueThroughSetExitsTwo) {
  const CommandResult r = cpt_train("--config " + kConfigs + "tiny.yaml --dry-run --set data.sources.0.weight=-1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--set data.sources.0.weight=-1: data.sources[0].weight: -1 is invalid"), std::string::npos)
      << r.err;
}

TEST(Cli, RealRunWritesTheResolvedConfigThenSaysTheTrainerIsNotBuilt) {
  testing::TempDir dir;
  dir.write("shards/a.bin", "");
  dir.write("shards/a.idx", "");
  const std::string path = dir.write("run.yaml", "run: {output_dir: " + dir.file("out") + "}\ndata:\n  sources: [{name: a, prefix: " +
                                                     dir.file("shards/a") + "}]\n");
  const CommandResult r = cpt_train("--config " + path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("training is not built yet"), std::string::npos) << r.err;
  const std::string resolved = testing::read_file(dir.file("out/config.resolved.yaml"));
  EXPECT_NE(resolved.find("hidden_size: 256"), std::string::npos) << resolved;
}

TEST(Cli, RealRunRefusesMissingInputs) {
  const CommandResult r = cpt_train("--config " + kConfigs + "medical.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("model.init_from '/models/Llama-2-7b-hf' does not exist yet"), std::string::npos) << r.err;
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* sub : {"", "train", "tokenize", "data", "data inspect", "data preview", "eval", "generate", "merge",
                          "version"}) {
    const CommandResult r = cpt_train(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
  }
}

TEST(Cli, ModulesNotYetBuiltExitTwo) {
  testing::TempDir dir;
  const std::string file = dir.write("x.txt", "x");
  for (const std::string& args :
       {"tokenize --tokenizer " + file + " --input " + file + " --output-prefix " + dir.file("out"),
        "data inspect --prefix " + file, "data preview --config " + kConfigs + "tiny.yaml",
        "eval --checkpoint " + dir.path() + " --prefix " + file, "generate --checkpoint " + dir.path() + " --prompt hi",
        "merge --config " + file + " --output " + dir.file("merged")}) {
    const CommandResult r = cpt_train(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.err.find("is not built yet"), std::string::npos) << args << ": " << r.err;
  }
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(cpt_train("").exit_code, 2);
  EXPECT_EQ(cpt_train("frobnicate").exit_code, 2);
  EXPECT_EQ(cpt_train("--config /nonexistent.yaml").exit_code, 2);
  EXPECT_EQ(cpt_train("tokenize --input x").exit_code, 2);
  const CommandResult level = cpt_train("version --log-level loud");
  EXPECT_EQ(level.exit_code, 2);
  EXPECT_NE(level.err.find("--log-level 'loud' is not a level"), std::string::npos) << level.err;
}

TEST(Cli, VersionNamesLibTorch) {
  const CommandResult r = cpt_train("version --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["version"], "0.1.0");
  EXPECT_FALSE(json["libtorch"].get<std::string>().empty());
}

TEST(Cli, LogLinesCarryTheRank) {
  const CommandResult r = run_command("RANK=1 WORLD_SIZE=2 " + kBinary + " --config " + kConfigs + "tiny.yaml --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[rank 1]"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cpt
