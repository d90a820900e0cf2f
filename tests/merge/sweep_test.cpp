// The merge sweep's pure parts: which models t moves between, the config at
// each t, the grid, the --pick rule, and the in-memory merge the sweep
// scores (the values merge_models writes, bit for bit).

#include "cpt/merge/sweep.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "cpt/common/error.h"
#include "cpt/io/hf_model.h"
#include "cpt/merge/merge.h"
#include "support/hf_models.h"
#include "support/temp_dir.h"

namespace cpt::merge {
namespace {

struct TwoModels {
  testing::TempDir dir;
  std::string base = dir.file("base"), cpt = dir.file("cpt"), chat = dir.file("chat");
  explicit TwoModels(io::Dtype dtype = io::Dtype::kBF16) {
    testing::write_model(base, {}, 1, 0.0f, dtype);
    testing::write_model(cpt, {}, 2, 0.5f, dtype);
    testing::write_model(chat, {}, 3, 0.5f, dtype);
  }
  MergeConfig load(const std::string& yaml) {
    return load_merge_config(dir.write(fmt::format("merge-{}.yaml", ++count), yaml));
  }
  int count = 0;
};

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

// Every tensor of the merge in memory, by name.
std::map<std::string, std::vector<float>> merged_in_memory(const MergeConfig& config) {
  std::map<std::string, std::vector<float>> out;
  MergeOptions options;
  options.threads = 2;
  merge_into(config, options, [&](const io::TensorSpec& spec) {
    auto& values = out[spec.name];
    values.assign(static_cast<size_t>(spec.numel()), std::nanf(""));
    return values.data();
  });
  return out;
}

// Every tensor of a model directory as fp32.
std::map<std::string, std::vector<float>> read_model(const std::string& dir) {
  std::map<std::string, std::vector<float>> out;
  const io::HfModel model(dir);
  for (const auto& name : model.tensor_names()) {
    const io::HfModel::Tensor t = model.find(name);
    auto& values = out[name];
    values.resize(static_cast<size_t>(t.info->spec.numel()));
    io::to_f32(t.info->spec.dtype, t.file->data(*t.info), values.data(), values.size());
  }
  return out;
}

TEST(MergeSweep, TMovesFromTheBaseModelToTheOther) {
  TwoModels m;
  const MixingAxis slerp = mixing_axis(m.load(fmt::format(
      "merge_method: slerp\nbase_model: {0}\nmodels:\n  - model: {1}\n  - model: {0}\nparameters: {{t: 0.5}}\n", m.base, m.cpt)));
  EXPECT_EQ(slerp.start, m.base);
  EXPECT_EQ(slerp.end, m.cpt);
  // linear has no base: the first model listed is t = 0.
  const MixingAxis linear = mixing_axis(m.load(fmt::format(
      "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1}}\n  - model: {}\n    parameters: {{weight: 1}}\n",
      m.chat, m.cpt)));
  EXPECT_EQ(linear.start, m.chat);
  EXPECT_EQ(linear.end, m.cpt);
  const MixingAxis task = mixing_axis(m.load(fmt::format(
      "merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 0.7}}\n", m.base, m.cpt)));
  EXPECT_EQ(task.start, m.base);
  EXPECT_EQ(task.end, m.cpt);

  EXPECT_NE(error_of([&] {
              mixing_axis(m.load(fmt::format("merge_method: ties\nbase_model: {}\nmodels:\n  - model: {}\n"
                                             "    parameters: {{weight: 1, density: 0.5}}\n",
                                             m.base, m.cpt)));
            }).find("merge_method ties does not have; use slerp, linear, task_arithmetic"),
            std::string::npos);
  const std::string three = error_of([&] {
    mixing_axis(m.load(fmt::format("merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1}}\n"
                                   "  - model: {}\n    parameters: {{weight: 1}}\n  - model: {}\n    parameters: {{weight: 1}}\n",
                                   m.base, m.cpt, m.chat)));
  });
  EXPECT_NE(three.find("mixes exactly two models; this merge has 3"), std::string::npos) << three;
}

// What the sweep scores at t is what merge writes at t, bit for bit,
// whatever t the file itself sets, at every level; and the ends are the
// two models themselves.
TEST(MergeSweep, EachPointIsTheMergeWrittenAtThatT) {
  TwoModels m;
  const std::vector<std::string> configs = {
      // A gradient t and a per-model t, both replaced by the sweep's.
      fmt::format("merge_method: slerp\nbase_model: {0}\nslices:\n  - sources:\n      - model: {0}\n        layer_range: [0, 3]\n"
                  "      - model: {1}\n        layer_range: [0, 3]\n        parameters: {{t: 0.9}}\nparameters:\n  t: [0, 0.5, 1]\n",
                  m.base, m.cpt),
      fmt::format("merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 3}}\n  - model: {}\n"
                  "    parameters: {{weight: 1}}\nparameters: {{normalize: false}}\n",
                  m.base, m.cpt),
      fmt::format("merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 0.2}}\n"
                  "parameters: {{lambda: 2}}\n",
                  m.base, m.cpt)};
  const auto base = read_model(m.base), cpt = read_model(m.cpt);
  for (const auto& yaml : configs) {
    const MergeConfig config = m.load(yaml);
    const MixingAxis axis = mixing_axis(config);
    for (double t : {0.0, 0.3, 1.0}) {
      const MergeConfig at = at_mixing(config, axis, t);
      const auto in_memory = merged_in_memory(at);
      // The same merge written by merge_models, from a file that says t plainly.
      std::string plain;
      if (axis.method == "slerp") {
        plain = fmt::format("merge_method: slerp\nbase_model: {0}\nmodels:\n  - model: {0}\n  - model: {1}\nparameters: {{t: {2}}}\n",
                            m.base, m.cpt, t);
      } else if (axis.method == "linear") {
        plain = fmt::format("merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: {}}}\n  - model: {}\n"
                            "    parameters: {{weight: {}}}\n",
                            m.base, 1 - t, m.cpt, t);
      } else {
        plain = fmt::format("merge_method: task_arithmetic\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: {}}}\n",
                            m.base, m.cpt, t);
      }
      MergeOptions options;
      options.config = m.dir.write(fmt::format("plain-{}.yaml", ++m.count), plain);
      options.output = m.dir.file(fmt::format("written-{}", m.count));
      options.threads = 2;
      merge_models(options);
      const auto written = read_model(options.output);
      ASSERT_EQ(in_memory.size(), written.size());
      for (const auto& [name, values] : written) {
        ASSERT_EQ(std::memcmp(in_memory.at(name).data(), values.data(), values.size() * sizeof(float)), 0)
            << axis.method << " t = " << t << ": " << name;
      }
      if (t == 0) {
        EXPECT_EQ(in_memory, base) << axis.method << ": t = 0 is the base model";
      }
      // base + 1 * (cpt - base) rounds in fp32 to cpt: exact for bf16 inputs.
      if (t == 1) {
        EXPECT_EQ(in_memory, cpt) << axis.method << ": t = 1 is the other model";
      }
    }
  }
}

TEST(MergeSweep, GridIsAscendingValuesInTheUnitInterval) {
  EXPECT_EQ(default_grid(), (std::vector<double>{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}));
  EXPECT_EQ(parse_grid("0, 0.25,0.5 ,1"), (std::vector<double>{0, 0.25, 0.5, 1}));
  EXPECT_NE(error_of([] { parse_grid("0,1.5"); }).find("1.5 is outside [0, 1]"), std::string::npos);
  EXPECT_NE(error_of([] { parse_grid("0.5,0.2"); }).find("0.2 does not follow 0.5"), std::string::npos);
  EXPECT_NE(error_of([] { parse_grid("0,half"); }).find("'half' is not a number"), std::string::npos);
  EXPECT_NE(error_of([] { parse_grid("0,,1"); }).find("'' is not a number"), std::string::npos);
}

std::vector<SweepPoint> points(const std::vector<std::tuple<double, double, double>>& rows) {
  std::vector<SweepPoint> out;
  for (const auto& [t, general, domain] : rows) out.push_back({t, {{"general", general}, {"domain", domain}}});
  return out;
}

TEST(MergeSweep, PickTakesTheLowestDomainLossWithinTheBound) {
  const std::vector<std::string> sets = {"domain", "general"};
  const auto sweep = points({{0, 2.00, 3.0}, {0.25, 2.01, 2.6}, {0.5, 2.019, 2.4}, {0.75, 2.05, 2.2}, {1, 2.10, 2.1}});
  const PickRule rule = parse_pick("general <= base + 1%", sets, "");
  EXPECT_EQ(rule.minimize, "domain");
  ASSERT_EQ(rule.bounds.size(), 1u);
  EXPECT_DOUBLE_EQ(rule.bounds[0].limit(sweep[0]), 2.02);
  EXPECT_EQ(rule.bounds[0].describe(sweep[0]), "general <= 2.0200 (base 2.0000 + 1%)");
  EXPECT_EQ(pick(sweep, rule), 2u);
  EXPECT_EQ(pick(sweep, parse_pick("general <= base + 0.06", sets, "")), 3u);
  EXPECT_EQ(pick(sweep, parse_pick("general<=2.2", sets, "")), 4u);
  EXPECT_EQ(pick(sweep, parse_pick("general <= base", sets, "")), 0u);
  EXPECT_EQ(pick(sweep, parse_pick("general <= 1.5", sets, "")), std::nullopt);
  // Two bounds, and which loss to minimize said outright.
  const PickRule both = parse_pick("general <= base + 1% and domain <= 2.5", sets, "general");
  EXPECT_EQ(both.minimize, "general");
  EXPECT_EQ(pick(sweep, both), 2u);
  // A tie goes to the lower t: closer to the base.
  EXPECT_EQ(pick(points({{0, 2.0, 3.0}, {0.5, 2.0, 2.5}, {1, 2.0, 2.5}}), rule), 1u);
}

TEST(MergeSweep, PickRuleErrorsNameWhatIsWrong) {
  const std::vector<std::string> sets = {"domain", "general"};
  EXPECT_NE(error_of([&] { parse_pick("generl <= base + 1%", sets, ""); })
                .find("'generl' is not an eval set of the run; did you mean 'general'? (its sets: domain, general)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_pick("general < base", sets, ""); }).find("cannot read 'general < base'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_pick("general <= base + 1% and domain <= base", sets, ""); })
                .find("leaves 0 eval sets unbounded (none); say which loss to minimize with --minimize SET"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_pick("general <= base", {"a", "b", "general"}, ""); })
                .find("leaves 2 eval sets unbounded (a, b)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_pick("general <= base", sets, "domian"); }).find("--minimize 'domian'"),
            std::string::npos);
  // The base is needed and was not evaluated.
  EXPECT_NE(error_of([&] { pick(points({{0.5, 2.0, 2.0}}), parse_pick("general <= base", sets, "")); })
                .find("t = 0 was not evaluated"),
            std::string::npos);
}

}  // namespace
}  // namespace cpt::merge
