#include "targets.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <stdexcept>
#include <string_view>

#include "cpt/common/error.h"
#include "cpt/config/config.h"
#include "cpt/config/serialize.h"
#include "cpt/data/bpe_tokenizer.h"
#include "cpt/data/indexed_dataset.h"
#include "cpt/data/text_input.h"
#include "cpt/io/checksums.h"
#include "cpt/io/hf_model.h"
#include "cpt/io/safetensors.h"
#include "cpt/merge/config.h"
#include "cpt/model/config.h"
#include "cpt/train/trainer_state.h"

namespace fs = std::filesystem;

namespace cpt::fuzz {

namespace {

// Parsers take paths: each process gets a scratch folder in memory,
// removed when it exits, under CPT_FUZZ_SCRATCH when set (scripts/fuzz.sh
// removes that folder: libFuzzer ends a run that times out or runs out of
// memory with _Exit, which skips the destructor here).
const fs::path& scratch() {
  struct Scratch {
    fs::path path;
    ~Scratch() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  };
  static const Scratch dir{[] {
    const char* chosen = std::getenv("CPT_FUZZ_SCRATCH");
    const fs::path base = chosen != nullptr          ? fs::path(chosen)
                          : fs::exists("/dev/shm") ? fs::path("/dev/shm")
                                                   : fs::temp_directory_path();
    fs::path path = base / ("cpt-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path);
    return path;
  }()};
  return dir.path;
}

std::string write(const std::string& name, const void* data, size_t size) {
  const fs::path path = scratch() / name;
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

std::string write(const std::string& name, std::string_view text) { return write(name, text.data(), text.size()); }

// Runs `parse`, accepting a clean refusal of bad input.
template <class F>
void expect_clean(F&& parse) {
  try {
    parse();
  } catch (const InputError&) {
  }
}

// Reads every byte a parsed file claims, so a bad offset faults here.
uint64_t touch(const io::SafetensorsFile& file) {
  uint64_t sum = 0;
  for (const auto& tensor : file.tensors()) {
    const uint8_t* bytes = file.data(tensor);
    for (uint64_t i = 0; i < tensor.end - tensor.begin; i += 509) sum += bytes[i];
    if (tensor.end > tensor.begin) sum += bytes[tensor.end - tensor.begin - 1];
  }
  return sum;
}

void safetensors(const uint8_t* data, size_t size) {
  const std::string path = write("model.safetensors", data, size);
  expect_clean([&] {
    const io::SafetensorsFile file(path);
    volatile uint64_t sum = touch(file);
    (void)sum;
    for (const auto& tensor : file.tensors()) {
      if (file.find(tensor.spec.name) != &tensor) throw std::logic_error("find() disagrees with tensors()");
    }
  });
}

// A fixed two-shard model; the index that maps its tensors is the input.
void safetensors_index(const uint8_t* data, size_t size) {
  static const bool ready = [] {
    write("sharded/config.json", R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})");
    for (int shard = 1; shard <= 2; ++shard) {
      const std::string a = fmt::format("a{}", shard), b = fmt::format("b{}", shard);
      io::SafetensorsWriter writer((scratch() / "sharded" / fmt::format("model-0000{}-of-00002.safetensors", shard)).string(),
                                   {{a, io::Dtype::kF32, {2}}, {b, io::Dtype::kBF16, {3}}});
      const float a_values[2] = {1, 2};
      const uint16_t b_values[3] = {0x3f80, 0x4000, 0x4040};
      writer.write(a, 0, a_values, sizeof(a_values));
      writer.write(b, 0, b_values, sizeof(b_values));
      writer.finish();
    }
    return true;
  }();
  (void)ready;
  write("sharded/model.safetensors.index.json", data, size);
  expect_clean([&] {
    const io::HfModel model((scratch() / "sharded").string());
    for (const auto& name : model.tensor_names()) {
      const auto tensor = model.find(name);
      if (tensor.file == nullptr || tensor.info == nullptr) throw std::logic_error("a listed tensor is not found");
      volatile uint8_t first = tensor.info->end > tensor.info->begin ? *tensor.file->data(*tensor.info) : 0;
      (void)first;
    }
  });
}

void hf_config(const uint8_t* data, size_t size) {
  const std::string path = write("hf/config.json", data, size);
  expect_clean([&] { model::validate(model::read_hf_config(path)); });
}

// The first four bytes give the .bin's size (up to 64 KiB), the rest is the .idx.
void megatron_idx(const uint8_t* data, size_t size) {
  if (size < 4) return;
  const size_t bin_size = (size_t{data[0]} | size_t{data[1]} << 8) % 65537;
  std::string bin(bin_size, '\0');
  for (size_t i = 0; i < bin_size; ++i) bin[i] = static_cast<char>(i * 7 + data[2]);
  write("shard.bin", bin);
  write("shard.idx", data + 4, size - 4);
  expect_clean([&] {
    const data::IndexedDataset dataset((scratch() / "shard").string());
    std::vector<int64_t> tokens;
    for (int64_t d = 0; d < dataset.documents(); ++d) {
      const int64_t length = dataset.document_length(d);
      tokens.resize(static_cast<size_t>(length));
      dataset.read_tokens(dataset.document_offset(d), length, tokens.data());
    }
  });
}

// YAML, then optional --set overrides, one per line, after a line "#--set".
void run_config(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  config::LoadOptions options;
  std::string yaml = text;
  const size_t marker = text.find("\n#--set\n");
  if (marker != std::string::npos) {
    yaml = text.substr(0, marker);
    std::string rest = text.substr(marker + 8);
    for (size_t start = 0; start <= rest.size();) {
      const size_t end = std::min(rest.find('\n', start), rest.size());
      if (end > start) options.overrides.push_back(rest.substr(start, end - start));
      start = end + 1;
    }
  }
  expect_clean([&] {
    const config::Loaded loaded = config::load_text(yaml, "fuzz.yaml", options);
    // What a run writes as config.resolved.yaml must load again, the same.
    const std::string resolved = config::to_yaml(loaded.config);
    const config::Loaded again = config::load_text(resolved, "config.resolved.yaml");
    if (config::to_yaml(again.config) != resolved) throw std::logic_error("config.resolved.yaml does not round-trip");
  });
}

void merge_config(const uint8_t* data, size_t size) {
  const std::string path = write("merge.yaml", data, size);
  expect_clean([&] { merge::load_merge_config(path); });
}

// The first byte picks the format and compression; the rest is the file.
void text_input(const uint8_t* data, size_t size) {
  if (size < 1) return;
  static const char* kNames[] = {"in.jsonl", "in.txt", "in.jsonl.gz", "in.txt.gz", "in.jsonl.zst", "in.txt.zst"};
  const std::string path = write(kNames[data[0] % 6], data + 1, size - 1);
  expect_clean([&] {
    const data::InputFile file = data::classify_input(path);
    data::RecordReader reader(file);
    std::string record, text, reason;
    int64_t line = 0;
    while (reader.next(record, line)) data::document_text(record, file.format, "text", text, reason);
  });
}

// A tokenizer.json, then text through it and back.
void tokenizer_json(const uint8_t* data, size_t size) {
  const std::string path = write("tok/tokenizer.json", data, size);
  expect_clean([&] {
    const data::BpeTokenizer tokenizer(path);
    std::vector<int> ids;
    tokenizer.encode("Hello, world's 12345 caf\xc3\xa9 \xce\xb1\xce\xb2 <|endoftext|>\n\n  x\xff", ids);
    tokenizer.decode(ids);
  });
}

// trainer_state/state.json and trainer_state/checksums.json.
void trainer_state(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  expect_clean([&] { train::parse_trainer_state(text, "state.json"); });
  expect_clean([&] { io::parse_checksums(text, "checksums.json"); });
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"safetensors", safetensors}, {"safetensors_index", safetensors_index},
      {"hf_config", hf_config},     {"megatron_idx", megatron_idx},
      {"run_config", run_config},   {"merge_config", merge_config},
      {"text_input", text_input},   {"trainer_state", trainer_state},
      {"tokenizer_json", tokenizer_json},
  };
  return all;
}

const Target& target(const std::string& name) {
  for (const auto& t : targets()) {
    if (t.name == name) return t;
  }
  throw std::invalid_argument("no fuzz target '" + name + "'");
}

}  // namespace cpt::fuzz
