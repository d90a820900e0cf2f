// Continued pre-training of another family's base through the real binary:
// a Qwen2 model that transformers saved (tied embeddings, q/k/v biases)
// plans, trains, and leaves checkpoints that transformers loads as Qwen2,
// with the base's tokenizer and generation files beside them.

#include <gtest/gtest.h>

#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <random>

#include "support/datasets.h"
#include "support/python.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt {
namespace {

using testing::run_command;

TEST(Families, AQwen2BaseTrainsAndItsCheckpointsLoadInTransformersAsQwen2) {
  ASSERT_TRUE(testing::python_has("transformers"));
  testing::TempDir dir;
  const std::string base = dir.file("qwen2-base");
  const auto made = run_command(fmt::format(CPT_PYTHON " {}/tests/model/transformers_family.py make qwen2 {} '[[1, 2]]' {}",
                                            CPT_SOURCE_DIR, base, dir.file("unused.f32")));
  ASSERT_EQ(made.exit_code, 0) << made.err;
  // A Qwen2-style tokenizer.json (its regex and NFC, no BOS) of 290 tokens
  // for the model's 300 rows: Qwen2 pads its embeddings past the tokenizer.
  const std::string docs = dir.file("docs.jsonl");
  ASSERT_EQ(run_command(fmt::format(CPT_PYTHON " {}/tests/data/hf_bpe.py corpus {}", CPT_SOURCE_DIR, docs)).exit_code, 0);
  const auto tokenizer = run_command(fmt::format(CPT_PYTHON " {}/tests/data/hf_bpe.py make qwen2 {} {} 290",
                                                 CPT_SOURCE_DIR, base, docs));
  ASSERT_EQ(tokenizer.exit_code, 0) << tokenizer.err;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> token(0, 299);
  for (const char* name : {"domain", "heldout"}) {
    std::vector<std::vector<int32_t>> docs;
    for (int d = 0; d < 40; ++d) {
      std::vector<int32_t> doc(static_cast<size_t>(20 + d % 13));
      for (auto& t : doc) t = token(rng);
      docs.push_back(doc);
    }
    testing::write_dataset(dir.file(name), docs);
  }
  const std::string config = dir.write("run.yaml", fmt::format(R"(run: {{name: qwen, output_dir: {0}/out, seed: 3}}
model: {{init_from: {0}/qwen2-base}}
data:
  seq_len: 16
  sources: [{{name: domain, prefix: {0}/domain}}]
  eval: [{{name: general, prefix: {0}/heldout, max_batches: 2}}]
train: {{global_batch_size: 4, micro_batch_size: 2, steps: 4, precision: fp32}}
optimizer: {{lr: 1.0e-3}}
schedule: {{warmup_steps: 1}}
checkpoint: {{every_steps: 4}}
eval: {{every_steps: 4}}
)",
                                                               dir.path()));
  const auto plan = run_command(fmt::format("{} --config {} --dry-run --json", CPT_BINARY, config));
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto planned = nlohmann::json::parse(plan.out);
  EXPECT_EQ(planned["plan"]["architecture"], "Qwen2ForCausalLM, tied embeddings, q/k/v biases") << plan.out;

  const auto trained = run_command(fmt::format("{} --config {}", CPT_BINARY, config));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("(Qwen2ForCausalLM, tied embeddings, q/k/v biases; 2 layers"), std::string::npos)
      << trained.err;
  const std::string checkpoint = dir.file("out/checkpoints/step-00000004");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    EXPECT_EQ(testing::read_file(checkpoint + "/" + name), testing::read_file(base + "/" + name)) << name;
  }
  const auto saved = nlohmann::json::parse(testing::read_file(checkpoint + "/config.json"));
  EXPECT_EQ(saved["architectures"], nlohmann::json::array({"Qwen2ForCausalLM"}));
  EXPECT_EQ(saved["model_type"], "qwen2");
  EXPECT_EQ(saved["tie_word_embeddings"], true);
  const auto loaded = run_command(fmt::format(CPT_PYTHON " {}/tests/model/transformers_family.py load qwen2 {} '[[1, 2, 3]]' {}",
                                              CPT_SOURCE_DIR, checkpoint, dir.file("back.f32")));
  EXPECT_EQ(loaded.exit_code, 0) << loaded.err;
  // eval reads the checkpoint as the family it is, and eval --input and
  // generate use its tokenizer.json, which has no BOS.
  const auto evaluated = run_command(fmt::format("{} eval --checkpoint {}/out --json", CPT_BINARY, dir.path()));
  EXPECT_EQ(evaluated.exit_code, 0) << evaluated.err;
  const std::string text = dir.write("text.jsonl", "{\"text\": \"The patent claims a method of caf\u00e9 brewing.\"}\n");
  const auto on_text = run_command(fmt::format("{} eval --checkpoint {}/out --input {} --seq-len 8 --json", CPT_BINARY,
                                               dir.path(), text));
  EXPECT_EQ(on_text.exit_code, 0) << on_text.err;
  const auto generated = run_command(fmt::format("{} generate --checkpoint {}/out --prompt 'A method' --max-new-tokens 4 "
                                                 "--temperature 0", CPT_BINARY, dir.path()));
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
  EXPECT_NE(generated.out.find("A method"), std::string::npos) << generated.out;
}

}  // namespace
}  // namespace cpt
