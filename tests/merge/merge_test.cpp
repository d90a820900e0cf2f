// Each merge method against mergekit itself on the same config and models
// (tests/merge/mergekit_compare.py), plus the merge's contracts: streaming
// output, checks before work, determinism.

#include "cpt/merge/merge.h"
#include "cpt/merge/config.h"
#include "cpt/merge/methods.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <numeric>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cpt/common/error.h"
#include "cpt/io/hf_model.h"
#include "support/hf_models.h"
#include "support/python.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt::merge {
namespace {

struct Models {
  testing::TempDir dir;
  std::string base, a, b, c;
  explicit Models(testing::TinyLlama shape = {}) {
    base = dir.file("base");
    a = dir.file("chat");
    b = dir.file("medical");
    c = dir.file("code");
    testing::write_model(base, shape, 1, 0.0f);
    testing::write_model(a, shape, 2, 0.5f);
    testing::write_model(b, shape, 3, 0.5f);
    testing::write_model(c, shape, 4, 0.5f);
  }
  std::string config(const std::string& yaml) const { return dir.write("merge-" + std::to_string(++count_) + ".yaml", yaml); }
  mutable int count_ = 0;
};

MergeReport run(const std::string& config, const std::string& output, uint64_t seed = 0, int threads = 2) {
  MergeOptions o;
  o.config = config;
  o.output = output;
  o.seed = seed;
  o.threads = threads;
  return merge_models(o);
}

// mergekit itself on the same config (tests/merge/mergekit_compare.py):
// the same tensor names, dtypes and shapes, values within `rtol` of
// mergekit's relative to each tensor's largest, or bit-identical (rtol 0:
// the methods whose arithmetic is elementwise in the same order as
// mergekit's; linear, slerp and model_stock sum or normalise in another
// order and differ by ~1e-7).
void expect_mergekit(const std::string& config, const std::string& ours, double rtol = 1e-6,
                     const std::string& more_flags = "") {
  const std::string flags = rtol == 0 ? "--exact" : fmt::format("--rtol {}", rtol);
  const testing::CommandResult r = testing::run_command(fmt::format("{} {}/tests/merge/mergekit_compare.py {} {} {} {}",
                                                                    CPT_PYTHON, CPT_SOURCE_DIR, config, ours, flags,
                                                                    more_flags));
  EXPECT_EQ(r.exit_code, 0) << config << ":\n" << r.out << r.err;
}

// Merges `yaml` with cpt-train and with mergekit and compares the two.
void expect_same_as_mergekit(const Models& m, const std::string& yaml, double rtol = 1e-6,
                             const std::string& more_flags = "") {
  const std::string config = m.config(yaml);
  const std::string out = m.dir.file("out-" + std::to_string(m.count_));
  run(config, out);
  expect_mergekit(config, out, rtol, more_flags);
}

TEST(Merge, LinearMatchesMergekit) {
  Models m;
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {}\n    parameters: {{weight: 0.7}}\n  - model: {}\n"
                                         "    parameters: {{weight: 0.3}}\nmerge_method: linear\ndtype: float32\n",
                                         m.a, m.b));
}

TEST(Merge, GradientSlerpMatchesMergekit) {
  Models m;
  // As in mergekit's examples: attention and MLP interpolate in opposite directions.
  expect_same_as_mergekit(m, fmt::format("slices:\n  - sources:\n      - model: {0}\n        layer_range: [0, 3]\n"
                                         "      - model: {1}\n        layer_range: [0, 3]\nmerge_method: slerp\n"
                                         "base_model: {0}\nparameters:\n  t:\n    - filter: self_attn\n"
                                         "      value: [0, 0.5, 1]\n    - filter: mlp\n      value: [1, 0.5, 0]\n"
                                         "    - value: 0.3\ndtype: float32\n",
                                         m.base, m.b));
}

TEST(Merge, TiesWithPerModelDensityAndWeightMatchesMergekit) {
  Models m;
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {0}\n  - model: {1}\n    parameters: {{density: 0.5, weight: 0.5}}\n"
                                         "  - model: {2}\n    parameters: {{density: 0.3, weight: 0.8}}\nmerge_method: ties\n"
                                         "base_model: {0}\nparameters:\n  normalize: true\ndtype: float32\n",
                                         m.base, m.a, m.b), 0);
}

