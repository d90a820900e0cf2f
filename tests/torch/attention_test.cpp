// Document-masked attention without a dense mask against SDPA with the
// dense (batch, 1, seq, seq) mask it replaces.

#include "cpt/model/attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace cpt::model {
namespace {

// The dense form: causal, and within the token's own document (documents
// start where positions are 0).
torch::Tensor dense_document_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& positions) {
  const int64_t seq = q.size(2);
  const auto document = (positions == 0).cumsum(1);
  const auto causal = torch::ones({seq, seq}, torch::kBool).tril();
  const auto mask = (document.unsqueeze(2) == document.unsqueeze(1)).logical_and(causal).unsqueeze(1);
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, std::nullopt, k.size(1) != q.size(1));
}

torch::Tensor positions_of(const std::vector<std::vector<int64_t>>& lengths_per_row) {
  std::vector<torch::Tensor> rows;
  for (const auto& lengths : lengths_per_row) {
    std::vector<torch::Tensor> pieces;
    for (const int64_t n : lengths) pieces.push_back(torch::arange(n, torch::kLong));
    rows.push_back(torch::cat(pieces));
  }
  return torch::stack(rows);
}

TEST(DocumentSegments, FollowThePositionResets) {
  const auto segments = document_segments(positions_of({{3, 5}, {8}}));
  const auto expected = torch::tensor({0, 0, 3, 0, 3, 8, 1, 0, 8}, torch::kLong).view({-1, 3});
  EXPECT_TRUE(torch::equal(segments, expected)) << segments;
}

// Rows packed differently (row by row), rows packed alike (one call per
// document for the whole batch), one document per row; GQA (4 query heads
// over 2 KV heads); fp32 and bf16; outputs and the gradients of q, k, v.
TEST(CausalAttention, DocumentSegmentsEqualTheDenseMask) {
  torch::manual_seed(3);
  const std::vector<std::vector<std::vector<int64_t>>> packings = {
      {{5, 1, 10}, {16}, {2, 2, 2, 10}}, {{7, 9}, {7, 9}, {7, 9}}, {{16}, {16}, {16}}};
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const auto& packing : packings) {
      const auto positions = positions_of(packing);
      const auto q0 = torch::randn({3, 4, 16, 8}).to(dtype), k0 = torch::randn({3, 2, 16, 8}).to(dtype),
                 v0 = torch::randn({3, 2, 16, 8}).to(dtype), g = torch::randn({3, 4, 16, 8}).to(dtype);
      torch::Tensor out[2], grads[2][3];
      for (int dense = 0; dense < 2; ++dense) {
        auto q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true), v = v0.clone().requires_grad_(true);
        out[dense] = dense ? dense_document_attention(q, k, v, positions)
                           : causal_attention(q, k, v, document_segments(positions));
        out[dense].backward(g);
        grads[dense][0] = q.grad(), grads[dense][1] = k.grad(), grads[dense][2] = v.grad();
      }
      const double tolerance = dtype == torch::kFloat ? 1e-5 : 2e-2;
      EXPECT_TRUE(torch::allclose(out[0].to(torch::kFloat), out[1].to(torch::kFloat), tolerance, tolerance))
          << "dtype " << dtype << ", rows " << packing.size() << " first row " << packing[0].size() << " documents";
      for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(torch::allclose(grads[0][i].to(torch::kFloat), grads[1][i].to(torch::kFloat), tolerance, tolerance))
            << "gradient " << i << " dtype " << dtype;
      }
    }
  }
}

TEST(CausalAttention, WithoutSegmentsIsPlainCausal) {
  const auto q = torch::randn({2, 4, 9, 8}), k = torch::randn({2, 4, 9, 8}), v = torch::randn({2, 4, 9, 8});
  const auto expected = at::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
  EXPECT_TRUE(torch::allclose(causal_attention(q, k, v), expected));
  EXPECT_TRUE(torch::allclose(causal_attention(q, k, v, document_segments(positions_of({{9}, {9}}))), expected));
}

TEST(CausalAttention, RefusesSegmentsThatDoNotTileTheRow) {
  const auto q = torch::randn({1, 2, 8, 4});
  const auto gap = torch::tensor({0, 0, 3, 0, 4, 8}, torch::kLong).view({-1, 3});
  EXPECT_THROW(causal_attention(q, q, q, gap), c10::Error);
  const auto short_row = torch::tensor({0, 0, 5}, torch::kLong).view({-1, 3});
  EXPECT_THROW(causal_attention(q, q, q, short_row), c10::Error);
}

}  // namespace
}  // namespace cpt::model
