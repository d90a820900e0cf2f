// `cpt-train merge --sweep` through the real binary: the ends of the sweep
// are `cpt-train eval` of its two inputs exactly, a point in between is the
// merge written and evaluated, --pick writes the point its rule chooses, and
// what the sweep cannot do is refused before any work.

#include <gtest/gtest.h>

#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/small_run.h"

namespace fs = std::filesystem;

namespace cpt {
namespace {

using testing::run_command;

// A short run whose early checkpoint plays the base model and whose last
// one the CPT model, with a domain and a general eval set.
struct SweepFixture {
  testing::SmallRun run;
  std::string out = run.dir.file("out");
  std::string base = out + "/checkpoints/step-00000005";
  std::string eval_sets;
  SweepFixture() {
    eval_sets = fmt::format("--set \"data.eval=[{{name: domain, prefix: {0}/domain, max_batches: 2}}, "
                            "{{name: general, prefix: {0}/heldout, max_batches: 2}}]\"",
                            run.dir.path());
    const auto trained = run.train(out, "--set checkpoint.keep_last=4");
    EXPECT_EQ(trained.exit_code, 0) << trained.err;
  }
  std::string merge_config(const std::string& method, const std::string& name) const {
    if (method == "slerp") {
      return run.dir.write(name + ".yaml", fmt::format("merge_method: slerp\nbase_model: {0}\nmodels:\n  - model: {0}\n"
                                                       "  - model: {1}\nparameters: {{t: 0.5}}\n",
                                                       base, out));
    }
    if (method == "linear") {
      return run.dir.write(name + ".yaml", fmt::format("merge_method: linear\nmodels:\n  - model: {}\n    parameters: "
                                                       "{{weight: 0.5}}\n  - model: {}\n    parameters: {{weight: 0.5}}\n",
                                                       base, out));
    }
    return run.dir.write(name + ".yaml", fmt::format("merge_method: {}\nbase_model: {}\nmodels:\n  - model: {}\n"
                                                     "    parameters: {{weight: 0.5}}\n",
                                                     method, base, out));
  }
  testing::CommandResult sweep(const std::string& config, const std::string& flags) const {
    return run_command(fmt::format("{} merge --config {} --sweep --eval-config {} {} {}", CPT_BINARY, config, run.config,
                                   eval_sets, flags));
  }
  // set -> loss, from `cpt-train eval --json` of the model in `dir`.
  std::map<std::string, double> eval(const std::string& dir) const {
    const auto r = run_command(fmt::format("{} eval --checkpoint {} --config {} {} --json", CPT_BINARY, dir, run.config, eval_sets));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, double> loss;
    const auto parsed = nlohmann::json::parse(r.out);  // not in the for: it would not outlive ["sets"]
    for (const auto& set : parsed["sets"]) loss[set["name"].get<std::string>()] = set["loss"].get<double>();
    return loss;
  }
};

// t -> set -> loss, from the sweep's --json.
std::map<double, std::map<std::string, double>> table_of(const std::string& json) {
  std::map<double, std::map<std::string, double>> out;
  const auto parsed = nlohmann::json::parse(json);
  for (const auto& point : parsed["points"]) {
    for (const auto& [set, loss] : point["loss"].items()) out[point["t"].get<double>()][set] = loss.get<double>();
  }
  return out;
}

TEST(MergeSweep, EndsEqualEvalOfTheTwoInputsExactly) {
  SweepFixture f;
  const auto base = f.eval(f.base), cpt = f.eval(f.out);
  ASSERT_NE(base.at("domain"), cpt.at("domain")) << "the two models must differ for the test to mean anything";
  for (const char* method : {"slerp", "linear", "task_arithmetic"}) {
    const auto r = f.sweep(f.merge_config(method, method), "--grid 0,0.5,1 --json");
    ASSERT_EQ(r.exit_code, 0) << method << ": " << r.err;
    const auto table = table_of(r.out);
    ASSERT_EQ(table.size(), 3u);
    EXPECT_EQ(table.at(0), base) << method << ": t = 0 is the base model";
    if (std::string(method) == "task_arithmetic") {
      // base + 1 * (cpt - base) in fp32 of fp32 weights: cpt up to rounding.
      for (const auto& [set, loss] : cpt) EXPECT_NEAR(table.at(1).at(set), loss, 1e-5) << set;
    } else {
      EXPECT_EQ(table.at(1), cpt) << method << ": t = 1 is the CPT model";
    }
    EXPECT_NE(table.at(0.5), base);
    EXPECT_NE(table.at(0.5), cpt);
  }
}

TEST(MergeSweep, APointIsTheMergeWrittenAndEvaluated) {
  SweepFixture f;
  const std::string config = f.merge_config("slerp", "slerp");  // its file says t: 0.5
  const auto r = f.sweep(config, "--grid 0.25,0.5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto written = run_command(fmt::format("{} merge --config {} --output {}", CPT_BINARY, config, f.run.dir.file("t05")));
  ASSERT_EQ(written.exit_code, 0) << written.err;
  const auto evaluated = f.eval(f.run.dir.file("t05"));
  // The printed table: one row per t, four decimals.
  EXPECT_NE(r.out.find(fmt::format("{:<6g} {:12.4f} {:12.4f}\n", 0.5, evaluated.at("domain"), evaluated.at("general"))),
            std::string::npos)
      << r.out;
  const auto json = f.sweep(config, "--grid 0.25,0.5 --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(table_of(json.out).at(0.5), evaluated);
}

TEST(MergeSweep, PickWritesTheLowestDomainLossWithinTheBoundAndTheReportShowsIt) {
  SweepFixture f;
  const std::string config = f.merge_config("slerp", "slerp");
  const std::string output = f.run.dir.file("picked");
  const auto r = f.sweep(config, fmt::format("--grid 0,0.2,0.4,0.6,0.8,1 --json --pick \"general <= base + 0.5%\" --output {}", output));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto table = table_of(r.out);
  // The rule, worked out here from the table.
  const double limit = table.at(0).at("general") * 1.005;
  double expected = -1, best = 1e9;
  for (const auto& [t, loss] : table) {
    if (loss.at("general") <= limit && loss.at("domain") < best) expected = t, best = loss.at("domain");
  }
  const auto picked = nlohmann::json::parse(r.out)["pick"];
  EXPECT_EQ(picked["t"].get<double>(), expected);
  EXPECT_EQ(picked["minimize"], "domain");
  EXPECT_NE(r.err.find(fmt::format("picked t = {:g}: the lowest domain loss", expected)), std::string::npos) << r.err;
  // The model written is that point: merge at that t, evaluated.
  EXPECT_EQ(f.eval(output), table.at(expected));
  EXPECT_TRUE(fs::exists(output + "/config.json"));

  // Saved beside the run, and drawn in its report.
  ASSERT_TRUE(fs::exists(f.out + "/sweeps/slerp.json"));
  const auto report = run_command(fmt::format("{} report {}", CPT_BINARY, f.out));
  ASSERT_EQ(report.exit_code, 0) << report.err;
  const std::string html = testing::read_file(f.out + "/report.html");
  EXPECT_NE(html.find("merge sweep slerp (slerp): domain loss"), std::string::npos);
  EXPECT_NE(html.find("merge sweep slerp (slerp): general loss"), std::string::npos);
  EXPECT_NE(html.find(fmt::format("<td>{:g} (picked)</td>", expected)), std::string::npos);
  // Drawn in a real browser: the run's 6 charts and the sweep's 2.
  EXPECT_NE(report.err.find("8 charts"), std::string::npos) << report.err;
  const auto browser = run_command(fmt::format(
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --dump-dom file://{}/report.html",
      f.out));
  ASSERT_EQ(browser.exit_code, 0) << browser.err;
  EXPECT_NE(browser.out.find("data-charts=\"8\" data-drawn=\"8\""), std::string::npos) << browser.out.substr(0, 400);
  EXPECT_EQ(browser.err.find("Uncaught"), std::string::npos) << browser.err;
}

TEST(MergeSweep, RefusesWhatItCannotDoBeforeAnyWork) {
  SweepFixture f;
  const std::string slerp = f.merge_config("slerp", "slerp");
  const auto refused = [&](const std::string& config, const std::string& flags, const std::string& message) {
    const auto r = f.sweep(config, flags);
    EXPECT_EQ(r.exit_code, 2) << flags;
    EXPECT_NE(r.err.find(message), std::string::npos) << flags << "\n" << r.err;
    EXPECT_EQ(r.out.find("t "), std::string::npos) << "no point was evaluated: " << r.out;
  };
  refused(f.merge_config("ties", "ties"), "", "merge --sweep varies the mixing of two models, which merge_method ties does not have");
  refused(slerp, "--grid 0,2", "--grid 0,2: 2 is outside [0, 1]");
  refused(slerp, "--pick \"general <= base + 1%\"", "--pick writes the merge it picks: give --output DIR");
  refused(slerp, "--pick \"genral <= base\" --output x", "'genral' is not an eval set of the run; did you mean 'general'?");
  refused(slerp, fmt::format("--pick \"general <= base\" --output {}", f.out), "exists and is not empty");
  refused(slerp, fmt::format("--output {}", f.run.dir.file("x")), "merge --sweep writes a merge only for --pick RULE");
  const auto no_eval = run_command(fmt::format("{} merge --config {} --sweep", CPT_BINARY, slerp));
  EXPECT_EQ(no_eval.exit_code, 2);
  EXPECT_NE(no_eval.err.find("give --eval-config RUN.yaml"), std::string::npos) << no_eval.err;
  const auto sweep_flag_alone = run_command(fmt::format("{} merge --config {} --output {} --grid 0,1", CPT_BINARY, slerp,
                                                        f.run.dir.file("y")));
  EXPECT_EQ(sweep_flag_alone.exit_code, 2);
  EXPECT_NE(sweep_flag_alone.err.find("--grid goes with --sweep"), std::string::npos) << sweep_flag_alone.err;

  // A bound no point meets: the table is printed, nothing is written.
  const std::string output = f.run.dir.file("never");
  const auto unmet = f.sweep(slerp, fmt::format("--grid 0,1 --pick \"general <= 0.01\" --output {}", output));
  EXPECT_EQ(unmet.exit_code, 2);
  EXPECT_NE(unmet.err.find("no point of the sweep meets general <= 0.0100 (0.01); nothing written"), std::string::npos)
      << unmet.err;
  EXPECT_FALSE(fs::exists(output));
}

}  // namespace
}  // namespace cpt