// mergekit has count consensus (get_mask) but no method name for it, and
// ignores `consensus_method`; the comparison selects it in mergekit.
TEST(Merge, TiesWithCountConsensusMatchesMergekit) {
  Models m;
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {0}\n  - model: {1}\n    parameters: {{density: 0.6, weight: 1.0}}\n"
                                         "  - model: {2}\n    parameters: {{density: 0.6, weight: 1.0}}\n  - model: {3}\n"
                                         "    parameters: {{density: 0.6, weight: 0.5}}\nmerge_method: ties\nbase_model: {0}\n"
                                         "parameters: {{consensus_method: count}}\ndtype: float32\n",
                                         m.base, m.a, m.b, m.c),
                          0, "--consensus count");
}

TEST(Merge, TaskArithmeticAndBreadcrumbsMatchMergekit) {
  Models m;
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {0}\n  - model: {1}\n    parameters: {{weight: 0.6, density: 0.8}}\n"
                                         "  - model: {2}\n    parameters: {{weight: 0.4, density: 0.9}}\nmerge_method: breadcrumbs_ties\n"
                                         "base_model: {0}\nparameters: {{lambda: 0.9, gamma: 0.05}}\ndtype: float32\n",
                                         m.base, m.a, m.b), 0);
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {0}\n  - model: {1}\n    parameters: {{weight: 0.6, density: 0.7}}\n"
                                         "  - model: {2}\n    parameters: {{weight: 0.4, density: 0.9}}\nmerge_method: breadcrumbs\n"
                                         "base_model: {0}\nparameters: {{gamma: 0.02}}\ndtype: float32\n",
                                         m.base, m.a, m.b), 0);
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {0}\n  - model: {1}\n    parameters: {{weight: 0.6}}\n"
                                         "  - model: {2}\n    parameters: {{weight: -0.4}}\nmerge_method: task_arithmetic\n"
                                         "base_model: {0}\ndtype: float32\n",
                                         m.base, m.a, m.b), 0);
}

// DARE's drop is random: mergekit and cpt-train draw different masks, so
// mergekit is compared where the drop keeps everything (density 1: sign
// consensus, weighting and rescale), and the drop itself is checked here.
TEST(Merge, DareTiesDropsAtItsDensityRescalesAndIsDeterministic) {
  Models m;
  const std::string config = m.config(fmt::format("models:\n  - model: {0}\n  - model: {1}\n"
                                                  "    parameters: {{density: 0.4, weight: 1.0}}\nmerge_method: dare_ties\n"
                                                  "base_model: {0}\n", m.base, m.a));
  run(config, m.dir.file("one"), 7, 1);
  run(config, m.dir.file("two"), 7, 2);
  run(config, m.dir.file("other-seed"), 8, 2);
  const std::string one = testing::read_file(m.dir.file("one/model.safetensors"));
  EXPECT_EQ(one, testing::read_file(m.dir.file("two/model.safetensors"))) << "bit-identical for any thread count";
  EXPECT_NE(one, testing::read_file(m.dir.file("other-seed/model.safetensors")));

  // One model of weight 1 over the base: each delta is dropped (output ==
  // base) or kept, and the kept ones are scaled so that the tensor's L1 norm
  // of deltas is kept (mergekit's RescaleNorm.l1): one factor per tensor.
  const io::HfModel base(m.base), model(m.a), merged(m.dir.file("one"));
  int64_t kept = 0, total = 0;
  for (const auto& name : base.tensor_names()) {
    const auto read = [&](const io::HfModel& hf) {
      const auto t = hf.find(name);
      std::vector<float> v(static_cast<size_t>(t.info->spec.numel()));
      io::to_f32(t.info->spec.dtype, t.file->data(*t.info), v.data(), v.size());
      return v;
    };
    const auto b = read(base), a = read(model), out = read(merged);
    double l1_all = 0, l1_kept = 0;
    std::vector<size_t> kept_here;
    for (size_t i = 0; i < b.size(); ++i) {
      const double delta = static_cast<double>(a[i]) - b[i];
      l1_all += std::fabs(delta);
      if (out[i] != b[i] || delta == 0) {
        kept_here.push_back(i);
        l1_kept += std::fabs(delta);
      }
    }
    if (l1_kept == 0) continue;  // all dropped: the base, as mergekit leaves it (seen in a 16-element norm)
    const double factor = l1_all / l1_kept;
    for (size_t i : kept_here) {
      const double delta = static_cast<double>(a[i]) - b[i], got = static_cast<double>(out[i]) - b[i];
      ASSERT_NEAR(got, delta * factor, 1e-8 + 1e-5 * std::fabs(delta * factor)) << name << "[" << i << "]";
    }
    kept += static_cast<int64_t>(kept_here.size());
    total += static_cast<int64_t>(b.size());
  }
  for (const char* method : {"dare_ties", "dare_linear"}) {
    expect_same_as_mergekit(m, fmt::format("models:\n  - model: {0}\n  - model: {1}\n    parameters: {{density: 1.0, weight: 0.5}}\n"
                                           "  - model: {2}\n    parameters: {{density: 1.0, weight: 0.7}}\nmerge_method: {3}\n"
                                           "base_model: {0}\ndtype: float32\n",
                                           m.base, m.a, m.b, method),
                            0);
  }
}

