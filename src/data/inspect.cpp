#include "cpt/data/inspect.h"

#include <algorithm>
#include <fmt/format.h>
#include <vector>

#include "cpt/common/strings.h"

namespace cpt::data {

namespace {

constexpr double kPercentiles[6] = {0, 10, 50, 90, 99, 100};
constexpr const char* kPercentileNames[6] = {"min", "p10", "p50", "p90", "p99", "max"};

}  // namespace

ShardStats shard_stats(const IndexedDataset& dataset) {
  ShardStats stats;
  stats.prefix = dataset.prefix();
  stats.dtype = dtype_name(dataset.dtype());
  stats.documents = dataset.documents();
  stats.sequences = dataset.sequences();
  stats.tokens = dataset.tokens();
  stats.bytes = dataset.tokens() * static_cast<int64_t>(dtype_size(dataset.dtype()));
  if (stats.documents == 0) return stats;
  std::vector<int64_t> lengths(static_cast<size_t>(stats.documents));
  for (int64_t d = 0; d < stats.documents; ++d) lengths[static_cast<size_t>(d)] = dataset.document_length(d);
  std::sort(lengths.begin(), lengths.end());
  stats.mean_document_tokens = static_cast<double>(stats.tokens) / static_cast<double>(stats.documents);
  for (int i = 0; i < 6; ++i) {
    // Nearest rank, as numpy's percentile(method="lower") picks it.
    const auto rank = static_cast<size_t>(kPercentiles[i] / 100.0 * static_cast<double>(lengths.size() - 1));
    stats.percentiles[i] = lengths[rank];
  }
  return stats;
}

nlohmann::ordered_json to_json(const ShardStats& s) {
  nlohmann::ordered_json lengths = nlohmann::ordered_json::object();
  for (int i = 0; i < 6; ++i) lengths[kPercentileNames[i]] = s.percentiles[i];
  return {{"prefix", s.prefix},     {"dtype", s.dtype},   {"documents", s.documents},
          {"sequences", s.sequences}, {"tokens", s.tokens}, {"bin_bytes", s.bytes},
          {"mean_document_tokens", s.mean_document_tokens}, {"document_tokens", lengths}};
}

std::string describe(const ShardStats& s) {
  std::string out = fmt::format("{}\n  dtype      {}\n  documents  {}\n  tokens     {}\n  .bin       {}\n",
                                s.prefix, s.dtype, with_thousands(s.documents), with_thousands(s.tokens),
                                human_bytes(static_cast<double>(s.bytes)));
  out += fmt::format("  tokens per document: mean {:.1f}", s.mean_document_tokens);
  for (int i = 0; i < 6; ++i) out += fmt::format(", {} {}", kPercentileNames[i], s.percentiles[i]);
  return out + "\n";
}

}  // namespace cpt::data
