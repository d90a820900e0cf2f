#pragma once
// This rank's micro-batches of the blended stream, prepared by a prefetch
// thread while the step runs. The global stream does not depend on the world
// size: every rank walks the same blender and keeps its own contiguous slice
// of each global batch.

#include <cstdint>
#include <atomic>
#include <exception>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "cpt/common/bounded_queue.h"
#include "cpt/data/blender.h"
#include "cpt/data/samples.h"

namespace cpt::data {

struct LoaderOptions {
  int64_t global_batch_size = 1;  // sequences per optimizer step, all ranks
  int64_t micro_batch_size = 1;   // rows per micro-batch on this rank
  int rank = 0;
  int world_size = 1;
  int prefetch = 4;               // micro-batches prepared ahead
  int64_t vocab_size = 0;         // token ids must be below it (0: unchecked)
};

struct MicroBatch {
  int64_t step = 0;        // global batch (optimizer step) it belongs to, from 0
  int64_t micro_step = 0;  // its index among this rank's micro-batches of the step
  bool last_in_step = false;
  int64_t rows = 0;
  int64_t seq_len = 0;
  std::vector<int64_t> tokens;                   // (rows, seq_len)
  std::vector<int64_t> targets;                  // (rows, seq_len): tokens shifted by one
  std::vector<std::vector<int32_t>> doc_starts;  // per row: positions where a document begins
  std::vector<int> source;                       // per row: source index
  std::vector<int64_t> source_sample;            // per row: the source's sample number
  BlendState state_after_step;                   // set when last_in_step: resume point after this step
};

class Loader {
 public:
  // `resume` continues a saved stream (new weights or sources start a new
  // blend segment); null starts at the beginning. Throws InputError when the
  // batch sizes do not split over the ranks.
  Loader(std::vector<std::shared_ptr<const SourceSamples>> sources, std::vector<double> weights,
         LoaderOptions options, const BlendState* resume = nullptr);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Blocks until the next micro-batch is ready; rethrows a failure of the
  // prefetch thread (a bad token id, an I/O error).
  MicroBatch next();

  int64_t micro_batches_per_step() const { return rows_per_rank_ / options_.micro_batch_size; }

 private:
  void produce();
  void fill_row(MicroBatch& batch, int64_t row, const Blender::Pick& pick, std::vector<int64_t>& window) const;

  std::vector<std::shared_ptr<const SourceSamples>> sources_;
  LoaderOptions options_;
  int64_t rows_per_rank_ = 0;
  Blender blender_;
  BoundedQueue<MicroBatch> queue_;
  std::exception_ptr error_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace cpt::data