TEST(Merge, ModelStockMatchesMergekit) {
  Models m;
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {1}\n  - model: {2}\n  - model: {3}\nmerge_method: model_stock\n"
                                         "base_model: {0}\ndtype: float32\n",
                                         m.base, m.a, m.b, m.c));
}

TEST(Merge, TensorsLargerThanOneChunkMatchMergekit) {
  testing::TinyLlama big;
  big.vocab = 2100;
  big.hidden = 512;  // embed and lm_head: 1,075,200 elements, past the 2^20 chunk
  big.intermediate = 64;
  big.layers = 2;
  Models m(big);
  expect_same_as_mergekit(m, fmt::format("models:\n  - model: {0}\n  - model: {1}\n    parameters: {{density: 0.3, weight: 1.0}}\n"
                                         "  - model: {2}\n    parameters: {{density: 0.7, weight: 0.5}}\nmerge_method: ties\n"
                                         "base_model: {0}\ndtype: float32\n",
                                         m.base, m.a, m.b), 0);
}

// bf16 weights make many |delta| values equal, so ties straddle the density
// cuts. mergekit breaks them by torch's unstable argsort, an order torch
// does not define; cpt-train keeps the lower index, as a stable sort does,
// and equals mergekit whose sort is made stable.
void expect_bf16_cuts_match_mergekit(const testing::TinyLlama& shape) {
  testing::TempDir dir;
  const std::string base = dir.file("base"), a = dir.file("a"), b = dir.file("b");
  testing::write_model(base, shape, 1, 0.0f, io::Dtype::kBF16);
  testing::write_model(a, shape, 2, 0.05f, io::Dtype::kBF16);
  testing::write_model(b, shape, 3, 0.05f, io::Dtype::kBF16);
  const std::string config = dir.write("ties.yaml", fmt::format(
      "models:\n  - model: {0}\n  - model: {1}\n    parameters: {{density: 0.5, weight: 0.7}}\n  - model: {2}\n"
      "    parameters: {{density: 0.25, weight: 0.3}}\nmerge_method: ties\nbase_model: {0}\ndtype: float32\n"
      "out_dtype: float32\n",
      base, a, b));
  const std::string out = dir.file("out");
  run(config, out);
  expect_mergekit(config, out, 0, "--stable-sort");
  // Breadcrumbs cuts at both ends of an ascending sort.
  const std::string crumbs = dir.write("breadcrumbs.yaml", fmt::format(
      "models:\n  - model: {0}\n  - model: {1}\n    parameters: {{density: 0.6, weight: 0.7, gamma: 0.1}}\n"
      "  - model: {2}\n    parameters: {{density: 0.3, weight: 0.3, gamma: 0.05}}\nmerge_method: breadcrumbs_ties\n"
      "base_model: {0}\ndtype: float32\nout_dtype: float32\n",
      base, a, b));
  run(crumbs, dir.file("crumbs"));
  expect_mergekit(crumbs, dir.file("crumbs"), 0, "--stable-sort");
}

