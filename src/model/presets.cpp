#include "cpt/model/presets.h"

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::model {

namespace {

// Numbers from the models' own config.json files (Llama-2-{7,13,70}b-hf).
Shape llama2(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t kv_heads) {
  Shape s;
  s.hidden_size = hidden;
  s.intermediate_size = intermediate;
  s.num_hidden_layers = layers;
  s.num_attention_heads = heads;
  s.num_key_value_heads = kv_heads;
  s.vocab_size = 32000;
  s.max_position_embeddings = 4096;
  s.rms_norm_eps = 1e-5;
  s.rope_theta = 10000.0;
  return s;
}

// A few million parameters: trains in minutes on two CPU cores. It keeps GQA
// (8 query heads over 4 KV heads) so the smoke test exercises that path, and
// an 8k vocabulary to match the small SentencePiece model the tests train.
Shape tiny() {
  Shape s;
  s.hidden_size = 256;
  s.intermediate_size = 768;  // 256 * ((int(8 * 256 / 3) + 255) // 256), as the HF converter rounds
  s.num_hidden_layers = 4;
  s.num_attention_heads = 8;
  s.num_key_value_heads = 4;
  s.vocab_size = 8192;
  s.max_position_embeddings = 4096;  // RoPE range only; costs no parameters, and matches the default seq_len
  s.rms_norm_eps = 1e-5;
  s.rope_theta = 10000.0;
  return s;
}

// The released config.json files of Mistral-7B-v0.1, Llama-3.1-8B and Qwen2.5-7B.
Shape mistral_7b() {
  Shape s = llama2(4096, 14336, 32, 32, 8);
  s.max_position_embeddings = 32768;
  s.arch.model_type = "mistral";
  s.arch.sliding_window = 4096;
  return s;
}

Shape llama31_8b() {
  Shape s = llama2(4096, 14336, 32, 32, 8);
  s.vocab_size = 128256;
  s.max_position_embeddings = 131072;
  s.rope_theta = 500000.0;
  s.arch.rope_scaling = {8.0, 1.0, 4.0, 8192};
  s.arch.bos_token_id = 128000;
  s.arch.eos_token_id = {128001};
  return s;
}

Shape qwen25_7b() {
  Shape s = llama2(3584, 18944, 28, 28, 4);
  s.vocab_size = 152064;
  s.max_position_embeddings = 131072;
  s.rms_norm_eps = 1e-6;
  s.rope_theta = 1000000.0;
  s.arch.model_type = "qwen2";
  s.arch.attention_bias = true;
  s.arch.bos_token_id = 151643;
  s.arch.eos_token_id = {151643};
  return s;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> table = {
      {"tiny", "CPU smoke-test model, ~7M parameters", tiny()},
      {"llama2-7b", "Llama-2-7B", llama2(4096, 11008, 32, 32, 32)},
      {"llama2-13b", "Llama-2-13B", llama2(5120, 13824, 40, 40, 40)},
      {"llama2-70b", "Llama-2-70B (GQA, 8 KV heads)", llama2(8192, 28672, 80, 64, 8)},
      {"mistral-7b", "Mistral-7B-v0.1 (GQA, 4096-token sliding window)", mistral_7b()},
      {"llama3.1-8b", "Llama-3.1-8B (GQA, llama3 RoPE scaling, 128k vocabulary)", llama31_8b()},
      {"qwen2.5-7b", "Qwen2.5-7B (GQA, q/k/v biases, 152k vocabulary)", qwen25_7b()},
  };
  return table;
}

const Preset& find_preset(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& preset : presets()) {
    if (preset.name == name) return preset;
    names.push_back(preset.name);
  }
  std::string message = "'" + name + "' is not a model preset; valid presets: " + join(names, ", ");
  if (auto guess = closest_match(name, names)) message += " (did you mean '" + *guess + "'?)";
  throw ConfigValueError("model.preset", message);
}

}  // namespace cpt::model
