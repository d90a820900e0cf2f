// Data loader throughput against a plain memcpy of the same bytes, and the
// realised source mix, measured in the same run. Prints a small table.
//
// Usage: bench_data WORKDIR [TOKENS_MILLIONS]

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cpt/data/blender.h"
#include "cpt/data/loader.h"
#include "bench_shards.h"

using namespace cpt::data;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_data WORKDIR [TOKENS_MILLIONS]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int64_t millions = argc > 2 ? std::stoll(argv[2]) : 64;
  std::filesystem::create_directories(dir);
  cpt::bench::write_random_shard(dir + "/domain", millions * 900'000, 1);
  cpt::bench::write_random_shard(dir + "/general", millions * 100'000, 2);

  const int64_t seq_len = 4096, micro = 8, steps = 24, global = 64;
  std::vector<std::shared_ptr<const SourceSamples>> sources = {
      std::make_shared<const SourceSamples>("domain", std::make_shared<const IndexedDataset>(dir + "/domain"),
                                            seq_len, 11, true),
      std::make_shared<const SourceSamples>("general", std::make_shared<const IndexedDataset>(dir + "/general"),
                                            seq_len, 12, true)};
  LoaderOptions options;
  options.global_batch_size = global;
  options.micro_batch_size = micro;
  options.vocab_size = 32000;

  // Touch the shards once so both measurements read from the page cache.
  {
    Loader warm(sources, {0.9, 0.1}, options);
    for (int i = 0; i < steps * global / micro; ++i) warm.next();
  }
  Loader loader(sources, {0.9, 0.1}, options);
  const int64_t batches = steps * global / micro;
  int64_t bytes = 0;
  int64_t checksum = 0;
  auto start = Clock::now();
  for (int64_t i = 0; i < batches; ++i) {
    const MicroBatch b = loader.next();
    bytes += static_cast<int64_t>((b.tokens.size() + b.targets.size()) * sizeof(int64_t));
    checksum += b.tokens[0];
  }
  const double loader_s = seconds_since(start);

  // The same bytes, batch-sized, with a plain memcpy into fresh buffers.
  const size_t batch_bytes = static_cast<size_t>(bytes / batches);
  std::vector<char> from(batch_bytes, 1);
  start = Clock::now();
  for (int64_t i = 0; i < batches; ++i) {
    std::vector<char> to(batch_bytes);
    std::memcpy(to.data(), from.data(), batch_bytes);
    checksum += to[static_cast<size_t>(i) % batch_bytes];
  }
  const double memcpy_s = seconds_since(start);

  // Realised mix over 100,000 samples.
  Blender blender({"domain", "general", "tiny"}, {0.899, 0.1, 0.001});
  std::vector<int64_t> counts(3, 0);
  double worst = 0;
  for (int64_t i = 1; i <= 100'000; ++i) {
    ++counts[static_cast<size_t>(blender.next().source)];
    const double w[3] = {0.899, 0.1, 0.001};
    for (int s = 0; s < 3; ++s) worst = std::max(worst, std::fabs(static_cast<double>(counts[static_cast<size_t>(s)]) - w[s] * static_cast<double>(i)));
  }

  // Opening a source costs one pass over its document lengths: a 10B-token
  // corpus has ~5M documents, so measure that many (two tokens each).
  {
    IndexedDatasetWriter writer(dir + "/many", TokenDtype::kUint16);
    const int32_t doc[2] = {7, 2};
    for (int i = 0; i < 5'000'000; ++i) writer.add_document(doc, 2);
    writer.finish();
  }
  start = Clock::now();
  SourceSamples many("many", std::make_shared<const IndexedDataset>(dir + "/many"), seq_len, 3, true);
  std::vector<int64_t> window(static_cast<size_t>(seq_len + 1));
  many.read(0, window.data(), nullptr);
  const double open_s = seconds_since(start);

  std::printf("| measure | value |\n| --- | --- |\n");
  std::printf("| open + first sample of a 5,000,000-document source | %.2f s, epoch index %.0f MB |\n", open_s,
              5e6 * 12 / 1e6);
  std::printf("| loader: packed batches (int64 tokens+targets) | %.2f GB/s (%.0f tokens/s) |\n",
              static_cast<double>(bytes) / loader_s / 1e9, static_cast<double>(bytes) / 16.0 / loader_s);
  std::printf("| memcpy of the same bytes, same batch size | %.2f GB/s |\n", static_cast<double>(bytes) / memcpy_s / 1e9);
  std::printf("| loader / memcpy | %.2f (goal >= 0.25) |\n", memcpy_s / loader_s);
  std::printf("| mix over 100,000 samples (0.899/0.1/0.001) | %lld / %lld / %lld, worst prefix deviation %.3f samples (goal <= 1) |\n",
              static_cast<long long>(counts[0]), static_cast<long long>(counts[1]), static_cast<long long>(counts[2]),
              worst);
  std::fprintf(stderr, "(checksum %lld)\n", static_cast<long long>(checksum));
  return 0;
}
