#pragma once
// Merge methods over one tensor at a time, computed in fp32 and streamed in
// chunks, so memory stays bounded by one fp32 copy of the largest tensor.
// Formulas follow mergekit (see docs/merge.md for each one).

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cpt::merge {

// Elements a worker merges at a time: chunks start at multiples of this,
// and each is handed to the ChunkSink whole (the last one may be shorter).
constexpr int64_t kMergeChunk = 1 << 20;

struct TensorInput {
  // Copies elements [offset, offset + count) as fp32 into `out`; thread-safe.
  // A method reads each chunk's ranges in ascending order.
  std::function<void(int64_t offset, int64_t count, float* out)> read;
  std::map<std::string, double> params;  // per-model: weight, density, gamma
};

struct MergeTask {
  std::string name;  // output tensor name: for messages and the random streams
  int64_t numel = 0;
  std::vector<TensorInput> inputs;
  int base = -1;  // index of the base model in inputs, -1 for none
  std::map<std::string, double> params;      // global numeric parameters
  std::map<std::string, std::string> texts;  // global text parameters
  uint64_t seed = 0;                         // for DARE's random drop
};

// Receives the merged values of [offset, offset + count); called from worker
// threads, each range exactly once.
using ChunkSink = std::function<void(int64_t offset, const float* values, int64_t count)>;

struct ParamDef {
  std::string name;
  std::optional<double> default_value;  // none: required
};

struct MethodInfo {
  std::string name;
  bool needs_base = false;
  size_t min_models = 1;  // inputs including the base
  size_t max_models = 0;  // 0: any number
  std::vector<ParamDef> global_params;
  std::vector<ParamDef> tensor_params;
  std::vector<std::string> text_params;  // global parameters that take words
};

const std::vector<MethodInfo>& methods();

// Throws InputError listing the supported methods.
const MethodInfo& find_method(const std::string& name);

// Merges one tensor. Throws InputError for parameters that make no sense
// for this tensor (a density that keeps no element).
void run_merge(const MethodInfo& method, const MergeTask& task, const ChunkSink& sink, int threads);

}  // namespace cpt::merge
