#pragma once
// Statistics of one token shard, for `cpt-train data inspect`.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "cpt/data/indexed_dataset.h"

namespace cpt::data {

struct ShardStats {
  std::string prefix;
  std::string dtype;
  int64_t documents = 0;
  int64_t sequences = 0;
  int64_t tokens = 0;
  int64_t bytes = 0;  // .bin size
  double mean_document_tokens = 0;
  // Document length percentiles: p0 (min), p10, p50, p90, p99, p100 (max).
  int64_t percentiles[6] = {0, 0, 0, 0, 0, 0};
};

ShardStats shard_stats(const IndexedDataset& dataset);
nlohmann::ordered_json to_json(const ShardStats& stats);
std::string describe(const ShardStats& stats);

}  // namespace cpt::data
