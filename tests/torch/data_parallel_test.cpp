// Data-parallel training through the real binary: 1, 2 and 4 ranks of one
// job over c10d's Gloo on the loopback, as torchrun would launch them.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <regex>

#include "support/run_command.h"
#include "support/small_run.h"

namespace cpt::train {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::SmallRun;

void expect_exit(const std::vector<CommandResult>& ranks, int code) {
  for (size_t r = 0; r < ranks.size(); ++r) EXPECT_EQ(ranks[r].exit_code, code) << "rank " << r << ": " << ranks[r].err;
}

// Loss, gradient norm and eval loss agree step by step to `relative`.
void expect_same_curve(const std::string& want_metrics, const std::string& got_metrics, int64_t first_step,
                       double relative = 1e-5) {
  const auto want = testing::metric_rows(want_metrics), got = testing::metric_rows(got_metrics);
  int compared = 0;
  for (const auto& [step, row] : want) {
    if (step < first_step) continue;
    ASSERT_TRUE(got.count(step)) << "no metrics row for step " << step << " in " << got_metrics;
    for (const char* key : {"loss", "grad_norm", "eval/general/loss"}) {
      if (!row.contains(key)) continue;
      const double a = row[key], b = got.at(step).at(key);
      EXPECT_NEAR(b, a, relative * std::abs(a)) << key << " at step " << step;
      ++compared;
    }
  }
  EXPECT_GE(compared, 10) << "too few rows compared";
}

void copy_checkpoint(const std::string& from_run, const std::string& step_dir, const std::string& to_run) {
  fs::create_directories(fs::path(to_run) / "checkpoints");
  fs::copy(fs::path(from_run) / "checkpoints" / step_dir, fs::path(to_run) / "checkpoints" / step_dir,
           fs::copy_options::recursive);
  testing::TempDir::write_to(fs::path(to_run) / "checkpoints" / "latest", step_dir + "\n");
}

// One rank does 2 micro-batches of 2 per step; two ranks one each. Tiny
// buckets make many all-reduces race the backward (and many reduce-scatter
// chunks). In fp32 the curves agree to 1e-5. With bf16 parameters the one
// rank sums its two micro-batches' gradients in bf16 while two ranks sum
// theirs in fp32, so the curves agree to bf16's rounding, kBf16Tolerance.
constexpr double kBf16Tolerance = 2e-2;

TEST(DataParallel, TwoRanksMatchOneRankStepByStep) {
  SmallRun run;
  for (const char* precision : {"fp32", "bf16"}) for (const char* zero1 : {"false", "true"}) {
    const std::string one = run.dir.file(fmt::format("one-{}-{}", precision, zero1)),
                      two = run.dir.file(fmt::format("two-{}-{}", precision, zero1));
    const std::string flags = fmt::format("--set distributed.zero1={} --set distributed.bucket_mb=0.01 "
                                          "--set train.precision={}", zero1, precision);
    const auto single = run.train(one, flags);
    ASSERT_EQ(single.exit_code, 0) << single.err;
    const auto ranks = run.train_ranks(2, two, flags);
    expect_exit(ranks, 0);
    expect_same_curve(one + "/metrics.jsonl", two + "/metrics.jsonl", 0,
                      std::string(precision) == "bf16" ? kBf16Tolerance : 1e-5);
    const fs::path state = fs::path(two) / "checkpoints" / "step-00000020" / "trainer_state";
    if (std::string(zero1) == "true") {
      EXPECT_TRUE(fs::exists(state / "optimizer-00000-of-00002.safetensors"));
      EXPECT_TRUE(fs::exists(state / "optimizer-00001-of-00002.safetensors"));
      EXPECT_LT(fs::file_size(state / "optimizer-00000-of-00002.safetensors"),
                fs::file_size(fs::path(one) / "checkpoints" / "step-00000020" / "trainer_state" / "optimizer.safetensors"))
          << "each rank holds part of the moments";
    } else {
      EXPECT_TRUE(fs::exists(state / "optimizer.safetensors"));
    }
    EXPECT_FALSE(testing::read_file(two + "/metrics.jsonl").empty());
    EXPECT_EQ(ranks[1].err.find("step 1/20"), std::string::npos) << "only rank 0 logs the steps";
    EXPECT_NE(ranks[0].err.find("[rank 0]"), std::string::npos);
  }
}

TEST(DataParallel, BucketsStartWhileBackwardRuns) {
  SmallRun run;
  const auto ranks = run.train_ranks(2, run.dir.file("out"),
                                     "--set train.steps=3 --set distributed.zero1=false --set distributed.bucket_mb=0.01 "
                                     "--log-level debug");
  expect_exit(ranks, 0);
  // Every parameter has a gradient, so the hooks start every bucket before
  // backward returns; the small buckets make many of them.
  const std::regex line(R"(gradient all-reduce: (\d+) of (\d+) buckets started during backward)");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(ranks[1].err, match, line)) << ranks[1].err;
  EXPECT_GE(std::stoi(match[2]), 5);
  EXPECT_EQ(match[1], match[2]);

