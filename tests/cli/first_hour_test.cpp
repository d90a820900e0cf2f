// What a new user meets in the first hour, through the real binary: the
// record a run keeps of its config, the start-up summary, elapsed time and
// ETA across a resume, MFU against a stated peak, hints that lead
// somewhere.

#include <gtest/gtest.h>

#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <regex>

#include "support/small_run.h"

namespace fs = std::filesystem;

namespace cpt {
namespace {

using testing::read_file;
using testing::SmallRun;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(FirstHour, ARefusedRunWritesNoConfigAndEachStartKeepsItsOwn) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  const auto first = run.train(out, "--set train.steps=10 --set checkpoint.keep_last=0");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string original = read_file(out + "/config.resolved.yaml");
  EXPECT_TRUE(contains(original, "steps: 10")) << original;

  // Refused twice (a new seq_len, then a new phase in the same directory):
  // nothing of the run's record changes.
  const auto longer = run.train(out, "--set train.steps=20 --set data.seq_len=32");
  EXPECT_EQ(longer.exit_code, 2) << longer.err;
  const auto phase = run.train(out, "--set train.steps=20 --resume none --set model.init_from=" + out +
                                        "/checkpoints/step-00000010");
  EXPECT_EQ(phase.exit_code, 2) << phase.err;
  EXPECT_EQ(read_file(out + "/config.resolved.yaml"), original);
  EXPECT_FALSE(fs::exists(out + "/config.resolved.resume-step-00000010.yaml"));

  // A resume that extends the run keeps its own record, says what changed,
  // and each checkpoint keeps the config it was trained under.
  const auto extended = run.train(out, "--set train.steps=20 --set checkpoint.keep_last=0");
  ASSERT_EQ(extended.exit_code, 0) << extended.err;
  EXPECT_EQ(read_file(out + "/config.resolved.yaml"), original);
  EXPECT_TRUE(contains(read_file(out + "/config.resolved.resume-step-00000010.yaml"), "steps: 20"));
  EXPECT_TRUE(contains(read_file(out + "/checkpoints/step-00000010/trainer_state/config.resolved.yaml"), "steps: 10"));
  EXPECT_TRUE(contains(read_file(out + "/checkpoints/step-00000020/trainer_state/config.resolved.yaml"), "steps: 20"));
  EXPECT_TRUE(contains(extended.err, "changed since step-00000010: train.steps changed from 10 to 20; the schedule "
                                     "re-stretches"))
      << extended.err;
}

TEST(FirstHour, TheStartUpSummarySaysWhereTheWeightsComeFromAndWhatChanged) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  const auto fresh = run.train(out, "--set train.steps=10");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_TRUE(contains(fresh.err, "initialised at random (seed 7)")) << fresh.err;
  EXPECT_TRUE(contains(fresh.err, "data: domain 80%, general 20%; eval sets: general")) << fresh.err;
  EXPECT_TRUE(contains(fresh.err, "plan: 10 steps of 64 tokens (4 sequences of 16 over 1 rank, micro-batch 2)"))
      << fresh.err;

  std::string even_mix = read_file(run.config);
  even_mix.replace(even_mix.find("weight: 0.8"), 11, "weight: 0.5");
  even_mix.replace(even_mix.find("weight: 0.2"), 11, "weight: 0.5");
  const std::string even_config = run.dir.write("even.yaml", even_mix);
  const auto resumed = testing::run_command(fmt::format(
      "{} --config {} --set run.output_dir={} --set train.steps=12 --set optimizer.lr=1e-3", CPT_BINARY, even_config,
      out));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(contains(resumed.err, "resumed from " + out + "/checkpoints/step-00000010 at step 10 (640 tokens "
                                    "trained)"))
      << resumed.err;
  EXPECT_TRUE(contains(resumed.err, "the data mix changed: domain 80%, general 20% before, domain 50%, general 50% now"))
      << resumed.err;
  EXPECT_TRUE(contains(resumed.err, "optimizer.lr changed from 0.003 to 0.001")) << resumed.err;

  // A run directory as init_from is its latest checkpoint, and the record names which.
  const auto phase =
      run.train(run.dir.file("phase2"), "--set train.steps=2 --set schedule.warmup_steps=0 --set model.init_from=" + out);
  ASSERT_EQ(phase.exit_code, 0) << phase.err;
  EXPECT_TRUE(contains(phase.err, "initialised from " + out + "/checkpoints/step-00000012")) << phase.err;
  EXPECT_TRUE(contains(read_file(run.dir.file("phase2/config.resolved.yaml")),
                       "init_from: " + out + "/checkpoints/step-00000012"));
}