TEST(Merge, TiesOnBf16ModelsMatchesMergekitAtTheDensityCut) { expect_bf16_cuts_match_mergekit({}); }

// Tensors of many of the methods' inner blocks and past one chunk: the
// index where equal values switch sides of a cut falls inside a block.
TEST(Merge, TiesOnBf16ModelsLargerThanOneChunkMatchMergekitAtTheDensityCut) {
  testing::TinyLlama big;
  big.vocab = 2100;
  big.hidden = 512;  // embed and lm_head: 1,075,200 elements, past the 2^20 chunk
  big.intermediate = 96;
  big.layers = 1;
  expect_bf16_cuts_match_mergekit(big);
}

// TIES of one model onto a zero base keeps the delta where it ranks among
// the top `density` of |delta| (equal values: lower index first, as a stable
// descending sort keeps them) and writes 0 elsewhere. The cut is searched
// from a sample of blocks (every 64th one of 8192 elements) and one pass,
// or, when the sample misleads, by two exact passes; both must give this.
std::vector<float> ties_of_one_model(const std::vector<float>& delta, double density) {
  const MethodInfo& method = find_method("ties");
  MergeTask task;
  task.name = "w";
  task.numel = static_cast<int64_t>(delta.size());
  for (const auto& def : method.global_params) task.params[def.name] = def.default_value.value_or(0);
  const std::vector<float> zeros(delta.size(), 0.0f);
  auto reader = [](const std::vector<float>& values) {
    return [&values](int64_t offset, int64_t count, float* out) {
      std::copy_n(values.begin() + offset, count, out);
    };
  };
  task.inputs.push_back({reader(zeros), {{"weight", 1.0}, {"density", 1.0}}});
  task.inputs.push_back({reader(delta), {{"weight", 1.0}, {"density", density}}});
  task.base = 0;
  std::vector<float> out(delta.size(), std::nanf(""));
  run_merge(method, task, [&](int64_t offset, const float* values, int64_t count) {
    std::copy_n(values, count, out.begin() + offset);
  }, 2);
  return out;
}

std::vector<float> kept_by_stable_sort(const std::vector<float>& delta, double density) {
  std::vector<size_t> order(delta.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::fabs(delta[a]) > std::fabs(delta[b]); });
  std::vector<float> kept(delta.size(), 0.0f);
  const auto keep = static_cast<size_t>(density * static_cast<double>(delta.size()));
  for (size_t i = 0; i < keep; ++i) kept[order[i]] = delta[order[i]];
  return kept;
}

TEST(Merge, TiesCutsAtTheExactRankWhetherTheSampleOfBlocksIsFairOrMisleading) {
  const int64_t n = (int64_t{1} << 21) + 12345;  // past two chunks, a partial block at the end
  const int64_t block = 8192, every = 64;
  // Multiples of 1/64 in (-4, 4): each value is shared by thousands of
  // elements, so ties straddle every cut.
  std::vector<float> fair(static_cast<size_t>(n));
  uint64_t state = 7;
  for (auto& v : fair) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    v = static_cast<float>(static_cast<int64_t>(state >> 33) % 512 - 256) / 64.0f;
  }
  // The sampled blocks hold only small deltas and the rest only large ones:
  // the sample places each cut far below its rank.
  std::vector<float> misleading = fair;
  for (int64_t i = 0; i < n; ++i) {
    float& v = misleading[static_cast<size_t>(i)];
    const bool sampled = (i / block) % every == 0;
    v = sampled ? std::copysign(1.0f / 64, v) : std::copysign(1.0f + std::fabs(v), v);
  }
  for (const auto* delta : {&fair, &misleading}) {
    for (const double density : {0.5, 0.1, 0.97}) {
      const std::vector<float> ours = ties_of_one_model(*delta, density);
      const std::vector<float> expected = kept_by_stable_sort(*delta, density);
      int64_t differ = 0;
      for (size_t i = 0; i < ours.size(); ++i) differ += ours[i] != expected[i];
      EXPECT_EQ(differ, 0) << (delta == &fair ? "fair" : "misleading") << " sample, density " << density;
    }
  }
}

