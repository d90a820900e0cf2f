#include "cpt/data/loader.h"

#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::data {

namespace {

std::vector<std::string> names_of(const std::vector<std::shared_ptr<const SourceSamples>>& sources) {
  std::vector<std::string> names;
  for (const auto& s : sources) names.push_back(s->name());
  return names;
}

}  // namespace

Loader::Loader(std::vector<std::shared_ptr<const SourceSamples>> sources, std::vector<double> weights,
               LoaderOptions options, const BlendState* resume)
    : sources_(std::move(sources)),
      options_(options),
      blender_(names_of(sources_), std::move(weights)),
      queue_(static_cast<size_t>(std::max(1, options.prefetch))) {
  const int64_t world = options_.world_size;
  if (options_.global_batch_size % (world * options_.micro_batch_size) != 0) {
    throw InputError(fmt::format("global batch {} does not split into micro-batches of {} on {} ranks",
                                 options_.global_batch_size, options_.micro_batch_size, world));
  }
  for (const auto& s : sources_) {
    if (s->seq_len() != sources_.front()->seq_len()) throw std::invalid_argument("sources disagree on seq_len");
  }
  rows_per_rank_ = options_.global_batch_size / world;
  if (resume != nullptr) blender_.restore(*resume);
  thread_ = std::thread([this] { produce(); });
}

Loader::~Loader() {
  stop_ = true;
  queue_.close();
  thread_.join();
}

void Loader::fill_row(MicroBatch& batch, int64_t row, const Blender::Pick& pick, std::vector<int64_t>& window) const {
  const SourceSamples& source = *sources_[static_cast<size_t>(pick.source)];
  const int64_t seq_len = batch.seq_len;
  source.read(pick.sample, window.data(), &batch.doc_starts[static_cast<size_t>(row)]);
  if (options_.vocab_size > 0) {
    for (int64_t i = 0; i <= seq_len; ++i) {
      if (window[static_cast<size_t>(i)] < 0 || window[static_cast<size_t>(i)] >= options_.vocab_size) {
        throw InputError(fmt::format("source '{}' ('{}'): token id {} in its sample {} is outside the model's "
                                     "vocabulary of {}; was the shard made with another tokenizer?",
                                     source.name(), source.dataset().prefix(), window[static_cast<size_t>(i)],
                                     pick.sample, options_.vocab_size));
      }
    }
  }
  std::copy(window.begin(), window.begin() + seq_len, batch.tokens.begin() + row * seq_len);
  std::copy(window.begin() + 1, window.end(), batch.targets.begin() + row * seq_len);
  batch.source[static_cast<size_t>(row)] = pick.source;
  batch.source_sample[static_cast<size_t>(row)] = pick.sample;
}

void Loader::produce() {
  try {
    const int64_t seq_len = sources_.front()->seq_len();
    const int64_t micro = options_.micro_batch_size;
    const int64_t first_row = options_.rank * rows_per_rank_;
    std::vector<int64_t> window(static_cast<size_t>(seq_len + 1));
    std::vector<Blender::Pick> picks(static_cast<size_t>(options_.global_batch_size));
    for (int64_t step = 0; !stop_; ++step) {
      // Every rank draws the whole global batch so all blenders stay in step.
      for (auto& pick : picks) pick = blender_.next();
      for (int64_t m = 0; m < rows_per_rank_ / micro && !stop_; ++m) {
        MicroBatch batch;
        batch.step = step;
        batch.micro_step = m;
        batch.last_in_step = m + 1 == rows_per_rank_ / micro;
        batch.rows = micro;
        batch.seq_len = seq_len;
        batch.tokens.resize(static_cast<size_t>(micro * seq_len));
        batch.targets.resize(static_cast<size_t>(micro * seq_len));
        batch.doc_starts.resize(static_cast<size_t>(micro));
        batch.source.resize(static_cast<size_t>(micro));
        batch.source_sample.resize(static_cast<size_t>(micro));
        for (int64_t r = 0; r < micro; ++r) {
          fill_row(batch, r, picks[static_cast<size_t>(first_row + m * micro + r)], window);
        }
        if (batch.last_in_step) batch.state_after_step = blender_.state();
        if (!queue_.push(std::move(batch))) return;
      }
    }
  } catch (...) {
    error_ = std::current_exception();
    queue_.close();
  }
}

MicroBatch Loader::next() {
  std::optional<MicroBatch> batch = queue_.pop();
  if (!batch) {
    if (error_) std::rethrow_exception(error_);
    throw std::logic_error("loader stopped");
  }
  return std::move(*batch);
}

}  // namespace cpt::data
