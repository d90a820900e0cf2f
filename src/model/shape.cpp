#include "cpt/model/shape.h"

#include <algorithm>

namespace cpt::model {

int64_t parameter_count(const Shape& s) {
  const int64_t kv_width = s.num_key_value_heads * s.head_dim();
  const int64_t attention = s.hidden_size * s.hidden_size * 2   // q_proj, o_proj
                            + s.hidden_size * kv_width * 2      // k_proj, v_proj
                            + (s.arch.attention_bias ? s.hidden_size + 2 * kv_width : 0);  // q/k/v biases
  const int64_t mlp = 3 * s.hidden_size * s.intermediate_size;  // gate, up, down
  const int64_t norms = 2 * s.hidden_size;                      // input and post-attention RMSNorm
  const int64_t block = attention + mlp + norms;
  return embedding_parameter_count(s) + s.num_hidden_layers * block + s.hidden_size  // final norm
         + (s.arch.tie_word_embeddings ? 0 : s.vocab_size * s.hidden_size);          // lm_head
}

int64_t embedding_parameter_count(const Shape& s) { return s.vocab_size * s.hidden_size; }

double training_flops_per_token(const Shape& s, int64_t seq_len) {
  // A tied lm_head is the embedding matrix, but still a matmul.
  const int64_t matmul = parameter_count(s) - embedding_parameter_count(s) +
                         (s.arch.tie_word_embeddings ? s.vocab_size * s.hidden_size : 0);
  const double dense = 6.0 * static_cast<double>(matmul);
  // A sliding window bounds the keys each query sees.
  const int64_t keys = s.arch.sliding_window > 0 ? std::min(seq_len, s.arch.sliding_window) : seq_len;
  const double attention = 12.0 * static_cast<double>(s.num_hidden_layers) *
                           static_cast<double>(s.hidden_size) * static_cast<double>(keys);
  return dense + attention;
}

}  // namespace cpt::model