  // ZeRO-1 sums the gradients with the reduce-scatter collective instead.
  const auto sharded = run.train_ranks(2, run.dir.file("zero1"),
                                       "--set train.steps=3 --set distributed.zero1=true --log-level debug");
  expect_exit(sharded, 0);
  EXPECT_NE(sharded[1].err.find("gradient reduce-scatter: one over the flat buffer after backward (ZeRO-1)"),
            std::string::npos) << sharded[1].err;
}

TEST(DataParallel, LaunchedBySrunVariables) {
  SmallRun run;
  // Rendezvous at the first host of SLURM_JOB_NODELIST, port from SLURM_JOB_ID.
  const auto ranks =
      run.train_ranks(2, run.dir.file("slurm"), "--set train.steps=4", {}, testing::Launcher::kSlurm);
  expect_exit(ranks, 0);
  EXPECT_NE(ranks[0].err.find("joining 2 ranks through localhost:"), std::string::npos) << ranks[0].err;
  EXPECT_NE(ranks[1].err.find("[rank 1]"), std::string::npos) << ranks[1].err;
  EXPECT_EQ(testing::metric_rows(run.dir.file("slurm/metrics.jsonl")).rbegin()->first, 4);
}

TEST(DataParallel, ActivationCheckpointingAndAccumulationAcrossRanks) {
  SmallRun run;
  // 4 micro-batches of 1 on one rank = 2 ranks x 2; the gradient hooks fire
  // inside the recomputed blocks' backward.
  const std::string flags = "--set train.micro_batch_size=1 --set train.activation_checkpointing=full";
  const auto single = run.train(run.dir.file("one"), flags);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  expect_exit(run.train_ranks(2, run.dir.file("two"), flags + " --set distributed.bucket_mb=0.02"), 0);
  expect_same_curve(run.dir.file("one/metrics.jsonl"), run.dir.file("two/metrics.jsonl"), 0);
}

TEST(DataParallel, SigtermToOneRankSavesAndAllExit75ThenResume) {
  SmallRun run;
  const std::string straight = run.dir.file("straight"), stopped = run.dir.file("stopped");
  expect_exit(run.train_ranks(2, straight), 0);
  const auto ranks = run.train_ranks(2, stopped, "", {"", "CPT_TEST_RAISE_AT_STEP=7:TERM"});
  expect_exit(ranks, 75);
  // The ranks learn of the signal through step 8's statistics collective
  // (no extra collective per step), so all stop after step 8.
  EXPECT_EQ(testing::read_file(stopped + "/checkpoints/latest"), "step-00000008\n");
  EXPECT_NE(ranks[0].err.find("another rank got a stop signal"), std::string::npos) << ranks[0].err;
  expect_exit(run.train_ranks(2, stopped, "--resume auto"), 0);
  expect_same_curve(straight + "/metrics.jsonl", stopped + "/metrics.jsonl", 1, 1e-6);
}

