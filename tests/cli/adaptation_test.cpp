// Watching the adaptation: the training loss of each source of the mix,
// and the logged loss as the mean over the logging interval.

#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support/small_run.h"

namespace cpt {
namespace {

using testing::SmallRun;

// Which source served each sample of the stream, from `data preview --show`.
std::vector<std::string> sample_sources(const SmallRun& run, int samples) {
  const auto preview = testing::run_command(
      fmt::format("{} data preview --config {} --samples {} --show {}", CPT_BINARY, run.config, samples, samples));
  EXPECT_EQ(preview.exit_code, 0) << preview.err;
  std::vector<std::string> sources;
  const std::regex line(R"(sample (\d+) from (\w+))");
  std::istringstream in(preview.out);
  for (std::string text; std::getline(in, text);) {
    std::smatch m;
    if (std::regex_search(text, m, line)) sources.push_back(m[2]);
  }
  EXPECT_EQ(static_cast<int>(sources.size()), samples);
  return sources;
}

TEST(PerSourceLoss, EachStepsLossIsItsSourcesLossesWeightedByTheirRows) {
  SmallRun run;
  const auto result = run.train(run.dir.file("out"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto rows = testing::metric_rows(run.dir.file("out/metrics.jsonl"));
  const std::vector<std::string> sources = sample_sources(run, 80);  // 20 steps of 4 sequences
  int both = 0;
  for (int64_t step = 1; step <= 20; ++step) {
    const auto& row = rows.at(step);
    int domain_rows = 0;
    for (int64_t i = 4 * (step - 1); i < 4 * step; ++i) domain_rows += sources[static_cast<size_t>(i)] == "domain";
    // A source with no row in the step has no value in it.
    ASSERT_EQ(row.contains("train/domain/loss"), domain_rows > 0) << "step " << step;
    ASSERT_EQ(row.contains("train/general/loss"), domain_rows < 4) << "step " << step;
    const double domain = row.value("train/domain/loss", 0.0), general = row.value("train/general/loss", 0.0);
    // Every row has the same number of tokens: the step's loss is the rows' mean.
    EXPECT_NEAR(row["loss"].get<double>(), (domain_rows * domain + (4 - domain_rows) * general) / 4, 1e-6)
        << "step " << step << ": " << domain_rows << " of 4 rows from domain";
    both += domain_rows > 0 && domain_rows < 4;
  }
  EXPECT_GT(both, 5) << "too few steps mix the two sources to test the weighting";
  EXPECT_NE(result.err.find("(domain "), std::string::npos) << "the console line shows the sources";
}

TEST(PerSourceLoss, TheLoggedLossIsTheIntervalMeanAndResumesExactly) {
  SmallRun run;
  ASSERT_EQ(run.train(run.dir.file("every"), "--set checkpoint.every_steps=0").exit_code, 0);
  const auto every = testing::metric_rows(run.dir.file("every/metrics.jsonl"));
  // Logged every 4 steps, checkpointed at 5 and 10, killed at step 7: the
  // interval 5-8 straddles the checkpoint and the resume.
  const std::string out = run.dir.file("interval");
  const auto killed = run.train(out, "--set logging.every_steps=4", "CPT_TEST_RAISE_AT_STEP=7:KILL");
  ASSERT_NE(killed.exit_code, 0);
  const auto resumed = run.train(out, "--set logging.every_steps=4");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const std::string straight = run.dir.file("straight");
  ASSERT_EQ(run.train(straight, "--set logging.every_steps=4").exit_code, 0);
  const auto interval = testing::metric_rows(out + "/metrics.jsonl");
  const auto uninterrupted = testing::metric_rows(straight + "/metrics.jsonl");
  for (int64_t step : {4, 8, 12, 16, 20}) {
    double sum = 0;
    for (int64_t s = step - 3; s <= step; ++s) sum += every.at(s)["loss"].get<double>();
    EXPECT_DOUBLE_EQ(interval.at(step)["loss"].get<double>(), sum / 4) << "step " << step;
    for (const char* key : {"loss", "train/domain/loss", "train/general/loss"}) {
      EXPECT_EQ(interval.at(step)[key], uninterrupted.at(step)[key]) << key << " at step " << step;
    }
  }
}

TEST(PerSourceLoss, TwoRanksLogWhatOneRankLogs) {
  SmallRun run;
  ASSERT_EQ(run.train(run.dir.file("one"), "--set train.steps=6").exit_code, 0);
  for (const auto& rank : run.train_ranks(2, run.dir.file("two"), "--set train.steps=6")) {
    ASSERT_EQ(rank.exit_code, 0) << rank.err;
  }
  const auto one = testing::metric_rows(run.dir.file("one/metrics.jsonl"));
  const auto two = testing::metric_rows(run.dir.file("two/metrics.jsonl"));
  for (int64_t step = 1; step <= 6; ++step) {
    for (const char* key : {"train/domain/loss", "train/general/loss"}) {
      ASSERT_EQ(one.at(step).contains(key), two.at(step).contains(key)) << key << " at step " << step;
      if (one.at(step).contains(key)) {
        EXPECT_NEAR(one.at(step)[key].get<double>(), two.at(step)[key].get<double>(), 1e-4) << key << " at step " << step;
      }
    }
  }
}

// TensorBoard, through its own loader, shows every value of metrics.jsonl
// at its step, once, after a kill -9 and a resume too.
TEST(TensorBoard, ShowsEveryMetricOnceAcrossAResume) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  ASSERT_NE(run.train(out, "", "CPT_TEST_RAISE_AT_STEP=13:KILL").exit_code, 0);
  const auto resumed = run.train(out);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto read = testing::run_command(
      fmt::format(CPT_PYTHON " {}/tests/io/read_events.py {}/tensorboard", CPT_SOURCE_DIR, out));
  ASSERT_EQ(read.exit_code, 0) << read.err;
  const auto scalars = nlohmann::json::parse(read.out);
  size_t values = 0;
  for (const auto& [step, row] : testing::metric_rows(out + "/metrics.jsonl")) {
    for (const auto& [key, value] : row.items()) {
      if (key == "step" || !value.is_number()) continue;
      ASSERT_TRUE(scalars.contains(key)) << key;
      std::vector<double> at_step;
      for (const auto& point : scalars[key]) {
        if (point[0] == step) at_step.push_back(point[1]);
      }
      ASSERT_EQ(at_step.size(), 1u) << key << " at step " << step << ": once, the resumed run's";
      // TensorBoard keeps scalars as float32.
      EXPECT_NEAR(at_step[0], value.get<double>(), 1e-6 * std::max(1.0, std::abs(value.get<double>())))
          << key << " at step " << step;
      ++values;
    }
  }
  EXPECT_GT(values, 200u);
}

// The run report in a real browser: it loads without a console error and
// every chart draws something.
TEST(Report, LoadsInChromiumWithEveryChartDrawn) {
  ASSERT_EQ(testing::run_command("command -v chromium").exit_code, 0) << "chromium is missing: run scripts/setup.sh";
  SmallRun run;
  const std::string out = run.dir.file("out");
  ASSERT_EQ(run.train(out).exit_code, 0);
  const auto report = testing::run_command(fmt::format("{} report {}", CPT_BINARY, out));
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(report.err.find("wrote " + out + "/report.html: 6 charts from"), std::string::npos) << report.err;
  const std::string html = testing::read_file(out + "/report.html");
  EXPECT_EQ(html.find("http://"), std::string::npos) << "nothing is fetched";
  EXPECT_EQ(html.find("https://"), std::string::npos) << "nothing is fetched";
  const auto browser = testing::run_command(fmt::format(
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --dump-dom file://{}/report.html",
      out));
  ASSERT_EQ(browser.exit_code, 0) << browser.err;
  EXPECT_NE(browser.out.find("data-charts=\"6\" data-drawn=\"6\""), std::string::npos) << browser.out.substr(0, 400);
  for (const char* problem : {"Uncaught", "chart drew nothing"}) {
    EXPECT_EQ(browser.err.find(problem), std::string::npos) << browser.err;
  }
  // The realised mix and the checkpoints are on the page.
  EXPECT_NE(html.find("data mix: configured"), std::string::npos);
  EXPECT_NE(html.find("step-00000020 (latest)"), std::string::npos);
  // A run that has logged nothing is an error naming the file.
  const auto empty = testing::run_command(fmt::format("{} report {}", CPT_BINARY, run.dir.path()));
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_NE(empty.err.find(run.dir.file("metrics.jsonl") + "' is missing"), std::string::npos) << empty.err;
}

}  // namespace
}  // namespace cpt
