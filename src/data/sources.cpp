#include "cpt/data/sources.h"

#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::data {

namespace {

std::shared_ptr<const IndexedDataset> open(const std::string& key, const std::string& prefix) {
  try {
    return std::make_shared<const IndexedDataset>(prefix);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", key, e.what()));
  }
}

}  // namespace

TrainingSources open_training_sources(const Config& config, uint64_t run_seed) {
  TrainingSources out;
  for (size_t i = 0; i < config.sources.size(); ++i) {
    const Source& s = config.sources[i];
    auto dataset = open(fmt::format("data.sources[{}] '{}'", i, s.name), s.prefix);
    out.sources.push_back(
        std::make_shared<const SourceSamples>(s.name, dataset, config.seq_len, source_seed(run_seed, s.name), true));
    out.weights.push_back(s.weight);
  }
  return out;
}

std::vector<std::shared_ptr<const SourceSamples>> open_eval_sets(const Config& config) {
  std::vector<std::shared_ptr<const SourceSamples>> out;
  for (size_t i = 0; i < config.eval.size(); ++i) {
    const EvalSet& e = config.eval[i];
    auto dataset = open(fmt::format("data.eval[{}] '{}'", i, e.name), e.prefix);
    auto samples = std::make_shared<const SourceSamples>(e.name, dataset, config.seq_len, 0, false);
    if (samples->samples_per_epoch() == 0) {
      throw InputError(fmt::format("data.eval[{}] '{}': {} tokens is less than one window of seq_len+1 = {}", i, e.name,
                                   dataset->tokens(), config.seq_len + 1));
    }
    out.push_back(std::move(samples));
  }
  return out;
}

}  // namespace cpt::data