TEST(DataParallel, Zero1CheckpointResumesOnOneAndOnFourRanks) {
  SmallRun run;
  const std::string flags = "--set train.micro_batch_size=1 --set checkpoint.keep_last=0";
  const std::string two = run.dir.file("two");
  expect_exit(run.train_ranks(2, two, flags), 0);
  for (int world : {1, 4}) {
    const std::string resumed = run.dir.file(fmt::format("on-{}", world));
    copy_checkpoint(two, "step-00000010", resumed);
    expect_exit(run.train_ranks(world, resumed, flags + " --resume auto"), 0);
    expect_same_curve(two + "/metrics.jsonl", resumed + "/metrics.jsonl", 11);
    const int shards = world == 1 ? 0 : world;
    for (int r = 0; r < shards; ++r) {
      EXPECT_TRUE(fs::exists(fs::path(resumed) / "checkpoints" / "step-00000020" / "trainer_state" /
                             fmt::format("optimizer-{:05d}-of-{:05d}.safetensors", r, world)));
    }
  }
}

// The build has NCCL, but NCCL needs GPUs: without one, asking for it is
// one clear line and exit 2 on every rank, before any rendezvous.
TEST(DataParallel, NcclWithoutAGpuIsAClearError) {
  const CommandResult version = testing::run_command(fmt::format("{} version", CPT_BINARY));
  ASSERT_EQ(version.exit_code, 0);
  ASSERT_NE(version.out.find("process groups: gloo, nccl\n"), std::string::npos) << version.out;
  SmallRun run;
  const auto ranks = run.train_ranks(2, run.dir.file("out"), "--set distributed.backend=nccl");
  for (const auto& r : ranks) {
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("distributed.backend nccl needs the cuda backend, but this run is on cpu (cuda: not "
                         "available: no CUDA device"),
              std::string::npos)
        << r.err;
  }
}

TEST(DataParallel, DeadRankMakesTheOthersFailWithinTheTimeout) {
  SmallRun run;
  const auto ranks =
      run.train_ranks(2, run.dir.file("out"), "--set distributed.timeout_s=20", {"", "CPT_TEST_RAISE_AT_STEP=3:KILL"});
  EXPECT_NE(ranks[1].exit_code, 0);
  EXPECT_EQ(ranks[0].exit_code, 1) << ranks[0].err;
  EXPECT_NE(ranks[0].err.find("another rank exited, or did not answer within distributed.timeout_s=20"),
            std::string::npos)
      << ranks[0].err;
  EXPECT_GT(ranks[0].wall_s, 0.0);
  EXPECT_LT(ranks[0].wall_s, 20.0);
}

TEST(DataParallel, HungRankMakesTheOthersFailAfterTheTimeout) {
  SmallRun run;
  // Rank 1 stops itself (SIGSTOP) after step 3; `timeout` kills it at 15 s.
  const auto ranks = run.train_ranks(2, run.dir.file("out"), "--set distributed.timeout_s=4",
                                     {"", "CPT_TEST_RAISE_AT_STEP=3:STOP timeout -s KILL 15"});
  EXPECT_EQ(ranks[0].exit_code, 1) << ranks[0].err;
  EXPECT_NE(ranks[0].err.find("distributed.timeout_s=4"), std::string::npos) << ranks[0].err;
  EXPECT_GE(ranks[0].wall_s, 4.0) << "rank 0 waited the timeout out";
  EXPECT_LT(ranks[0].wall_s, 12.0) << "rank 0 gave up on its own, before rank 1 was killed";
}

TEST(DataParallel, ResumeRefusesAChangedModelShape) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  ASSERT_EQ(run.train(out, "--set train.steps=5").exit_code, 0);
  const auto r = run.train(out, "--set model.intermediate_size=128 --resume auto");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(fmt::format("cannot resume from {}/checkpoints/step-00000005: model.intermediate_size was 96 "
                                   "there and is 128 now",
                                   out)),
            std::string::npos)
      << r.err;
  const auto seq = run.train(out, "--set data.seq_len=32 --resume auto");
  EXPECT_EQ(seq.exit_code, 2);
  EXPECT_NE(seq.err.find("data.seq_len was 16 there and is 32 now"), std::string::npos) << seq.err;
}

}  // namespace
}  // namespace cpt::train
