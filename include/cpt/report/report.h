#pragma once
// `cpt-train report RUN_DIR`: one self-contained HTML page (styles and SVG
// charts inline, nothing fetched) with the curves a CPT run is judged by:
// training loss per source, each eval set's loss against tokens beside its
// step-0 (base model) value, learning rate, throughput and MFU, the
// realised mix against the configured weights, the checkpoints, and the
// tables of any `merge --sweep` saved beside the run (RUN_DIR/sweeps/).
// Pure C++: it reads metrics.jsonl, config.resolved.yaml, the checkpoints'
// state files and the sweep tables.

#include <string>

namespace cpt::report {

struct ReportSummary {
  std::string path;  // the page written
  int charts = 0;    // charts on it
  int rows = 0;      // metrics rows read
};

// Writes the page for the run in `run_dir` to `output` (atomically).
// Throws InputError naming the file when the run has no metrics yet or a
// file is malformed.
ReportSummary write_report(const std::string& run_dir, const std::string& output);

}  // namespace cpt::report
