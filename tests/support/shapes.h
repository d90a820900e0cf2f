#pragma once
// A small Llama shape with GQA (8 query heads over 2 KV heads), fast on CPU.

#include "cpt/model/config.h"

namespace cpt::testing {

inline model::Shape small_gqa_shape() {
  model::Shape s;
  s.hidden_size = 64;
  s.intermediate_size = 96;
  s.num_hidden_layers = 2;
  s.num_attention_heads = 8;
  s.num_key_value_heads = 2;
  s.vocab_size = 101;
  s.max_position_embeddings = 64;
  s.rms_norm_eps = 1e-5;
  s.rope_theta = 10000.0;
  return s;
}

}  // namespace cpt::testing
