#pragma once
// Small random Llama-shaped Hugging Face model directories for the merge and
// checkpoint tests.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpt/io/safetensors.h"

namespace cpt::testing {

struct TinyLlama {
  int64_t hidden = 16, intermediate = 32, layers = 3, vocab = 50;
};

inline std::vector<io::TensorSpec> llama_tensors(const TinyLlama& s, io::Dtype dtype) {
  std::vector<io::TensorSpec> t = {{"model.embed_tokens.weight", dtype, {s.vocab, s.hidden}}};
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      t.push_back({p + "self_attn." + proj + ".weight", dtype, {s.hidden, s.hidden}});
    }
    t.push_back({p + "mlp.gate_proj.weight", dtype, {s.intermediate, s.hidden}});
    t.push_back({p + "mlp.up_proj.weight", dtype, {s.intermediate, s.hidden}});
    t.push_back({p + "mlp.down_proj.weight", dtype, {s.hidden, s.intermediate}});
    t.push_back({p + "input_layernorm.weight", dtype, {s.hidden}});
    t.push_back({p + "post_attention_layernorm.weight", dtype, {s.hidden}});
  }
  t.push_back({"model.norm.weight", dtype, {s.hidden}});
  t.push_back({"lm_head.weight", dtype, {s.vocab, s.hidden}});
  return t;
}

// Values: a shared random "base" (seed 0) plus `spread` times noise of its
// own seed, so models are correlated as fine-tunes of one base are.
inline void write_model(const std::string& dir, const TinyLlama& s, uint32_t seed, float spread,
                        io::Dtype dtype = io::Dtype::kF32) {
  std::filesystem::create_directories(dir);
  const auto specs = llama_tensors(s, dtype);
  io::SafetensorsWriter writer(dir + "/model.safetensors", specs);
  std::mt19937 base_rng(0), own_rng(seed);
  // One distribution per engine: normal_distribution caches the second value
  // of each pair it draws, so sharing one would feed both terms from one engine.
  std::normal_distribution<float> base_normal(0.0f, 1.0f), own_normal(0.0f, 1.0f);
  for (const auto& spec : writer.layout()) {
    std::vector<float> values(static_cast<size_t>(spec.spec.numel()));
    for (auto& v : values) v = 0.02f * base_normal(base_rng) + spread * 0.02f * own_normal(own_rng);
    std::vector<uint8_t> bytes(spec.spec.nbytes());
    io::from_f32(dtype, values.data(), bytes.data(), values.size());
    writer.write(spec.spec.name, 0, bytes.data(), bytes.size());
  }
  writer.finish();
  const nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                                 {"hidden_size", s.hidden}, {"intermediate_size", s.intermediate},
                                 {"num_hidden_layers", s.layers}, {"num_attention_heads", 4},
                                 {"num_key_value_heads", 4}, {"vocab_size", s.vocab},
                                 {"max_position_embeddings", 128}, {"rms_norm_eps", 1e-5},
                                 {"tie_word_embeddings", false}, {"torch_dtype", io::torch_dtype_name(dtype)}};
  std::ofstream(dir + "/config.json") << config.dump(2);
  std::ofstream(dir + "/tokenizer.model") << "tokenizer of " << dir;
}

}  // namespace cpt::testing
