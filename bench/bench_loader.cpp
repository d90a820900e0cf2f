// The data loader side of scripts/bench-peers.sh, against megatron-core's
// GPTDataset + BlendedDataset (bench/peers.py loader) on the same shards.
//
//   bench_loader write DIR MILLIONS
//       writes DIR/domain and DIR/general (.bin/.idx, uint16): random
//       documents of 50-4000 tokens, 90% / 10% of MILLIONS million tokens
//   bench_loader run SEQ_LEN MICRO SAMPLES TIMED PREFIX:WEIGHT...
//       start-up: opening the sources, the loader and the first micro-batch;
//       throughput: TIMED samples as packed micro-batches (int64 tokens and
//       targets, document starts); mix: the source of each of the first
//       SAMPLES samples against weight × n. Prints one JSON line.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpt/data/loader.h"
#include "bench_shards.h"

using namespace cpt::data;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int usage() {
  std::fprintf(stderr,
               "usage: bench_loader write DIR MILLIONS\n"
               "       bench_loader run SEQ_LEN MICRO SAMPLES TIMED PREFIX:WEIGHT...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "write") {
    const std::string dir = argv[2];
    const int64_t millions = std::stoll(argv[3]);
    std::filesystem::create_directories(dir);
    cpt::bench::write_random_shard(dir + "/domain", millions * 900'000, 1);
    cpt::bench::write_random_shard(dir + "/general", millions * 100'000, 2);
    return 0;
  }
  if (argc < 7 || std::string(argv[1]) != "run") return usage();
  const int64_t seq_len = std::stoll(argv[2]), micro = std::stoll(argv[3]), samples = std::stoll(argv[4]),
                timed = std::stoll(argv[5]);
  std::vector<std::string> prefixes, names;
  std::vector<double> weights;
  for (int i = 6; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t colon = arg.rfind(':');
    if (colon == std::string::npos) return usage();
    prefixes.push_back(arg.substr(0, colon));
    names.push_back(std::filesystem::path(prefixes.back()).filename().string());
    weights.push_back(std::stod(arg.substr(colon + 1)));
  }
  LoaderOptions options;
  options.micro_batch_size = micro;
  options.global_batch_size = micro;

  // Start-up: everything from the file names to the first batch in hand.
  auto start = Clock::now();
  std::vector<std::shared_ptr<const SourceSamples>> sources;
  for (size_t i = 0; i < prefixes.size(); ++i) {
    sources.push_back(std::make_shared<const SourceSamples>(
        names[i], std::make_shared<const IndexedDataset>(prefixes[i]), seq_len, 1234 + i, true));
  }
  auto loader = std::make_unique<Loader>(sources, weights, options);
  MicroBatch first = loader->next();
  const double startup_s = seconds_since(start);

  // Throughput, from the second batch on (as the peer's).
  const int64_t batches = timed / micro;
  int64_t checksum = first.tokens[0];
  start = Clock::now();
  for (int64_t i = 0; i < batches; ++i) {
    const MicroBatch batch = loader->next();
    checksum += batch.tokens[static_cast<size_t>(i) % batch.tokens.size()];
  }
  const double throughput_s = seconds_since(start);

  // Mix: the sources of the first `samples` rows the loader hands out.
  loader = std::make_unique<Loader>(sources, weights, options);
  double total = 0;
  for (double w : weights) total += w;
  std::vector<int64_t> counts(weights.size(), 0);
  double worst = 0;
  for (int64_t n = 0; n < samples;) {
    const MicroBatch batch = loader->next();
    for (int source : batch.source) {
      if (n == samples) break;
      ++counts[static_cast<size_t>(source)];
      ++n;
      for (size_t s = 0; s < weights.size(); ++s) {
        worst = std::max(worst, std::fabs(static_cast<double>(counts[s]) - weights[s] / total * static_cast<double>(n)));
      }
    }
  }
  nlohmann::json out = {{"startup_s", startup_s},
                        {"tokens_per_s", static_cast<double>(batches * micro * seq_len) / throughput_s},
                        {"samples", samples},
                        {"counts", counts},
                        {"worst_prefix_deviation", worst},
                        {"checksum", checksum}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
