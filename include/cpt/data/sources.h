#pragma once
// Opens the shards a run config names.

#include <memory>
#include <vector>

#include "cpt/data/config.h"
#include "cpt/data/samples.h"

namespace cpt::data {

struct TrainingSources {
  std::vector<std::shared_ptr<const SourceSamples>> sources;  // shuffled per epoch
  std::vector<double> weights;
};

// Throws InputError naming the source and file on any invalid shard.
TrainingSources open_training_sources(const Config& config, uint64_t run_seed);

// Held-out sets: file order, the same windows every time.
std::vector<std::shared_ptr<const SourceSamples>> open_eval_sets(const Config& config);

}  // namespace cpt::data
