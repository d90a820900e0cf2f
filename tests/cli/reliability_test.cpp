// Faults a long run meets, made real: full disks and read-only directories
// (a tmpfs of its own), kill -9 at random moments of a save, corrupted and
// truncated checkpoints, shards changed under a running job, a second run
// in the same directory, Ctrl-C. Each time the last good state survives,
// the error names what happened, and a resume is bit-identical.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "support/hf_models.h"
#include "support/small_fs.h"
#include "support/small_run.h"
#include "support/spawn.h"
#include "support/test_tokenizer.h"

namespace fs = std::filesystem;

namespace cpt {
namespace {

using testing::CommandResult;
using testing::read_file;
using testing::SmallFilesystem;
using testing::SmallRun;
using testing::Spawned;

std::string spawn_command(const SmallRun& run, const std::string& output, const std::string& extra,
                          const std::string& env) {
  return fmt::format("env {} {} --config {} --set run.output_dir={} {}", env, CPT_BINARY, run.config, output, extra);
}

std::string last_line(const std::string& text) {
  const size_t end = text.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

std::string latest(const std::string& output) { return read_file(output + "/checkpoints/latest"); }

// No half-written checkpoint under any name: no temporary directories left.
void expect_no_partial_checkpoints(const std::string& output) {
  for (const auto& entry : fs::directory_iterator(output + "/checkpoints")) {
    EXPECT_NE(entry.path().filename().string().rfind(".step-", 0), 0u) << entry.path();
  }
}

// Every line of metrics.jsonl is a whole JSON object.
void expect_whole_metric_lines(const std::string& path) {
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << "half a line: " << line;
  }
}

// The resumed run equals the straight one: every logged loss, gradient
// norm and learning rate, and the final weights and moments, bit for bit.
void expect_same_run(const std::string& resumed, const std::string& straight, int64_t final_step) {
  EXPECT_EQ(testing::losses(resumed + "/metrics.jsonl"), testing::losses(straight + "/metrics.jsonl"));
  const std::string step = fmt::format("/checkpoints/step-{:08d}", final_step);
  for (const std::string file : {"/model.safetensors", "/trainer_state/optimizer.safetensors"}) {
    EXPECT_TRUE(read_file(resumed + step + file) == read_file(straight + step + file))
        << resumed + step + file << " differs from the straight run's";
  }
}

TEST(FullDisk, DuringACheckpointSaveKeepsTheLastOneAndResumesExactly) {
  SmallRun run;
  SmallFilesystem disk(8 << 20);
  const std::string straight = run.dir.file("straight"), out = disk.file("run");
  ASSERT_EQ(run.train(straight).exit_code, 0);
  Spawned job(spawn_command(run, out, "", "CPT_TEST_RAISE_AT_STEP=10:STOP"));
  ASSERT_TRUE(job.wait_stopped());  // after step 10, before its checkpoint
  disk.fill(64 << 10);              // a checkpoint is ~1 MB
  job.resume();
  const CommandResult full = job.wait();
  EXPECT_EQ(full.exit_code, 1) << full.err;
  EXPECT_NE(last_line(full.err).find("No space left on device"), std::string::npos) << full.err;
  EXPECT_NE(last_line(full.err).find(out + "/checkpoints/.step-00000010.tmp"), std::string::npos) << full.err;
  EXPECT_EQ(latest(out), "step-00000005\n");
  EXPECT_FALSE(fs::exists(out + "/checkpoints/step-00000010"));
  expect_no_partial_checkpoints(out);
  expect_whole_metric_lines(out + "/metrics.jsonl");

  disk.unfill();
  const CommandResult resumed = run.train(out, "--resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed from " + out + "/checkpoints/step-00000005"), std::string::npos);
  expect_same_run(out, straight, 20);
}

TEST(FullDisk, DuringAMetricsWriteLeavesWholeLinesAndResumesExactly) {
  SmallRun run;
  // With TensorBoard off the metrics file meets the full disk; with it on,
  // whichever of the two crosses a page first.
  for (const bool tensorboard : {false, true}) {
    SmallFilesystem disk(8 << 20);
    const std::string flags = fmt::format("--set train.steps=40 --set checkpoint.every_steps=20 --set logging.tensorboard={}",
                                          tensorboard);
    const std::string straight = run.dir.file(fmt::format("straight-{}", tensorboard)), out = disk.file("run");
    ASSERT_EQ(run.train(straight, flags).exit_code, 0);
    Spawned job(spawn_command(run, out, flags, "CPT_TEST_RAISE_AT_STEP=21:STOP"));
    ASSERT_TRUE(job.wait_stopped());
    // No space at all: the metrics rows of steps 22-39 (~8 KB) cross a page
    // of metrics.jsonl before the next checkpoint is due.
    disk.fill(0);
    job.resume();
    const CommandResult full = job.wait();
    EXPECT_EQ(full.exit_code, 1) << full.err;
    const std::string error = last_line(full.err);
    EXPECT_NE(error.find("No space left on device"), std::string::npos) << full.err;
    const bool names_metrics = error.find(out + "/metrics.jsonl") != std::string::npos;
    const bool names_events = error.find(out + "/tensorboard/events.out.tfevents.") != std::string::npos;
    EXPECT_TRUE(tensorboard ? names_metrics || names_events : names_metrics) << full.err;
    expect_whole_metric_lines(out + "/metrics.jsonl");
    EXPECT_EQ(latest(out), "step-00000020\n");

    disk.unfill();
    const CommandResult resumed = run.train(out, flags + " --resume auto");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    expect_same_run(out, straight, 40);
  }
}

TEST(FullDisk, ADirectoryThatBecomesUnwritableMidRunStopsCleanly) {
  SmallRun run;
  const std::string straight = run.dir.file("straight"), out = run.dir.file("run");
  ASSERT_EQ(run.train(straight).exit_code, 0);
  Spawned job(spawn_command(run, out, "", "CPT_TEST_RAISE_AT_STEP=7:STOP"));
  ASSERT_TRUE(job.wait_stopped());
  testing::set_unwritable(out + "/checkpoints", true);
  job.resume();
  const CommandResult stopped = job.wait();
  testing::set_unwritable(out + "/checkpoints", false);
  EXPECT_EQ(stopped.exit_code, 1) << stopped.err;
  const std::string error = last_line(stopped.err);
  EXPECT_TRUE(error.find("Operation not permitted") != std::string::npos ||
              error.find("Permission denied") != std::string::npos)
      << stopped.err;
  EXPECT_NE(error.find(out + "/checkpoints/.step-00000010.tmp"), std::string::npos) << stopped.err;
  EXPECT_EQ(latest(out), "step-00000005\n");
  expect_no_partial_checkpoints(out);
  expect_whole_metric_lines(out + "/metrics.jsonl");

  const CommandResult resumed = run.train(out, "--resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_run(out, straight, 20);
}

TEST(FullDisk, DuringTokenizeLeavesNoShard) {
  const auto& tokenizer = testing::test_tokenizer();
  testing::TempDir dir;
  std::string jsonl;
  for (int copy = 0; copy < 4; ++copy) {
    for (const auto& doc : tokenizer.documents) jsonl += nlohmann::json({{"text", doc}}).dump() + "\n";
  }
  const std::string input = dir.write("corpus.jsonl", jsonl);
  SmallFilesystem disk(128 << 10);
  const CommandResult r = testing::run_command(fmt::format("{} tokenize --tokenizer {} --input {} --output-prefix {}",
                                                           CPT_BINARY, tokenizer.model, input, disk.file("shard")));
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(last_line(r.err).find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(last_line(r.err).find(disk.file("shard")), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(disk.path())) << "neither the shard nor its temporary files remain";
}

TEST(FullDisk, DuringAMergeLeavesNoModel) {
  testing::TempDir dir;
  const testing::TinyLlama shape{64, 128, 4, 512};
  testing::write_model(dir.file("base"), shape, 1, 0.0f);
  testing::write_model(dir.file("chat"), shape, 2, 0.5f);
  const std::string config = dir.write("slerp.yaml", "models:\n  - model: " + dir.file("base") + "\n  - model: " +
                                                         dir.file("chat") + "\nmerge_method: slerp\nbase_model: " +
                                                         dir.file("base") + "\nparameters: {t: 0.5}\n");
  SmallFilesystem disk(256 << 10);  // the merged model is ~1 MB
  const CommandResult r =
      testing::run_command(fmt::format("{} merge --config {} --output {}", CPT_BINARY, config, disk.file("merged")));
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(last_line(r.err).find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(last_line(r.err).find(disk.file("merged")), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(disk.path())) << "neither the model nor its partial directory remain";
}

// Twenty saves killed by SIGKILL after a random delay drawn over the
// measured length of a save: wherever the kill lands, `latest` names a
// complete checkpoint and the resumed run is the straight run, bit for bit.
TEST(KillDuringSave, TwentyRandomMomentsNeverBreakLatest) {
  SmallRun run;
  const std::string more = "--resume auto --set train.steps=15";
  const std::string base = run.dir.file("base"), straight = run.dir.file("straight");
  ASSERT_EQ(run.train(base, "--set train.steps=10").exit_code, 0);
  // The reference: the same continuation, not killed; its save is timed.
  fs::copy(base, straight, fs::copy_options::recursive);
  const CommandResult measured = run.train(straight, more);
  ASSERT_EQ(measured.exit_code, 0) << measured.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(measured.err, match, std::regex(R"(saved \S+step-00000015 in ([0-9.]+) s)")))
      << measured.err;
  const double save_us = std::stod(match[1]) * 1e6;
  std::mt19937 rng(20261203);
  std::uniform_int_distribution<int64_t> delay(0, static_cast<int64_t>(save_us));
  int inside = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string out = run.dir.file("kill-" + std::to_string(i));
    fs::copy(base, out, fs::copy_options::recursive);
    const int64_t after_us = delay(rng);
    const CommandResult killed = run.train(out, more, fmt::format("CPT_TEST_SAVE_FAULT=kill-after-us:{}", after_us));
    const std::string named = latest(out);
    ASSERT_TRUE(named == "step-00000010\n" || named == "step-00000015\n") << "kill " << i << ": " << named;
    if (killed.exit_code != 0 && named == "step-00000010\n") ++inside;
    SCOPED_TRACE(fmt::format("kill {} after {} us, exit {}, latest {}", i, after_us, killed.exit_code, named));
    const CommandResult resumed = run.train(out, more);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(latest(out), "step-00000015\n");
    expect_no_partial_checkpoints(out);
    expect_same_run(out, straight, 15);
    if (!::testing::Test::HasFailure()) fs::remove_all(out);
  }
  std::printf("[ kill -9 ] save %.0f us; %d of 20 kills landed inside the save\n", save_us, inside);
  EXPECT_GE(inside, 10) << "the delays should mostly fall inside the save (" << save_us << " us)";
}

void flip_byte(const std::string& path, int64_t from_end) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(-from_end, std::ios::end);
  const char byte = static_cast<char>(file.get() ^ 0x10);
  file.seekp(-from_end, std::ios::end);
  file.put(byte);
}

TEST(Corruption, AFlippedByteIsFoundByResumeEvalMergeAndInitFrom) {
  SmallRun run;
  const std::string out = run.dir.file("run");
  ASSERT_EQ(run.train(out).exit_code, 0);
  const std::string newest = out + "/checkpoints/step-00000020", older = out + "/checkpoints/step-00000015";
  flip_byte(newest + "/model.safetensors", 7);

  const CommandResult resume = run.train(out, "--resume auto --set train.steps=25");
  EXPECT_EQ(resume.exit_code, 2) << resume.err;
  EXPECT_NE(last_line(resume.err).find(newest + "/model.safetensors' is corrupt"), std::string::npos) << resume.err;
  EXPECT_NE(last_line(resume.err).find("pass --resume " + older), std::string::npos) << resume.err;

  const CommandResult eval = testing::run_command(fmt::format("{} eval --checkpoint {} --prefix {} --seq-len 16",
                                                              CPT_BINARY, newest, run.dir.file("heldout")));
  EXPECT_EQ(eval.exit_code, 2) << eval.err;
  EXPECT_NE(eval.err.find(newest + "/model.safetensors' is corrupt"), std::string::npos) << eval.err;

  const std::string merge_config = run.dir.write(
      "merge.yaml", fmt::format("models:\n  - model: {0}\n  - model: {1}\nmerge_method: slerp\nbase_model: {1}\n"
                                "parameters: {{t: 0.5}}\n",
                                newest, older));
  const CommandResult merge = testing::run_command(
      fmt::format("{} merge --config {} --output {}", CPT_BINARY, merge_config, run.dir.file("merged")));
  EXPECT_EQ(merge.exit_code, 2) << merge.err;
  EXPECT_NE(merge.err.find(newest + "/model.safetensors' is corrupt"), std::string::npos) << merge.err;

  const CommandResult init = run.train(run.dir.file("phase2"), "--set model.init_from=" + newest);
  EXPECT_EQ(init.exit_code, 2) << init.err;
  EXPECT_NE(init.err.find(newest + "/model.safetensors' is corrupt"), std::string::npos) << init.err;

  // The named intact checkpoint continues the run, and the damaged step is
  // written again in its place.
  const CommandResult from_older = run.train(out, "--resume " + older + " --set train.steps=25");
  ASSERT_EQ(from_older.exit_code, 0) << from_older.err;
  EXPECT_EQ(latest(out), "step-00000025\n");
  const CommandResult eval_again = testing::run_command(fmt::format(
      "{} eval --checkpoint {} --prefix {} --seq-len 16", CPT_BINARY, newest, run.dir.file("heldout")));
  EXPECT_EQ(eval_again.exit_code, 0) << eval_again.err;
}

TEST(Corruption, ATruncatedShardIsFoundAndNoIntactOneIsSaidPlainly) {
  SmallRun run;
  const std::string out = run.dir.file("run");
  ASSERT_EQ(run.train(out, "--set checkpoint.keep_last=1").exit_code, 0);
  const std::string moments = out + "/checkpoints/step-00000020/trainer_state/optimizer.safetensors";
  fs::resize_file(moments, fs::file_size(moments) / 2);
  const CommandResult explicit_path = run.train(out, "--resume " + out + "/checkpoints/step-00000020 --set train.steps=25");
  EXPECT_EQ(explicit_path.exit_code, 2) << explicit_path.err;
  EXPECT_NE(explicit_path.err.find(moments + "' is"), std::string::npos) << explicit_path.err;
  EXPECT_NE(explicit_path.err.find("truncated"), std::string::npos) << explicit_path.err;
  const CommandResult automatic = run.train(out, "--resume auto --set train.steps=25");
  EXPECT_EQ(automatic.exit_code, 2) << automatic.err;
  EXPECT_NE(automatic.err.find("no intact checkpoint remains"), std::string::npos) << automatic.err;
}

TEST(ShardChange, ATruncatedBinStopsTheRunWithItsNameAndTheCheckpointSurvives) {
  SmallRun run;
  const std::string straight = run.dir.file("straight"), out = run.dir.file("run");
  ASSERT_EQ(run.train(straight).exit_code, 0);
  const std::string bin = run.dir.file("domain.bin");
  const std::string original = read_file(bin);
  Spawned job(spawn_command(run, out, "", "CPT_TEST_RAISE_AT_STEP=7:STOP"));
  ASSERT_TRUE(job.wait_stopped());
  fs::resize_file(bin, 0);
  job.resume();
  const CommandResult stopped = job.wait();
  EXPECT_EQ(stopped.exit_code, 2) << "not SIGBUS: " << stopped.err;
  EXPECT_NE(last_line(stopped.err).find(bin), std::string::npos) << stopped.err;
  EXPECT_EQ(latest(out), "step-00000005\n");

  testing::TempDir::write_to(bin, original);
  const CommandResult resumed = run.train(out, "--resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_run(out, straight, 20);
}

TEST(ShardChange, ABinRewrittenInPlaceStopsTheRun) {
  SmallRun run;
  const std::string out = run.dir.file("run"), bin = run.dir.file("domain.bin");
  Spawned job(spawn_command(run, out, "", "CPT_TEST_RAISE_AT_STEP=7:STOP"));
  ASSERT_TRUE(job.wait_stopped());
  {
    std::fstream file(bin, std::ios::in | std::ios::out | std::ios::binary);  // same size, other tokens
    file.seekp(10);
    file.put('\x05');
  }
  job.resume();
  const CommandResult stopped = job.wait();
  EXPECT_EQ(stopped.exit_code, 2) << stopped.err;
  EXPECT_NE(last_line(stopped.err).find(bin + "' was rewritten"), std::string::npos) << stopped.err;
  EXPECT_EQ(latest(out), "step-00000005\n");
}

TEST(RunLock, ASecondRunInTheSameOutputDirIsRefusedAndStaleLocksAreTakenOver) {
  SmallRun run;
  const std::string out = run.dir.file("run"), lock = out + "/.cpt-train.lock";
  {
    Spawned first(spawn_command(run, out, "", "CPT_TEST_RAISE_AT_STEP=3:STOP"));
    ASSERT_TRUE(first.wait_stopped());
    const CommandResult second = run.train(out, "--resume auto");
    EXPECT_EQ(second.exit_code, 2) << second.err;
    EXPECT_NE(second.err.find(fmt::format("is in use by another run: {} pid {}",
                                          nlohmann::json::parse(read_file(lock))["host"].get<std::string>(),
                                          first.pid())),
              std::string::npos)
        << second.err;
    EXPECT_NE(second.err.find(lock), std::string::npos);
    first.signal(SIGKILL);  // dies holding the lock
    first.resume();
    EXPECT_EQ(first.wait().exit_code, -SIGKILL);
  }
  ASSERT_TRUE(fs::exists(lock));
  const CommandResult after_kill = run.train(out, "--resume auto --set train.steps=6");
  EXPECT_EQ(after_kill.exit_code, 0) << after_kill.err;
  EXPECT_NE(after_kill.err.find("is no longer running"), std::string::npos) << after_kill.err;
  EXPECT_FALSE(fs::exists(lock)) << "released at exit";

  // A holder on another node is alive while it touches the lock.
  testing::TempDir::write_to(lock, R"({"host": "node-17", "pid": 4242, "slurm_job_id": "991", "since": 0})");
  const CommandResult busy = run.train(out, "--resume auto --set train.steps=7");
  EXPECT_EQ(busy.exit_code, 2) << busy.err;
  EXPECT_NE(busy.err.find("node-17 pid 4242 (SLURM job 991)"), std::string::npos) << busy.err;
  // The same SLURM job, requeued: the earlier run is over.
  const CommandResult requeued = run.train(out, "--resume auto --set train.steps=7", "SLURM_JOB_ID=991");
  EXPECT_EQ(requeued.exit_code, 0) << requeued.err;
  EXPECT_NE(requeued.err.find("earlier run of this SLURM job"), std::string::npos) << requeued.err;
  // Untouched for longer than the heartbeat allows: its holder is gone.
  testing::TempDir::write_to(lock, R"({"host": "node-17", "pid": 4242, "since": 0})");
  const struct timeval hour_ago[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimes(lock.c_str(), hour_ago), 0);
  const CommandResult stale = run.train(out, "--resume auto --set train.steps=8");
  EXPECT_EQ(stale.exit_code, 0) << stale.err;
  EXPECT_NE(stale.err.find("has not touched it for"), std::string::npos) << stale.err;
}

TEST(Interrupt, CtrlCSavesAndExits75AndASecondOneExitsAtOnce) {
  SmallRun run;
  const std::string straight = run.dir.file("straight"), out = run.dir.file("run");
  ASSERT_EQ(run.train(straight).exit_code, 0);
  {
    Spawned job(spawn_command(run, out, "", "CPT_TEST_RAISE_AT_STEP=7:STOP"));
    ASSERT_TRUE(job.wait_stopped());
    job.signal(SIGINT);
    job.resume();
    const CommandResult interrupted = job.wait();
    EXPECT_EQ(interrupted.exit_code, 75) << interrupted.err;
    EXPECT_EQ(latest(out), "step-00000007\n");
  }
  const CommandResult resumed = run.train(out, "--resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_run(out, straight, 20);

  // The second Ctrl-C arrives while the first one's checkpoint is being written.
  const std::string twice = run.dir.file("twice");
  Spawned job(spawn_command(run, twice, "", "CPT_TEST_RAISE_AT_STEP=7:STOP CPT_TEST_SAVE_FAULT=stop"));
  ASSERT_TRUE(job.wait_stopped());  // the step-5 save begins
  job.resume();
  ASSERT_TRUE(job.wait_stopped());  // after step 7
  job.signal(SIGINT);
  job.resume();
  ASSERT_TRUE(job.wait_stopped());  // the interrupt's save begins
  job.signal(SIGINT);
  job.resume();
  const CommandResult at_once = job.wait();
  EXPECT_EQ(at_once.exit_code, 130) << at_once.err;
  EXPECT_NE(at_once.err.find("second interrupt: exiting at once"), std::string::npos) << at_once.err;
  EXPECT_EQ(latest(twice), "step-00000005\n");
  EXPECT_FALSE(fs::exists(twice + "/checkpoints/step-00000007"));
  ASSERT_EQ(run.train(twice, "--resume auto").exit_code, 0);
  expect_same_run(twice, straight, 20);
}

}  // namespace
}  // namespace cpt