TEST(FirstHour, ElapsedTimeAndEtaContinueAcrossAResume) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  const auto killed = run.train(out, "", "CPT_TEST_RAISE_AT_STEP=13:KILL");
  ASSERT_NE(killed.exit_code, 0);
  const double at_checkpoint =
      nlohmann::json::parse(read_file(out + "/checkpoints/step-00000010/trainer_state/state.json"))["elapsed_s"];
  EXPECT_GT(at_checkpoint, 0.0);
  const auto resumed = run.train(out, "--resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto rows = testing::metric_rows(out + "/metrics.jsonl");
  double previous = 0;
  for (const auto& [step, row] : rows) {
    if (!row.contains("elapsed_s")) continue;
    EXPECT_GE(row["elapsed_s"].get<double>(), previous) << "step " << step << ": elapsed time went back";
    previous = row["elapsed_s"];
  }
  // After the resume, elapsed time counts on from the checkpoint's, and the
  // ETA is the steps left at this process's pace.
  for (int64_t step = 11; step <= 20; ++step) {
    const auto& row = rows.at(step);
    const double elapsed = row["elapsed_s"];
    EXPECT_GT(elapsed, at_checkpoint) << "step " << step;
    const double pace = (elapsed - at_checkpoint) / static_cast<double>(step - 10);
    EXPECT_NEAR(row["eta_s"].get<double>(), static_cast<double>(20 - step) * pace, 1e-9 + 1e-9 * elapsed)
        << "step " << step;
  }
}

// MFU is the whole run's model FLOP/s over every rank's peak, and the
// peak is the one the log names.
TEST(FirstHour, MfuIsAgainstTheStatedPeakOfEveryRank) {
  SmallRun run;
  const auto flops_over_mfu = [](const std::string& metrics) {
    const auto rows = testing::metric_rows(metrics);
    const auto& row = rows.at(5);
    return row["tokens_per_s"].get<double>() / row["mfu"].get<double>() * row["peak_tflops"].get<double>() * 1e12;
  };
  const auto one = run.train(run.dir.file("one"), "--set train.steps=5 --set logging.peak_tflops=2");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_TRUE(contains(one.err, "MFU is against 2 TFLOP/s per device × 1 (logging.peak_tflops (fp32))")) << one.err;
  const auto two = run.train_ranks(2, run.dir.file("two"), "--set train.steps=5 --set logging.peak_tflops=2");
  for (const auto& rank : two) ASSERT_EQ(rank.exit_code, 0) << rank.err;
  EXPECT_TRUE(contains(two[0].err, "per device × 2")) << two[0].err;
  // tokens/s × FLOPs per token / MFU is the run's peak: one device's for one rank, two for two.
  EXPECT_NEAR(flops_over_mfu(run.dir.file("one/metrics.jsonl")) / flops_over_mfu(run.dir.file("two/metrics.jsonl")),
              0.5, 1e-9);

  // Measured on this machine with two ranks sharing it: below 100%.
  const auto measured = run.train_ranks(2, run.dir.file("measured"), "--set train.steps=5");
  for (const auto& rank : measured) ASSERT_EQ(rank.exit_code, 0) << rank.err;
  EXPECT_TRUE(contains(measured[0].err, "measured on this cpu: fp32 matmul, best of 8 trials at start-up, ranks in turn"))
      << measured[0].err;
  for (const auto& [step, row] : testing::metric_rows(run.dir.file("measured/metrics.jsonl"))) {
    if (row.contains("mfu")) {
      EXPECT_LT(row["mfu"].get<double>(), 1.0) << "step " << step;
    }
  }

  // A peak set too low is said to be.
  const auto low = run.train(run.dir.file("low"), "--set train.steps=3 --set logging.peak_tflops=1e-9");
  ASSERT_EQ(low.exit_code, 0) << low.err;
  EXPECT_TRUE(contains(low.err, "is above 100%: the peak (logging.peak_tflops (fp32)) is too low")) << low.err;
}

