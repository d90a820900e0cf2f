#pragma once
// trainer_state/state.json: where a run stands (step, tokens, data position)
// and what a resume must not change. Pure C++, so its parser can be fuzzed.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "cpt/data/blender.h"

namespace cpt::train {

struct TrainerState {
  int64_t step = 0;            // optimizer steps done
  int64_t tokens = 0;          // training tokens consumed
  data::BlendState data;       // where the blended stream continues
  int64_t nonfinite_in_row = 0;
  std::string config_hash;     // of the resolved config, to warn when it changed
  nlohmann::json resume_guard; // model shape and seq_len: a resume must not change them
  int64_t optimizer_steps = 0; // updates applied (skipped steps do not count)
  double elapsed_s = 0;        // training wall time up to `step`, over every process that resumed the run
  nlohmann::json log_window;   // the logging interval's partial sums at `step`, so a resume logs the same means
};

// The text of state.json for `state`; `world_size` ranks wrote the checkpoint.
std::string trainer_state_json(const TrainerState& state, int64_t optimizer_steps, int world_size);

// Parses state.json's text; throws InputError naming `source` when it is malformed.
TrainerState parse_trainer_state(const std::string& text, const std::string& source);

// Reads <dir>/trainer_state/state.json.
TrainerState read_trainer_state(const std::string& dir);

}  // namespace cpt::train
