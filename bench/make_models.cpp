// Writes Llama-shaped bf16 Hugging Face models of random weights for the
// merge benchmark: a base, and fine-tunes of it (base + small noise).
//
// Usage: make_models DIR HIDDEN INTERMEDIATE LAYERS VOCAB COUNT

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpt/io/safetensors.h"

using namespace cpt::io;

namespace {

// xorshift: fast, and good enough for weights nobody trains.
struct Random {
  uint64_t state;
  float next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<float>(static_cast<int64_t>(state >> 40) - (1 << 23)) / static_cast<float>(1 << 23);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: make_models DIR HIDDEN INTERMEDIATE LAYERS VOCAB COUNT\n");
    return 2;
  }
  const std::string root = argv[1];
  const int64_t hidden = std::stoll(argv[2]), inter = std::stoll(argv[3]), layers = std::stoll(argv[4]),
                vocab = std::stoll(argv[5]), count = std::stoll(argv[6]);
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", Dtype::kBF16, {vocab, hidden}}};
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) specs.push_back({p + "self_attn." + proj + ".weight", Dtype::kBF16, {hidden, hidden}});
    specs.push_back({p + "mlp.gate_proj.weight", Dtype::kBF16, {inter, hidden}});
    specs.push_back({p + "mlp.up_proj.weight", Dtype::kBF16, {inter, hidden}});
    specs.push_back({p + "mlp.down_proj.weight", Dtype::kBF16, {hidden, inter}});
    specs.push_back({p + "input_layernorm.weight", Dtype::kBF16, {hidden}});
    specs.push_back({p + "post_attention_layernorm.weight", Dtype::kBF16, {hidden}});
  }
  specs.push_back({"model.norm.weight", Dtype::kBF16, {hidden}});
  specs.push_back({"lm_head.weight", Dtype::kBF16, {vocab, hidden}});
  for (int64_t m = 0; m < count; ++m) {
    const std::string dir = root + "/model" + std::to_string(m);
    std::filesystem::create_directories(dir);
    SafetensorsWriter writer(dir + "/model.safetensors", specs);
    Random base{0x9E3779B97F4A7C15ULL}, own{0xD1B54A32D192ED03ULL * static_cast<uint64_t>(m + 1)};
    std::vector<float> values;
    std::vector<uint16_t> bytes;
    for (const auto& t : writer.layout()) {
      values.resize(static_cast<size_t>(t.spec.numel()));
      for (auto& v : values) v = 0.02f * base.next() + (m == 0 ? 0.0f : 0.002f * own.next());
      bytes.resize(values.size());
      from_f32(Dtype::kBF16, values.data(), bytes.data(), values.size());
      writer.write(t.spec.name, 0, bytes.data(), bytes.size() * 2);
    }
    writer.finish();
    nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                             {"hidden_size", hidden}, {"intermediate_size", inter}, {"num_hidden_layers", layers},
                             {"num_attention_heads", hidden / 128}, {"num_key_value_heads", hidden / 128},
                             {"vocab_size", vocab}, {"torch_dtype", "bfloat16"}};
    std::ofstream(dir + "/config.json") << config.dump(2);
  }
  return 0;
}
