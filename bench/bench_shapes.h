#pragma once
// The ~97M-parameter Llama shape the CPU benchmarks share (12 layers x 768,
// vocabulary 8192; scripts/bench-train.sh trains the same one).

#include "cpt/model/config.h"

namespace cpt::bench {

inline model::Shape shape_97m() {
  model::Shape shape;
  shape.hidden_size = 768;
  shape.intermediate_size = 2048;
  shape.num_hidden_layers = 12;
  shape.num_attention_heads = 12;
  shape.num_key_value_heads = 12;
  shape.vocab_size = 8192;
  shape.max_position_embeddings = 1024;
  return shape;
}

}  // namespace cpt::bench