TEST(Merge, OutputIsAnHfModelWithTheExpectedNamesShapesAndFiles) {
  Models m;
  const std::string out = m.dir.file("out");
  // Layer slices: three layers of the base then two of the medical model.
  run(m.config(fmt::format("slices:\n  - sources:\n      - {{model: {0}, layer_range: [0, 3]}}\n"
                           "  - sources:\n      - {{model: {1}, layer_range: [1, 3]}}\n"
                           "merge_method: linear\nparameters: {{weight: 1.0}}\nout_dtype: bfloat16\ntokenizer_source: {1}\n",
                           m.base, m.b)), out);
  const io::HfModel merged(out);
  EXPECT_EQ(merged.config()["num_hidden_layers"], 5);
  EXPECT_EQ(merged.config()["torch_dtype"], "bfloat16");
  const auto q4 = merged.find("model.layers.4.self_attn.q_proj.weight");
  ASSERT_NE(q4.info, nullptr);
  EXPECT_EQ(q4.info->spec.dtype, io::Dtype::kBF16);
  EXPECT_EQ(q4.info->spec.shape, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(merged.tensor_names().size(), 3u + 5u * 9u);
  // Layer 4 of the output is layer 2 of the medical model, converted to bf16.
  const io::HfModel medical(m.b);
  const auto source = medical.find("model.layers.2.self_attn.q_proj.weight");
  std::vector<float> want(256), got(256);
  io::to_f32(io::Dtype::kF32, source.file->data(*source.info), want.data(), 256);
  io::to_f32(io::Dtype::kBF16, q4.file->data(*q4.info), got.data(), 256);
  for (size_t i = 0; i < 256; ++i) EXPECT_NEAR(got[i], want[i], std::fabs(want[i]) * 1e-2);
  EXPECT_EQ(testing::read_file(out + "/tokenizer.model"), "tokenizer of " + m.b);
}

TEST(Merge, ShardsOutputWithAnIndex) {
  Models m;
  MergeOptions o;
  o.config = m.config(fmt::format("models:\n  - model: {}\n    parameters: {{weight: 1}}\nmerge_method: linear\n", m.a));
  o.output = m.dir.file("sharded");
  o.max_shard_size = 8000;
  const MergeReport report = merge_models(o);
  EXPECT_GT(report.shards, 1u);
  const auto index = nlohmann::json::parse(testing::read_file(o.output + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], report.output_bytes);
  EXPECT_EQ(index["weight_map"]["lm_head.weight"], fmt::format("model-{:05d}-of-{:05d}.safetensors", report.shards, report.shards));
  const io::HfModel reread(o.output);
  EXPECT_EQ(reread.tensor_names().size(), 3u + 3u * 9u);
}

// The example configs in tests/merge/configs, as users write them.
TEST(Merge, ExampleConfigsMergeAndLoadBackWithTheExpectedNamesAndShapes) {
  Models m;
  for (const char* name : {"gradient-slerp.yaml", "ties.yaml", "dare-ties.yaml"}) {
    std::string yaml = testing::read_file(std::string(CPT_SOURCE_DIR) + "/tests/merge/configs/" + name);
    for (const auto& [key, value] : std::map<std::string, std::string>{{"${BASE}", m.base}, {"${CHAT}", m.a}, {"${MEDICAL}", m.b}}) {
      for (size_t at; (at = yaml.find(key)) != std::string::npos;) yaml.replace(at, key.size(), value);
    }
    const std::string out = m.dir.file(std::string("out-") + name);
    run(m.config(yaml), out);
    const io::HfModel merged(out);
    const io::HfModel base(m.base);
    EXPECT_EQ(merged.tensor_names(), base.tensor_names()) << name;
    for (const auto& tensor : base.tensor_names()) {
      EXPECT_EQ(merged.find(tensor).info->spec.shape, base.find(tensor).info->spec.shape) << name << " " << tensor;
    }
    const io::Dtype expected = std::string(name) == "ties.yaml" ? io::Dtype::kF16 : io::Dtype::kBF16;
    EXPECT_EQ(merged.find("lm_head.weight").info->spec.dtype, expected) << name;
    // The same file runs unchanged in mergekit. mergekit computes in the
    // config's dtype (bf16, fp16), cpt-train in fp32 before the one rounding
    // to it: a few units in the last place of the output dtype apart. DARE
    // draws its own random drop: names, dtypes and shapes only.
    const std::string config = m.dir.file(std::string("unchanged-") + name);
    std::ofstream(config) << yaml;
    if (std::string(name) == "gradient-slerp.yaml") {
      expect_mergekit(config, out, 3e-2);
    } else {
      // TIES and DARE prune at a density cut that mergekit ranks in fp16:
      // elements near the cut differ from an fp32 ranking.
      expect_mergekit(config, out, 1, "--structure");
    }
    if (std::string(name) == "ties.yaml") {
      // mergekit computing in fp32 and writing fp16, as cpt-train does,
      // gives the same output bit for bit.
      std::string fp32 = yaml;
      fp32.replace(fp32.find("dtype: float16"), 14, "dtype: float32\nout_dtype: float16");
      const std::string fp32_config = m.dir.file("fp32-compute-ties.yaml");
      std::ofstream(fp32_config) << fp32;
      expect_mergekit(fp32_config, out, 0);
    }
  }
}

struct BadMerge {
  const char* name;
  std::string yaml;       // {base} {a} {b} {missing} are substituted
  std::string expected;   // a fragment of the one-line error
};

class BadMergeTest : public ::testing::TestWithParam<BadMerge> {};

TEST_P(BadMergeTest, FailsBeforeWorkAndLeavesNothing) {
  Models m;
  std::string yaml = GetParam().yaml;
  const std::map<std::string, std::string> names = {
      {"{base}", m.base}, {"{a}", m.a}, {"{b}", m.b}, {"{missing}", m.dir.file("missing")}, {"{small}", m.dir.file("small")}};
  testing::TinyLlama small;
  small.hidden = 8;
  testing::write_model(m.dir.file("small"), small, 9, 0.1f);
  for (const auto& [key, value] : names) {
    for (size_t at; (at = yaml.find(key)) != std::string::npos;) yaml.replace(at, key.size(), value);
  }
  const std::string out = m.dir.file("out");
  try {
    run(m.config(yaml), out);
    FAIL() << "merged a bad config";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam().expected), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  for (const auto& entry : std::filesystem::directory_iterator(m.dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find("out.partial"), std::string::npos);
  }
}

void PrintTo(const BadMerge& c, std::ostream* out) { *out << c.name; }

INSTANTIATE_TEST_SUITE_P(
    Table, BadMergeTest,
    ::testing::Values(
        BadMerge{"missing_model_dir", "models:\n  - model: {missing}\n    parameters: {weight: 1}\nmerge_method: linear\n",
                 "model directory '"},
        BadMerge{"shape_mismatch",
                 "models:\n  - model: {a}\n    parameters: {weight: 1}\n  - model: {small}\n    parameters: {weight: 1}\n"
                 "merge_method: linear\n",
                 "shape mismatch for 'model.embed_tokens.weight': [50,16] in "},
        BadMerge{"t_outside_range", "models:\n  - model: {base}\n  - model: {a}\nmerge_method: slerp\nbase_model: {base}\n"
                                    "parameters: {t: 1.5}\n",
                 "parameter t = 1.5 for model.embed_tokens.weight is invalid; it must be in [0, 1]"},
        BadMerge{"zero_density", "models:\n  - model: {base}\n  - model: {a}\n    parameters: {weight: 1, density: 0}\n"
                                 "merge_method: ties\nbase_model: {base}\n",
                 "parameter density = 0 for model.embed_tokens.weight of '"},
        BadMerge{"unknown_method", "models:\n  - model: {a}\nmerge_method: tie\n",
                 "merge_method 'tie' is not supported; supported: linear, slerp, task_arithmetic, ties, dare_ties, "
                 "dare_linear, breadcrumbs, breadcrumbs_ties, model_stock (did you mean 'ties'?)"},
        BadMerge{"unknown_key", "models:\n  - model: {a}\nmerge_method: linear\nmerge_methd: x\n",
                 ":4: merge_methd: unknown key; did you mean 'merge_method'? Supported keys: merge_method, models, slices"},
        BadMerge{"union_tokenizer", "models:\n  - model: {a}\nmerge_method: linear\ntokenizer_source: union\n",
                 "'union' (merging vocabularies) is not supported"},
        BadMerge{"missing_weight", "models:\n  - model: {base}\n  - model: {a}\nmerge_method: ties\nbase_model: {base}\n",
                 "needs parameter 'weight' for model.embed_tokens.weight (merge_method ties)"},
        BadMerge{"slerp_needs_two", "models:\n  - model: {base}\n  - model: {a}\n  - model: {b}\nmerge_method: slerp\n"
                                    "base_model: {base}\nparameters: {t: 0.5}\n",
                 "merge_method slerp takes exactly 2 models including the base; this merge has 3"},
        BadMerge{"models_and_slices", "models:\n  - model: {a}\nslices:\n  - sources: [{model: {a}, layer_range: [0, 1]}]\n"
                                      "merge_method: linear\n",
                 "give exactly one of models or slices"},
        BadMerge{"misspelt_parameter",
                 "models:\n  - model: {base}\n  - model: {a}\n    parameters: {weight: 1, densty: 0.5}\n"
                 "merge_method: ties\nbase_model: {base}\n",
                 "is not one merge_method ties takes; did you mean 'density'?"},
        BadMerge{"misspelt_global_parameter",
                 "models:\n  - model: {base}\n  - model: {a}\nmerge_method: slerp\nbase_model: {base}\n"
                 "parameters: {t: 0.5, normalise: true}\n",
                 "parameter 'normalise' is not one merge_method slerp takes (it takes: t)"},
        BadMerge{"linear_weights_all_zero",
                 "models:\n  - model: {a}\n    parameters: {weight: 0}\n  - model: {b}\n    parameters: {weight: 0}\n"
                 "merge_method: linear\n",
                 "every linear weight of 'model.embed_tokens.weight' is 0; the merged tensor would be all zeros"},
        BadMerge{"layer_range_past_end", "slices:\n  - sources: [{model: {a}, layer_range: [0, 9]}]\nmerge_method: linear\n"
                                         "parameters: {weight: 1}\n",
                 "layer_range [0, 9] of '"},
        BadMerge{"layer_range_past_any_model", "slices:\n  - sources: [{model: {a}, layer_range: [0, 3.4e29]}]\n"
                                               "merge_method: linear\nparameters: {weight: 1}\n",
                 "is not a range of whole layers with begin < end"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Merge, RefusesToWriteIntoAnInputOrOverAnExistingDirectory) {
  Models m;
  const std::string config = m.config(fmt::format("models:\n  - model: {}\n    parameters: {{weight: 1}}\nmerge_method: linear\n", m.a));
  EXPECT_THROW(run(config, m.a), InputError);
  EXPECT_THROW(run(config, m.a + "/merged"), InputError);
  m.dir.write("taken/keep.txt", "precious");
  EXPECT_THROW(run(config, m.dir.file("taken")), InputError);
  EXPECT_EQ(testing::read_file(m.dir.file("taken/keep.txt")), "precious");
}

// A model path may be a run directory or checkpoints/latest: the latest
// checkpoint, resolved once when the config is read.
TEST(MergeConfigPaths, ARunDirectoryMeansItsLatestCheckpoint) {
  testing::TempDir dir;
  for (const char* run : {"cpt", "chat"}) {
    std::filesystem::create_directories(dir.file(std::string(run) + "/checkpoints/step-00000040"));
    dir.write(std::string(run) + "/checkpoints/step-00000040/config.json", "{}");
    dir.write(std::string(run) + "/checkpoints/latest", "step-00000040\n");
  }
  const std::string config = dir.write("slerp.yaml", fmt::format(R"(merge_method: slerp
base_model: {0}/chat/checkpoints/latest
models:
  - model: {0}/cpt
  - model: {0}/chat/checkpoints/latest
parameters: {{t: 0.5}}
)", dir.path()));
  const MergeConfig c = load_merge_config(config);
  EXPECT_EQ(c.base_model, dir.file("chat/checkpoints/step-00000040"));
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].model, dir.file("cpt/checkpoints/step-00000040"));
  EXPECT_EQ(c.models[1].model, c.base_model) << "the same checkpoint, so slerp finds its base among the models";
}

}  // namespace
}  // namespace cpt::merge
