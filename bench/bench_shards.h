#pragma once
// The random shards the data benchmarks share (bench_data, bench_loader):
// uint16 documents of 50-4,000 tokens; the speed does not depend on text.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cpt/data/indexed_dataset.h"

namespace cpt::bench {

inline void write_random_shard(const std::string& prefix, int64_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> length(50, 4000), token(3, 31999);
  data::IndexedDatasetWriter writer(prefix, data::TokenDtype::kUint16);
  std::vector<int32_t> doc;
  for (int64_t written = 0; written < tokens;) {
    doc.resize(static_cast<size_t>(length(rng)));
    for (auto& t : doc) t = token(rng);
    writer.add_document(doc.data(), doc.size());
    written += static_cast<int64_t>(doc.size());
  }
  writer.finish();
}

}  // namespace cpt::bench