TEST(FirstHour, HintsAfterARefusedResumeLeadToARunThatStarts) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  ASSERT_EQ(run.train(out, "--set train.steps=5").exit_code, 0);
  const auto refused = run.train(out, "--set train.steps=10 --set data.seq_len=32");
  ASSERT_EQ(refused.exit_code, 2);
  // The hint names a new phase in a new directory: following it to the letter works.
  const std::smatch hint = [&] {
    std::smatch m;
    EXPECT_TRUE(std::regex_search(refused.err, m, std::regex(R"(--set model.init_from=(\S+) --set run.output_dir=<new directory>)")))
        << refused.err;
    return m;
  }();
  ASSERT_FALSE(hint.empty());
  const auto followed = run.train(run.dir.file("phase2"),
                                  fmt::format("--set train.steps=3 --set data.seq_len=32 --set model.init_from={}",
                                              hint[1].str()));
  EXPECT_EQ(followed.exit_code, 0) << followed.err;

  // The same phase in the old directory is pointed at a new directory, not back at --resume auto.
  const auto same_dir = run.train(out, "--set train.steps=3 --set data.seq_len=32 --resume none --set model.init_from=" +
                                           hint[1].str());
  EXPECT_EQ(same_dir.exit_code, 2);
  EXPECT_TRUE(contains(same_dir.err, "needs its own directory: --set run.output_dir=<new directory>")) << same_dir.err;
  EXPECT_FALSE(contains(same_dir.err, "--resume auto")) << same_dir.err;
}

TEST(FirstHour, EvalEveryZeroStepsEvaluatesOnlyAtTheEnd) {
  SmallRun run;
  const auto result = run.train(run.dir.file("out"), "--set train.steps=4 --set eval.every_steps=0");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto rows = testing::metric_rows(run.dir.file("out/metrics.jsonl"));
  EXPECT_EQ(rows.count(0), 0u) << "no step-0 evaluation";
  EXPECT_TRUE(rows.at(4).contains("eval/general/loss"));
  for (int64_t step = 1; step < 4; ++step) EXPECT_FALSE(rows.at(step).contains("eval/general/loss")) << step;
}

// `cpt-train eval` of a checkpoint, with the run's config as its defaults,
// gives the numbers training logged for it; a run directory or
// checkpoints/latest addresses the latest checkpoint.
TEST(FirstHour, EvalOfACheckpointReproducesTheInTrainingEval) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  ASSERT_EQ(run.train(out, "--set train.steps=10").exit_code, 0);
  const double logged = testing::metric_rows(out + "/metrics.jsonl").at(10)["eval/general/loss"];
  for (const std::string& address : {out, out + "/checkpoints/latest", out + "/checkpoints/step-00000010"}) {
    const auto eval = testing::run_command(fmt::format("{} eval --checkpoint {} --json", CPT_BINARY, address));
    ASSERT_EQ(eval.exit_code, 0) << eval.err;
    const auto json = nlohmann::json::parse(eval.out);
    EXPECT_EQ(json["checkpoint"], out + "/checkpoints/step-00000010") << address;
    ASSERT_EQ(json["sets"].size(), 1u);
    EXPECT_EQ(json["sets"][0]["name"], "general");
    EXPECT_EQ(json["sets"][0]["windows"], 4) << "max_batches 2 of micro-batch 2, as in training";
    EXPECT_EQ(json["sets"][0]["loss"].get<double>(), logged) << address;
  }
  // Several shards in one call, each under its name, with --max-batches.
  const auto two = testing::run_command(fmt::format("{} eval --checkpoint {} --prefix held={} --prefix {} --max-batches 1",
                                                    CPT_BINARY, out, run.dir.file("heldout"), run.dir.file("domain")));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_TRUE(contains(two.out, "held: loss")) << two.out;
  EXPECT_TRUE(contains(two.out, "domain: loss")) << two.out;
  EXPECT_TRUE(contains(two.out, "over 32 tokens (2 windows of 16)")) << two.out;
  // And the same run config given explicitly, with an override.
  const auto explicit_config = testing::run_command(fmt::format("{} eval --checkpoint {} --config {} --set data.eval.0.max_batches=1 --json",
                                                                CPT_BINARY, out, run.config));
  ASSERT_EQ(explicit_config.exit_code, 0) << explicit_config.err;
  EXPECT_EQ(nlohmann::json::parse(explicit_config.out)["windows"], 2);
}

}  // namespace
}  // namespace cpt
