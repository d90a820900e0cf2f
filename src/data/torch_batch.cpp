#include "cpt/data/torch_batch.h"

#include <memory>

namespace cpt::data {

namespace {

// A CPU int64 tensor over `values`, which the tensor keeps alive.
torch::Tensor adopt(std::shared_ptr<std::vector<int64_t>> values, int64_t rows, int64_t cols) {
  int64_t* data = values->data();
  return torch::from_blob(
      data, {rows, cols}, [keep = std::move(values)](void*) mutable { keep.reset(); },
      torch::TensorOptions().dtype(torch::kInt64));
}

}  // namespace

TorchBatch to_torch(MicroBatch&& batch) {
  const int64_t rows = batch.rows, cols = batch.seq_len;
  auto positions = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const auto& starts = batch.doc_starts[static_cast<size_t>(r)];
    size_t next = 0;
    int64_t position = 0;
    // A window that begins mid-document continues that document's positions
    // from 0 as well: the model never sees its beginning.
    for (int64_t i = 0; i < cols; ++i) {
      if (next < starts.size() && starts[next] == i) {
        position = 0;
        ++next;
      }
      (*positions)[static_cast<size_t>(r * cols + i)] = position++;
    }
  }
  TorchBatch out;
  out.tokens = adopt(std::make_shared<std::vector<int64_t>>(std::move(batch.tokens)), rows, cols);
  out.targets = adopt(std::make_shared<std::vector<int64_t>>(std::move(batch.targets)), rows, cols);
  out.positions = adopt(std::move(positions), rows, cols);
  out.source = torch::tensor(std::vector<int64_t>(batch.source.begin(), batch.source.end()), torch::kInt64);
  return out;
}

}  // namespace cpt::data
