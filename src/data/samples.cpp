#include "cpt/data/samples.h"

#include <algorithm>
#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::data {

namespace {

// SplitMix64: a fixed, portable generator, so a shuffle is the same on every
// machine and library version (std:: distributions are not).
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform in [0, bound) without modulo bias (Lemire's method).
uint64_t bounded(uint64_t& state, uint64_t bound) {
  while (true) {
    const unsigned __int128 product = static_cast<unsigned __int128>(splitmix64(state)) * bound;
    const uint64_t low = static_cast<uint64_t>(product);
    if (low >= bound || low >= (-bound) % bound) return static_cast<uint64_t>(product >> 64);
  }
}

}  // namespace

uint64_t source_seed(uint64_t run_seed, const std::string& name) {
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a over the name
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ULL;
  uint64_t state = run_seed ^ hash;
  return splitmix64(state);
}

SourceSamples::SourceSamples(std::string name, std::shared_ptr<const IndexedDataset> dataset, int64_t seq_len,
                             uint64_t seed, bool shuffle)
    : name_(std::move(name)), dataset_(std::move(dataset)), seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  if (dataset_->tokens() == 0) {
    throw InputError(fmt::format("source '{}' ('{}') has no tokens", name_, dataset_->prefix()));
  }
  if (dataset_->documents() > static_cast<int64_t>(UINT32_MAX)) {
    throw InputError(fmt::format("source '{}' has {} documents; split it into shards of < 2^32 documents", name_,
                                 dataset_->documents()));
  }
}

const SourceSamples::Epoch& SourceSamples::epoch(int64_t number) const {
  for (const Epoch& cached : cache_) {
    if (cached.number == number) return cached;
  }
  // Replace the older of the two: windows move forward through epochs.
  Epoch& slot = cache_[0].number < cache_[1].number ? cache_[0] : cache_[1];
  const int64_t documents = dataset_->documents();
  slot.order.resize(static_cast<size_t>(documents));
  for (int64_t d = 0; d < documents; ++d) slot.order[static_cast<size_t>(d)] = static_cast<uint32_t>(d);
  if (shuffle_) {
    uint64_t state = seed_ ^ (0xD1B54A32D192ED03ULL * static_cast<uint64_t>(number + 1));
    for (int64_t i = documents - 1; i > 0; --i) {
      std::swap(slot.order[static_cast<size_t>(i)], slot.order[bounded(state, static_cast<uint64_t>(i + 1))]);
    }
  }
  slot.ends.resize(static_cast<size_t>(documents));
  int64_t total = 0;
  for (int64_t i = 0; i < documents; ++i) {
    total += dataset_->document_length(slot.order[static_cast<size_t>(i)]);
    slot.ends[static_cast<size_t>(i)] = total;
  }
  slot.number = number;
  return slot;
}

void SourceSamples::read(int64_t k, int64_t* window, std::vector<int32_t>* doc_starts) const {
  if (doc_starts != nullptr) doc_starts->clear();
  const int64_t epoch_tokens = dataset_->tokens();
  int64_t offset = k * seq_len_;  // in the endless stream
  int64_t filled = 0;
  const int64_t want = seq_len_ + 1;
  std::lock_guard<std::mutex> lock(mutex_);
  while (filled < want) {
    const Epoch& e = epoch(offset / epoch_tokens);
    const int64_t within = offset % epoch_tokens;
    // The first ordered document whose end lies beyond `within`.
    const auto it = std::upper_bound(e.ends.begin(), e.ends.end(), within);
    const size_t index = static_cast<size_t>(it - e.ends.begin());
    const int64_t doc_begin = index == 0 ? 0 : e.ends[index - 1];
    const int64_t position = within - doc_begin;
    const int64_t doc = e.order[index];
    const int64_t take = std::min(want - filled, e.ends[index] - within);
    if (position == 0 && doc_starts != nullptr && filled < seq_len_) {
      doc_starts->push_back(static_cast<int32_t>(filled));
    }
    dataset_->read_tokens(dataset_->document_offset(doc) + position, take, window + filled);
    filled += take;
    offset += take;
  }
}

}  // namespace cpt::data
