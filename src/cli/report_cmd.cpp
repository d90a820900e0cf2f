// cpt-train report RUN_DIR [--output FILE.html]

#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>

#include "commands.h"
#include "cpt/common/error.h"
#include "cpt/report/report.h"

namespace fs = std::filesystem;

namespace cpt::cli {

namespace {

struct ReportArgs {
  std::string run_dir;
  std::string output;
};

int run_report(const ReportArgs& args) {
  const std::string output = args.output.empty() ? (fs::path(args.run_dir) / "report.html").string() : args.output;
  const report::ReportSummary summary = report::write_report(args.run_dir, output);
  spdlog::info("wrote {}: {} charts from {} metrics rows", summary.path, summary.charts, summary.rows);
  return kExitOk;
}

}  // namespace

Command add_report_command(CLI::App& parent) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* app = parent.add_subcommand("report", "one self-contained HTML page with a run's curves, mix and checkpoints");
  add_examples(*app, {{"cpt-train report runs/medical", "writes runs/medical/report.html; open it in any browser, offline"},
                      {"cpt-train report runs/medical --output /shared/reports/medical.html",
                       "the same page somewhere else, e.g. to share it"}});
  app->add_option("run_dir", args->run_dir, "the run's output_dir (metrics.jsonl, config.resolved.yaml, checkpoints/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app->add_option("--output", args->output, "the HTML file to write (default: RUN_DIR/report.html)");
  return {app, [args]() -> int { return run_report(*args); }};
}

}  // namespace cpt::cli
