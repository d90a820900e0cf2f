#pragma once
// Small token shards for the data tests.

#include <string>
#include <vector>

#include "cpt/data/indexed_dataset.h"

namespace cpt::testing {

inline void write_dataset(const std::string& prefix, const std::vector<std::vector<int32_t>>& documents,
                          data::TokenDtype dtype = data::TokenDtype::kUint16) {
  data::IndexedDatasetWriter writer(prefix, dtype);
  for (const auto& doc : documents) writer.add_document(doc.data(), doc.size());
  writer.finish();
}

// `count` documents; document d holds `length(d)` tokens, all equal to
// base + d, so every token says which document it came from.
template <class Length>
std::vector<std::vector<int32_t>> numbered_documents(int count, int32_t base, Length length) {
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < count; ++d) docs.emplace_back(static_cast<size_t>(length(d)), base + d);
  return docs;
}

}  // namespace cpt::testing
