#include "cpt/data/torch_batch.h"

#include <gtest/gtest.h>

namespace cpt::data {
namespace {

TEST(TorchBatch, WrapsTheBuffersAsInt64TensorsWithoutCopying) {
  MicroBatch b;
  b.rows = 2;
  b.seq_len = 4;
  b.tokens = {1, 5, 6, 2, 1, 7, 2, 1};
  b.targets = {5, 6, 2, 1, 7, 2, 1, 9};
  b.doc_starts = {{0}, {0, 3}};
  const int64_t* storage = b.tokens.data();
  const TorchBatch t = to_torch(std::move(b));
  EXPECT_EQ(t.tokens.dtype(), torch::kInt64);
  EXPECT_EQ(t.tokens.sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(t.tokens.data_ptr<int64_t>(), storage);
  EXPECT_EQ(t.targets[1][3].item<int64_t>(), 9);
  EXPECT_TRUE(torch::equal(t.positions, torch::tensor({0, 1, 2, 3, 0, 1, 2, 0}, torch::kInt64).view({2, 4})));
}

TEST(TorchBatch, AWindowStartingMidDocumentCountsFromZero) {
  MicroBatch b;
  b.rows = 1;
  b.seq_len = 5;
  b.tokens = {8, 8, 2, 1, 4};
  b.targets = {8, 2, 1, 4, 4};
  b.doc_starts = {{3}};
  const TorchBatch t = to_torch(std::move(b));
  EXPECT_TRUE(torch::equal(t.positions, torch::tensor({0, 1, 2, 0, 1}, torch::kInt64).view({1, 5})));
}

}  // namespace
}  // namespace cpt::data
