#include "cpt/model/attention.h"

#include <torch/torch.h>

#include <vector>

namespace cpt::model {

at::Tensor document_segments(const at::Tensor& positions) {
  TORCH_CHECK(positions.dim() == 2 && positions.is_cpu(), "document_segments: (batch, seq) positions on the host, got ",
              positions.sizes(), " on ", positions.device());
  const auto p = positions.to(torch::kLong).contiguous();
  const int64_t batch = p.size(0), seq = p.size(1);
  const int64_t* data = p.data_ptr<int64_t>();
  std::vector<int64_t> triples;
  for (int64_t row = 0; row < batch; ++row) {
    int64_t begin = 0;
    for (int64_t t = 1; t <= seq; ++t) {
      if (t == seq || data[row * seq + t] == 0) {
        triples.insert(triples.end(), {row, begin, t});
        begin = t;
      }
    }
  }
  return torch::tensor(triples, torch::kLong).view({-1, 3});
}

namespace {

at::Tensor sdpa_causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window) {
  const bool gqa = k.size(1) != q.size(1);  // GQA inside SDPA: no copies of K and V
  const int64_t seq = q.size(2);
  if (window <= 0 || seq <= window) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, std::nullopt, gqa);
  }
  // Query i sees keys i - window + 1 .. i, as Mistral's sliding window does.
  const auto mask = torch::ones({seq, seq}, torch::TensorOptions().dtype(torch::kBool).device(q.device()))
                        .tril()
                        .triu(-(window - 1));
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt, gqa);
}

}  // namespace

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& segments,
                            int64_t window) {
  if (!segments.defined() || segments.numel() == 0) return sdpa_causal(q, k, v, window);
  const int64_t batch = q.size(0), seq = q.size(2);
  const auto s = segments.contiguous();
  const int64_t* triple = s.data_ptr<int64_t>();
  const int64_t n = s.size(0);
  // The documents of each row: [first, last) indices into the triples.
  std::vector<int64_t> first(batch + 1, n);
  for (int64_t i = n - 1; i >= 0; --i) first[triple[3 * i]] = i;
  for (int64_t row = batch - 1; row >= 0; --row) first[row] = std::min(first[row], first[row + 1]);
  // Rows cut alike (the common case of one document per row, or identical
  // packing) run as one batch per document; otherwise row by row.
  bool alike = true;
  for (int64_t row = 1; row < batch && alike; ++row) {
    alike = first[row + 1] - first[row] == first[1] - first[0];
    for (int64_t j = 0; alike && j < first[1] - first[0]; ++j) {
      alike = triple[3 * (first[row] + j) + 1] == triple[3 * j + 1] && triple[3 * (first[row] + j) + 2] == triple[3 * j + 2];
    }
  }
  auto attend_row = [&](const at::Tensor& qr, const at::Tensor& kr, const at::Tensor& vr, int64_t row) {
    std::vector<at::Tensor> pieces;
    int64_t covered = 0;
    for (int64_t i = first[row]; i < first[row + 1]; ++i) {
      const int64_t begin = triple[3 * i + 1], end = triple[3 * i + 2];
      TORCH_CHECK(begin == covered && end > begin && end <= seq, "causal_attention: row ", row,
                  "'s documents do not tile [0, ", seq, ")");
      pieces.push_back(sdpa_causal(qr.slice(2, begin, end), kr.slice(2, begin, end), vr.slice(2, begin, end), window));
      covered = end;
    }
    TORCH_CHECK(covered == seq, "causal_attention: row ", row, "'s documents cover ", covered, " of ", seq, " tokens");
    return pieces.size() == 1 ? pieces.front() : torch::cat(pieces, 2);
  };
  if (alike) return attend_row(q, k, v, 0);
  std::vector<at::Tensor> rows;
  for (int64_t row = 0; row < batch; ++row) {
    rows.push_back(attend_row(q.slice(0, row, row + 1), k.slice(0, row, row + 1), v.slice(0, row, row + 1), row));
  }
  return torch::cat(rows, 0);
}

}  // namespace cpt::model
