#pragma once
// One source's stream of training windows, as Megatron's GPTDataset cuts it:
// each epoch shuffles the documents with a seed, concatenates them, and
// sample k is the seq_len+1 tokens starting at token k·seq_len of that
// endless stream (inputs and shifted targets; no padding, nothing dropped).
// A window may cross into the next epoch, so a source with one short
// document still serves full windows.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpt/data/indexed_dataset.h"

namespace cpt::data {

class SourceSamples {
 public:
  // shuffle = false serves documents in file order (eval sets). Throws
  // InputError when the dataset has no tokens.
  SourceSamples(std::string name, std::shared_ptr<const IndexedDataset> dataset, int64_t seq_len, uint64_t seed,
                bool shuffle);

  const std::string& name() const { return name_; }
  const IndexedDataset& dataset() const { return *dataset_; }
  int64_t seq_len() const { return seq_len_; }

  // Whole windows in one pass over the data (the eval set size).
  int64_t samples_per_epoch() const { return (dataset_->tokens() - 1) / seq_len_; }

  // Writes the seq_len+1 tokens of sample k to `window`, and to `doc_starts`
  // (when given) the positions in [0, seq_len) where a document begins.
  // Thread-safe.
  void read(int64_t k, int64_t* window, std::vector<int32_t>* doc_starts) const;

 private:
  struct Epoch {
    int64_t number = -1;
    std::vector<uint32_t> order;  // document ids in this epoch's order
    std::vector<int64_t> ends;    // cumulative tokens after each ordered document
  };
  const Epoch& epoch(int64_t number) const;  // caller holds mutex_

  std::string name_;
  std::shared_ptr<const IndexedDataset> dataset_;
  int64_t seq_len_;
  uint64_t seed_;
  bool shuffle_;
  mutable std::mutex mutex_;
  mutable Epoch cache_[2];  // a window spans at most two epochs
};

// A seed per source from the run seed and the source's name, so adding or
// removing another source never reshuffles this one.
uint64_t source_seed(uint64_t run_seed, const std::string& name);

}  // namespace cpt::data
