#pragma once
// `cpt-train merge --sweep`: each point of the grid is merged into one model
// in memory (nothing written), scored on the run's eval sets exactly as
// `cpt-train eval` scores a checkpoint, and tabulated; --pick writes the
// point its rule chooses.

#include <cstdint>
#include <string>
#include <vector>

namespace cpt::cli {

struct MergeSweepArgs {
  std::string config;                   // the mergekit YAML of a two-model merge
  std::string eval_config;              // run config: its data.eval sets, seq_len and micro-batch
  std::vector<std::string> overrides;   // --set on eval_config
  std::string grid;                     // empty: 0, 0.1, …, 1
  std::string pick;                     // rule, e.g. "general <= base + 1%"
  std::string minimize;                 // the set whose loss the pick minimizes
  std::string output;                   // where --pick writes its merge
  bool json = false;
  uint64_t seed = 0;
  int threads = 0;
};

int run_merge_sweep(const MergeSweepArgs& args);

}  // namespace cpt::cli
