// Writes the seed corpora of the fuzz targets, made by the project's own
// writers and taken from the files the tests use.
// Usage: fuzz_seeds SOURCE_DIR OUT_DIR (OUT_DIR/<target>/<seed>)

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cpt/data/indexed_dataset.h"
#include "cpt/io/checksums.h"
#include "cpt/io/hf_model.h"
#include "cpt/io/safetensors.h"
#include "cpt/train/trainer_state.h"

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void put(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

void safetensors_seeds(const fs::path& out, const fs::path& work) {
  using cpt::io::Dtype;
  const std::string one = (work / "one.safetensors").string();
  {
    cpt::io::SafetensorsWriter writer(one, {{"model.embed_tokens.weight", Dtype::kF32, {4, 2}},
                                            {"model.norm.weight", Dtype::kBF16, {2}},
                                            {"scalar", Dtype::kI64, {}},
                                            {"empty", Dtype::kF16, {0, 3}}},
                                      {{"offset.model.norm.weight", "4"}});
    const float f[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint16_t h[2] = {0x3f80, 0xbf80};
    const int64_t s = 42;
    writer.write("model.embed_tokens.weight", 0, f, sizeof(f));
    writer.write("model.norm.weight", 0, h, sizeof(h));
    writer.write("scalar", 0, &s, sizeof(s));
    writer.finish();
  }
  put(out / "safetensors" / "mixed", read(one));
  std::vector<cpt::io::TensorSpec> specs = {{"a1", Dtype::kF32, {2}}, {"b1", Dtype::kBF16, {3}},
                                            {"a2", Dtype::kF32, {2}}, {"b2", Dtype::kBF16, {3}}};
  const auto shards = cpt::io::plan_shards(specs, 14);
  put(out / "safetensors_index" / "two-shards", cpt::io::shard_index_json(shards));
  put(out / "safetensors_index" / "hand-written",
      R"({"metadata": {"total_size": 40}, "weight_map": {"a1": "model-00001-of-00002.safetensors",
          "b1": "model-00001-of-00002.safetensors", "a2": "model-00002-of-00002.safetensors",
          "b2": "model-00002-of-00002.safetensors"}})");
}

void hf_config_seeds(const fs::path& out) {
  put(out / "hf_config" / "llama2-7b", R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
  "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "float16", "rope_scaling": null})");
  put(out / "hf_config" / "transformers5", R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8,
  "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 256, "max_position_embeddings": 128,
  "rms_norm_eps": 1e-06, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "dtype": "float32"})");
}

// A byte-level BPE tokenizer.json: the 256 byte characters, two merges,
// a special token, Llama-3's split regex.
void tokenizer_seeds(const fs::path& out) {
  std::string vocab;
  int id = 0, next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int codepoint = printable ? b : next++;
    std::string ch;
    if (codepoint < 0x80) {
      ch = std::string(1, static_cast<char>(codepoint));
      if (ch == "\"" || ch == "\\") ch = "\\" + ch;
    } else {
      ch = {static_cast<char>(0xC0 | (codepoint >> 6)), static_cast<char>(0x80 | (codepoint & 0x3F))};
    }
    vocab += (id ? ", \"" : "\"") + ch + "\": " + std::to_string(id);
    ++id;
  }
  vocab += ", \"he\": 256, \"hel\": 257";
  const std::string json = R"({"version": "1.0", "added_tokens": [{"id": 258, "content": "<|endoftext|>", "special": true}],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex":
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
  "post_processor": {"type": "ByteLevel"},
  "model": {"type": "BPE", "dropout": null, "ignore_merges": true, "vocab": {)" + vocab + R"(},
    "merges": [["h", "e"], "he l"]}})";
  put(out / "tokenizer_json" / "llama3-style", json);
}

void idx_seeds(const fs::path& out, const fs::path& work) {
  using cpt::data::TokenDtype;
  for (const auto& [name, dtype] : {std::pair{"uint16", TokenDtype::kUint16}, std::pair{"int32", TokenDtype::kInt32}}) {
    const std::string prefix = (work / name).string();
    {
      cpt::data::IndexedDatasetWriter writer(prefix, dtype);
      for (int d = 0; d < 5; ++d) {
        std::vector<int32_t> doc(static_cast<size_t>(3 + d * 4), 100 + d);
        writer.add_document(doc.data(), doc.size());
      }
      writer.finish();
    }
    const std::string bin = read(prefix + ".bin");
    std::string seed(4, '\0');
    seed[0] = static_cast<char>(bin.size() & 0xFF);
    seed[1] = static_cast<char>((bin.size() >> 8) & 0xFF);
    put(out / "megatron_idx" / name, seed + read(prefix + ".idx"));
  }
}

void config_seeds(const fs::path& out, const fs::path& source) {
  for (const auto& entry : fs::directory_iterator(source / "configs")) {
    const std::string yaml = read(entry.path());
    put(out / "run_config" / entry.path().filename(), yaml);
    put(out / "run_config" / (entry.path().stem().string() + "-set"),
        yaml + "\n#--set\noptimizer.lr=3e-5\ndata.sources.0.weight=0.5\noptimizer.betas=[0.9,0.99]\n");
  }
  for (const auto& entry : fs::directory_iterator(source / "tests" / "merge" / "configs")) {
    put(out / "merge_config" / entry.path().filename(), read(entry.path()));
  }
}

void state_seeds(const fs::path& out, const fs::path& work) {
  cpt::train::TrainerState state;
  state.step = 500;
  state.tokens = 4'194'304'000;
  state.optimizer_steps = 498;
  state.config_hash = "0123456789abcdef";
  state.resume_guard = {{"hidden_size", 64}, {"seq_len", 128}};
  state.data.samples = 1'024'000;
  state.data.served = {{"domain", 819'200}, {"general", 204'800}};
  state.data.segment_start = 0;
  state.data.served_at_segment_start = {{"domain", 0}, {"general", 0}};
  state.data.weights = {{"domain", 0.8}, {"general", 0.2}};
  put(out / "trainer_state" / "state.json", cpt::train::trainer_state_json(state, 498, 8));
  const fs::path checkpoint = work / "checkpoint";
  put(checkpoint / "config.json", "{}\n");
  put(checkpoint / "trainer_state" / "state.json", "{}\n");
  cpt::io::write_checksums(checkpoint.string());
  put(out / "trainer_state" / "checksums.json", read(checkpoint / cpt::io::kChecksumsFile));
}

void text_seeds(const fs::path& out) {
  // The first byte picks the reader (targets.cpp): 0 JSONL, 1 text; the
  // compressed variants are made by scripts/fuzz.sh with gzip and zstd.
  put(out / "text_input" / "jsonl",
      std::string(1, '\0') + "{\"text\": \"A doc\\u00e9ument.\\n\", \"id\": 1}\n\n{\"text\": \"two\"}\n{\"title\": 3}\n");
  put(out / "text_input" / "txt", std::string(1, '\1') + "Plain text, \xc3\xa9t\xc3\xa9.\nSecond line.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_seeds SOURCE_DIR OUT_DIR\n");
    return 2;
  }
  const fs::path source = argv[1], out = argv[2];
  const fs::path work = out / ".work";
  fs::create_directories(work);
  safetensors_seeds(out, work);
  hf_config_seeds(out);
  idx_seeds(out, work);
  config_seeds(out, source);
  state_seeds(out, work);
  text_seeds(out);
  tokenizer_seeds(out);
  fs::remove_all(work);
  return 0;
}
