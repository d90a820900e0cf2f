// The train step against torch's AdamW, and whole runs of the
// binary: resume after kill -9, preemption by SIGTERM, bad inputs.

#include "cpt/train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include "cpt/backend/autocast.h"
#include "cpt/dist/env.h"
#include "cpt/io/hf_checkpoint.h"
#include "cpt/io/safetensors.h"
#include "cpt/train/inference.h"
#include "support/datasets.h"
#include "support/small_run.h"
#include "support/python.h"
#include "support/run_command.h"
#include "support/shapes.h"
#include "support/temp_dir.h"
#include "support/test_tokenizer.h"

namespace cpt::train {
namespace {

using testing::losses;
using testing::SmallRun;


TEST(TrainStep, MatchesTorchAdamWWithClippingStepByStep) {
  ASSERT_TRUE(testing::python_has("torch"));
  testing::TempDir dir;
  model::Llama init(testing::small_gqa_shape());
  init->init_weights(11);
  io::save_hf_weights(*init, testing::small_gqa_shape(), dir.path(), io::Dtype::kF32, 5'000'000'000);

  model::Llama llama(testing::small_gqa_shape());
  io::load_hf_weights(*llama, dir.path());
  NamedTensors parameters;
  for (auto& p : llama->named_parameters()) parameters.emplace_back(p.key(), p.value());
  OptimizerConfig config;
  config.betas = {0.9, 0.95};
  config.eps = 1e-8;
  config.weight_decay = 0.1;
  config.grad_clip = 0.5;  // low enough that clipping acts
  const auto group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
  DataParallel replicas(*group, parameters, /*zero1=*/true, 1 << 20);
  AdamW optimizer(replicas.owned_slices(), config);

  torch::manual_seed(5);
  nlohmann::json spec = {{"lrs", {1e-3, 3e-3, 3e-3, 2e-3, 1e-3}}, {"betas", {0.9, 0.95}}, {"eps", 1e-8},
                         {"weight_decay", 0.1}, {"grad_clip", 0.5}, {"micro_batches", nlohmann::json::array()}};
  std::vector<data::TorchBatch> batches(2);
  for (auto& b : batches) {
    b.tokens = torch::randint(0, 101, {2, 16}, torch::kLong);
    b.targets = torch::randint(0, 101, {2, 16}, torch::kLong);
    auto rows = [](const torch::Tensor& t) {
      std::vector<std::vector<int64_t>> out;
      for (int64_t r = 0; r < t.size(0); ++r) out.emplace_back(t[r].data_ptr<int64_t>(), t[r].data_ptr<int64_t>() + t.size(1));
      return out;
    };
    spec["micro_batches"].push_back({{"tokens", rows(b.tokens)}, {"targets", rows(b.targets)}});
  }
  std::vector<StepResult> ours;
  for (double lr : spec["lrs"]) ours.push_back(train_step(llama, optimizer, replicas, batches, {lr, 0.5}));

  const std::string spec_path = dir.write("spec.json", spec.dump());
  const testing::CommandResult r = testing::run_command(fmt::format(
      CPT_PYTHON " {}/tests/train/adamw_reference.py {} {}", CPT_SOURCE_DIR, dir.path(), spec_path));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto reference = nlohmann::json::parse(r.out);
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_NEAR(ours[i].loss, reference["losses"][i].get<double>(), 1e-4) << "step " << i + 1;
    EXPECT_NEAR(ours[i].grad_norm, reference["grad_norms"][i].get<double>(), 1e-4 * reference["grad_norms"][i].get<double>())
        << "step " << i + 1;
  }
  EXPECT_GT(ours.front().grad_norm, 0.5) << "clipping was exercised";
  EXPECT_LT(ours.back().loss, ours.front().loss);
}

// train.precision bf16 as Megatron does it: the model computes with bf16
// parameters that are, after every step, exactly the cast of the
// optimizer's fp32 master weights; a non-finite step changes neither.
TEST(TrainStep, Bf16ParametersAreTheCastOfTheFp32MasterWeights) {
  model::Llama llama(testing::small_gqa_shape());
  llama->init_weights(11);
  NamedTensors parameters;
  std::map<std::string, torch::Tensor> initial;
  for (auto& p : llama->named_parameters()) {
    parameters.emplace_back(p.key(), p.value());
    initial[p.key()] = p.value().detach().clone();
  }
  const auto group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
  DataParallel replicas(*group, parameters, /*zero1=*/true, 1 << 12, torch::kBFloat16);
  AdamW optimizer(replicas.owned_slices(), OptimizerConfig{});
  for (const auto& [name, p] : parameters) EXPECT_EQ(p.scalar_type(), torch::kBFloat16) << name;
  // One host process: the one-pass update, from the bf16 gradients, with no fp32 main gradients.
  for (const auto& slice : replicas.owned_slices()) {
    EXPECT_TRUE(slice.publish.defined()) << slice.name;
    EXPECT_EQ(slice.grad.scalar_type(), torch::kBFloat16) << slice.name;
  }
  for (const auto& [name, master] : replicas.full_master_weights()) {
    EXPECT_EQ(master.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(master, initial.at(name))) << name << ": the master starts from the fp32 values";
  }
  torch::manual_seed(5);
  std::vector<data::TorchBatch> batches(2);
  for (auto& b : batches) {
    b.tokens = torch::randint(0, 101, {2, 16}, torch::kLong);
    b.targets = torch::randint(0, 101, {2, 16}, torch::kLong);
  }
  double first_loss = 0;
  for (int step = 0; step < 3; ++step) {
    const StepResult r = train_step(llama, optimizer, replicas, batches, {1e-2, 1.0});
    ASSERT_TRUE(r.finite);
    if (step == 0) first_loss = r.loss;
    const NamedTensors masters = replicas.full_master_weights();
    int64_t beyond_bf16 = 0;
    for (size_t i = 0; i < masters.size(); ++i) {
      EXPECT_TRUE(torch::equal(parameters[i].second, masters[i].second.to(torch::kBFloat16))) << masters[i].first;
      beyond_bf16 += masters[i].second.ne(parameters[i].second.to(torch::kFloat)).sum().item<int64_t>();
    }
    EXPECT_GT(beyond_bf16, 0) << "the master keeps what bf16 cannot";
  }
  EXPECT_EQ(optimizer.steps(), 3);

  // An infinite weight makes the loss non-finite: the fused kernel skips the
  // update on the device, and the parameters stay the cast of the master.
  NamedTensors poisoned;
  for (const auto& [name, master] : replicas.full_master_weights()) poisoned.emplace_back(name, master.clone());
  poisoned.back().second.view({-1})[0] = std::numeric_limits<float>::infinity();
  replicas.load_master_weights(poisoned);
  const StepResult bad = train_step(llama, optimizer, replicas, batches, {1e-2, 1.0});
  EXPECT_FALSE(bad.finite);
  EXPECT_EQ(optimizer.steps(), 3);
  const NamedTensors after = replicas.full_master_weights();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(torch::equal(after[i].second, poisoned[i].second)) << after[i].first << " was not updated";
  }
  EXPECT_GT(first_loss, 0);
}

// In fp32 and with bf16 parameters, and with bf16 model files
// (checkpoint.dtype bf16): the checkpoint holds the fp32 master weights
// and moments, so the resumed run is the same bit for bit.
TEST(Training, ResumeAfterKill9IsBitIdentical) {
  SmallRun run;
  for (const std::string precision : {"fp32", "bf16", "bf16-files"}) {
    const bool bf16_files = precision == "bf16-files";
    const std::string flags = bf16_files ? "--set train.precision=bf16 --set checkpoint.dtype=bf16"
                                         : "--set train.precision=" + precision;
    const std::string straight = run.dir.file("straight-" + precision), killed = run.dir.file("killed-" + precision);
    const auto a = run.train(straight, flags);
    ASSERT_EQ(a.exit_code, 0) << a.err;
    const auto b = run.train(killed, flags, "CPT_TEST_RAISE_AT_STEP=13:KILL");
    EXPECT_NE(b.exit_code, 0) << "killed at step 13";
    EXPECT_EQ(testing::read_file(killed + "/checkpoints/latest"), "step-00000010\n");
    const auto c = run.train(killed, flags + " --resume auto");
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_NE(c.err.find("resumed from"), std::string::npos) << c.err;
    const auto want = losses(straight + "/metrics.jsonl");
    EXPECT_EQ(want.size(), 20u);
    EXPECT_EQ(losses(killed + "/metrics.jsonl"), want) << precision;
    EXPECT_EQ(testing::read_file(killed + "/checkpoints/step-00000020/model.safetensors"),
              testing::read_file(straight + "/checkpoints/step-00000020/model.safetensors"))
        << precision;
    EXPECT_EQ(testing::read_file(killed + "/checkpoints/step-00000020/trainer_state/optimizer.safetensors"),
              testing::read_file(straight + "/checkpoints/step-00000020/trainer_state/optimizer.safetensors"))
        << precision;
    EXPECT_FALSE(std::filesystem::exists(straight + "/checkpoints/step-00000010")) << "keep_last: 2";
    // The checkpoint is a Hugging Face model directory.
    const auto config = nlohmann::json::parse(testing::read_file(straight + "/checkpoints/step-00000020/config.json"));
    EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
    EXPECT_EQ(config["num_key_value_heads"], 2);
    EXPECT_EQ(config["torch_dtype"], bf16_files ? "bfloat16" : "float32");
    const io::SafetensorsFile weights(straight + "/checkpoints/step-00000020/model.safetensors");
    EXPECT_EQ(weights.tensors().front().spec.dtype, bf16_files ? io::Dtype::kBF16 : io::Dtype::kF32);
    EXPECT_EQ(std::filesystem::exists(straight + "/checkpoints/step-00000020/trainer_state/master/model.safetensors"),
              bf16_files);
  }
}

TEST(Training, SigtermSavesAndExits75ThenResumes) {
  SmallRun run;
  const std::string out = run.dir.file("preempted");
  const auto a = run.train(out, "", "CPT_TEST_RAISE_AT_STEP=7:TERM");
  EXPECT_EQ(a.exit_code, 75) << a.err;
  EXPECT_EQ(testing::read_file(out + "/checkpoints/latest"), "step-00000007\n");
  const auto b = run.train(out, "--resume auto");
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_TRUE(std::filesystem::exists(out + "/checkpoints/step-00000020"));
}

TEST(Training, DocumentMaskingTrainsAndDiffersFromPlainCausal) {
  SmallRun run;
  ASSERT_EQ(run.train(run.dir.file("plain"), "--set train.steps=3").exit_code, 0);
  const auto masked = run.train(run.dir.file("masked"), "--set train.steps=3 --set train.document_mask=true");
  ASSERT_EQ(masked.exit_code, 0) << masked.err;
  EXPECT_NE(losses(run.dir.file("masked/metrics.jsonl")).at(3), losses(run.dir.file("plain/metrics.jsonl")).at(3));
}

TEST(Training, EvalReadsTheCheckpoint) {
  SmallRun run;
  const std::string out = run.dir.file("out");
  ASSERT_EQ(run.train(out, "--set train.steps=5").exit_code, 0);
  const std::string checkpoint = out + "/checkpoints/step-00000005";
  const auto eval = testing::run_command(fmt::format("{} eval --checkpoint {} --prefix {} --seq-len 16 --json", CPT_BINARY,
                                                     checkpoint, run.dir.file("heldout")));
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  const auto json = nlohmann::json::parse(eval.out);
  EXPECT_EQ(json["seq_len"], 16);
  EXPECT_GT(json["windows"].get<int64_t>(), 50);
  EXPECT_NEAR(json["ppl"].get<double>(), std::exp(json["loss"].get<double>()), 1e-6 * json["ppl"].get<double>());
  EXPECT_LT(json["loss"].get<double>(), std::log(256.0) + 0.5) << "near uniform over 256 tokens after 5 steps";
  const auto missing = testing::run_command(fmt::format("{} eval --checkpoint {} --prefix {}", CPT_BINARY,
                                                        run.dir.file("nothing"), run.dir.file("heldout")));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nothing/config.json"), std::string::npos) << missing.err;
  // Windows longer than the model's context are refused, as training refuses them.
  const auto too_long = testing::run_command(fmt::format("{} eval --checkpoint {} --prefix {} --seq-len 1000000",
                                                         CPT_BINARY, checkpoint, run.dir.file("heldout")));
  EXPECT_EQ(too_long.exit_code, 2);
  EXPECT_NE(too_long.err.find("--seq-len 1000000 is longer than the model's context of"), std::string::npos)
      << too_long.err;
  // Another tokenizer's ids would be scored as garbage: refused, as generate refuses them.
  const std::string text = run.dir.write("text.jsonl", "{\"text\": \"A compiler translates source code.\"}\n");
  const auto other = testing::run_command(fmt::format("{} eval --checkpoint {} --tokenizer {} --input {}", CPT_BINARY,
                                                      checkpoint, testing::test_tokenizer().model, text));
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("has 2000 pieces but the model's vocabulary is 256"), std::string::npos) << other.err;
}

TEST(Generate, GreedyIsTheArgmaxAndSamplingFollowsTheSeed) {
  model::Llama llama(testing::small_gqa_shape());
  llama->init_weights(2);
  SamplingOptions greedy;
  greedy.max_new_tokens = 6;
  greedy.temperature = 0;
  const auto a = generate(llama, {1, 5, 9}, greedy);
  ASSERT_EQ(a.size(), 9u);
  {
    torch::NoGradGuard no_grad;
    const auto logits = llama->forward(torch::tensor(std::vector<int64_t>(a.begin(), a.begin() + 3)).view({1, 3}));
    EXPECT_EQ(logits[0][-1].argmax().item<int64_t>(), a[3]);
  }
  SamplingOptions sample;
  sample.max_new_tokens = 12;
  sample.temperature = 1.5;
  sample.top_p = 0.9;
  sample.seed = 4;
  const auto b = generate(llama, {1, 5, 9}, sample), c = generate(llama, {1, 5, 9}, sample);
  EXPECT_EQ(b, c);
  sample.seed = 5;
  EXPECT_NE(generate(llama, {1, 5, 9}, sample), b);
}

TEST(Generate, SaysWhyItStopped) {
  model::Llama llama(testing::small_gqa_shape());
  llama->init_weights(2);
  SamplingOptions greedy;
  greedy.max_new_tokens = 6;
  greedy.temperature = 0;
  StopReason stopped{};
  const auto all = generate(llama, {1, 5, 9}, greedy, &stopped);
  EXPECT_EQ(stopped, StopReason::kMaxNewTokens);
  greedy.stop_token = all[4];  // the second new token
  EXPECT_EQ(generate(llama, {1, 5, 9}, greedy, &stopped).size(), 5u);
  EXPECT_EQ(stopped, StopReason::kStopToken);
  greedy.stop_token = -1;
  const std::vector<int64_t> long_prompt(62, 7);  // the context is 64
  EXPECT_EQ(generate(llama, long_prompt, greedy, &stopped).size(), 64u);
  EXPECT_EQ(stopped, StopReason::kContextFull);
}

TEST(Generate, APromptLongerThanTheContextIsRefusedOrTruncatedWithAWarning) {
  testing::TempDir dir;
  model::Shape shape = testing::small_gqa_shape();
  shape.vocab_size = 2000;  // the test tokenizer's
  model::Llama llama(shape);
  llama->init_weights(3);
  io::save_hf_weights(*llama, shape, dir.path(), io::Dtype::kF32, 5'000'000'000);
  std::filesystem::copy_file(testing::test_tokenizer().model, dir.file("tokenizer.model"));
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "compiler source ";
  const std::string command = fmt::format("{} generate --checkpoint {} --temperature 0 --max-new-tokens 5 --prompt '{}'",
                                          CPT_BINARY, dir.path(), prompt);
  const auto refused = testing::run_command(command);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("and the model's context is 64: nothing can be generated; shorten it, or pass "
                             "--truncate-prompt to keep its last 63 tokens"),
            std::string::npos)
      << refused.err;
  const auto truncated = testing::run_command(command + " --truncate-prompt");
  EXPECT_EQ(truncated.exit_code, 0) << truncated.err;
  EXPECT_NE(truncated.err.find("--truncate-prompt: dropped the first"), std::string::npos) << truncated.err;
  EXPECT_NE(truncated.err.find("generated 1 tokens after a 63-token prompt; stopped: the model's context "
                               "(max_position_embeddings) is full"),
            std::string::npos)
      << truncated.err;
  const auto short_prompt = testing::run_command(fmt::format(
      "{} generate --checkpoint {} --temperature 0 --max-new-tokens 3 --prompt 'a compiler'", CPT_BINARY, dir.path()));
  EXPECT_EQ(short_prompt.exit_code, 0) << short_prompt.err;
  EXPECT_NE(short_prompt.err.find("stopped: --max-new-tokens reached"), std::string::npos) << short_prompt.err;
}

// eval's progress line hears every batch once, ending at the total.
TEST(Evaluate, ProgressHearsEveryBatchUpToTheTotal) {
  testing::TempDir dir;
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < 30; ++d) docs.push_back(std::vector<int32_t>(static_cast<size_t>(10 + d), 3 + d % 90));
  testing::write_dataset(dir.file("held"), docs);
  const data::SourceSamples samples("held", std::make_shared<const data::IndexedDataset>(dir.file("held")), 16, 0, false);
  model::Llama llama(testing::small_gqa_shape());
  llama->init_weights(4);
  const auto group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
  const auto device = backend::select_backend("cpu", 0);
  for (const int64_t max_batches : {int64_t{0}, int64_t{3}}) {
    std::vector<std::pair<int64_t, int64_t>> heard;
    const auto r = evaluate_windows(llama, samples, 4, max_batches, *group, *device,
                                    [&](int64_t done, int64_t total) { heard.emplace_back(done, total); });
    const int64_t total = max_batches > 0 ? 12 : samples.samples_per_epoch();
    ASSERT_EQ(r.windows, total);
    ASSERT_EQ(static_cast<int64_t>(heard.size()), (total + 3) / 4) << "one call per batch";
    for (size_t i = 0; i < heard.size(); ++i) {
      EXPECT_EQ(heard[i].second, total);
      EXPECT_EQ(heard[i].first, std::min<int64_t>(total, 4 * static_cast<int64_t>(i + 1)));
    }
  }
}

TEST(Training, BadInputsExitTwoWithOneLine) {
  SmallRun run;
  // Checkpoints already there and --resume none: refuse rather than overwrite.
  ASSERT_EQ(run.train(run.dir.file("once"), "--set train.steps=5").exit_code, 0);
  const auto again = run.train(run.dir.file("once"), "--set train.steps=5 --resume none");
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already holds checkpoints"), std::string::npos) << again.err;
  // init_from with a wrong shape, and with a corrupt header.
  const std::string base = run.dir.file("once/checkpoints/step-00000005");
  const auto shape = run.train(run.dir.file("wider"), fmt::format("--set model.init_from={} --set model.hidden_size=128", base));
  EXPECT_EQ(shape.exit_code, 2);
  EXPECT_NE(shape.err.find("model.hidden_size: 128 disagrees with"), std::string::npos) << shape.err;
  std::filesystem::copy(base, run.dir.file("corrupt"), std::filesystem::copy_options::recursive);
  std::filesystem::resize_file(run.dir.file("corrupt/model.safetensors"), 100);
  const auto corrupt = run.train(run.dir.file("c"), "--set model.init_from=" + run.dir.file("corrupt"));
  EXPECT_EQ(corrupt.exit_code, 2);
  EXPECT_NE(corrupt.err.find("corrupt/model.safetensors"), std::string::npos) << corrupt.err;
  // A tokenizer whose vocabulary is not the model's.
  const auto vocab = run.train(run.dir.file("v"), "--set tokenizer=" + testing::test_tokenizer().model);
  EXPECT_EQ(vocab.exit_code, 2);
  EXPECT_NE(vocab.err.find("has 2000 pieces but model.vocab_size is 256; they must match"), std::string::npos) << vocab.err;
  // An accelerator this build or machine lacks is refused, not run on the CPU.
  const auto cuda = run.train(run.dir.file("gpu"), "--set backend=cuda");
  EXPECT_EQ(cuda.exit_code, 2);
  EXPECT_NE(cuda.err.find("backend cuda is not available: no CUDA device"), std::string::npos)
      << cuda.err;
  EXPECT_NE(cuda.err.find("; available here: cpu"), std::string::npos) << cuda.err;
  const auto neuron = run.train(run.dir.file("trn"), "--set backend=neuron");
  EXPECT_EQ(neuron.exit_code, 2);
  EXPECT_NE(neuron.err.find("backend neuron is not available: the Neuron runtime libnrt.so.1 is not installed"),
            std::string::npos)
      << neuron.err;
  // An output directory that cannot be created.
  run.dir.write("file", "x");
  const auto unwritable = run.train(run.dir.file("file/out"));
  EXPECT_EQ(unwritable.exit_code, 2);
  EXPECT_NE(unwritable.err.find("run.output_dir"), std::string::npos) << unwritable.err;
}

TEST(Training, Bf16ParametersTrainFp32MasterWeights) {
  SmallRun run;
  const auto fp32 = run.train(run.dir.file("fp32"), "--set train.steps=6");
  ASSERT_EQ(fp32.exit_code, 0) << fp32.err;
  const auto bf16 = run.train(run.dir.file("bf16"), "--set train.steps=6 --set train.precision=bf16");
  ASSERT_EQ(bf16.exit_code, 0) << bf16.err;
  const auto a = testing::metric_rows(run.dir.file("fp32/metrics.jsonl"));
  const auto b = testing::metric_rows(run.dir.file("bf16/metrics.jsonl"));
  const double loss32 = a.at(1)["loss"], loss16 = b.at(1)["loss"];
  if (backend::cpu_supports_bf16()) {
    EXPECT_NE(bf16.err.find("bf16 parameters, fp32 master weights and moments"), std::string::npos) << bf16.err;
    EXPECT_NE(loss16, loss32) << "the forward ran in bf16";
    // bf16 has 8 bits of mantissa: the first loss within 1%, the sixth within 5%.
    EXPECT_NEAR(loss16, loss32, 1e-2 * loss32);
    EXPECT_NEAR(b.at(6)["loss"].get<double>(), a.at(6)["loss"].get<double>(), 5e-2 * loss32);
  } else {
    EXPECT_NE(bf16.err.find("this CPU has no AVX-512"), std::string::npos) << bf16.err;
    EXPECT_EQ(loss16, loss32);
  }
  // The checkpoint holds the fp32 master weights: not bf16-representable
  // values, after a few updates of lr 3e-3 from N(0, 0.02).
  const std::string step = run.dir.file("bf16/checkpoints/step-00000006");
  EXPECT_EQ(nlohmann::json::parse(testing::read_file(step + "/config.json"))["torch_dtype"], "float32");
  const io::SafetensorsFile weights(step + "/model.safetensors");
  int64_t beyond_bf16 = 0, total = 0;
  for (const auto& t : weights.tensors()) {
    ASSERT_EQ(t.spec.dtype, io::Dtype::kF32) << t.spec.name;
    const auto values = torch::from_blob(const_cast<uint8_t*>(weights.data(t)), t.spec.shape, torch::kFloat);
    beyond_bf16 += values.ne(values.to(torch::kBFloat16).to(torch::kFloat)).sum().item<int64_t>();
    total += values.numel();
  }
  if (backend::cpu_supports_bf16()) {
    EXPECT_GT(beyond_bf16, total / 2) << "the master weights are fp32, not bf16 cast back";
  }
}

// model.init_from a checkpoint of ours starts a new CPT phase: its weights
// only, with a fresh optimizer, a schedule that warms up again and the data
// stream from its beginning; unlike --resume, which restores all of them.
TEST(Training, InitFromACheckpointStartsANewPhase) {
  SmallRun run;
  const std::string first = run.dir.file("first"), second = run.dir.file("second");
  ASSERT_EQ(run.train(first, "--set train.steps=10").exit_code, 0);
  const std::string base = first + "/checkpoints/step-00000010";
  const auto phase = run.train(second, "--set train.steps=5 --set model.init_from=" + base);
  ASSERT_EQ(phase.exit_code, 0) << phase.err;
  const auto a = testing::metric_rows(first + "/metrics.jsonl"), b = testing::metric_rows(second + "/metrics.jsonl");
  // The weights: the new phase's step-0 eval is the old phase's last one.
  EXPECT_EQ(b.at(0)["eval/general/loss"], a.at(10)["eval/general/loss"]);
  // The schedule warms up again: the same learning rates from step 1.
  for (int64_t step = 1; step <= 3; ++step) EXPECT_EQ(b.at(step)["lr"], a.at(step)["lr"]) << "step " << step;
  // The optimizer starts empty, and the data stream from its beginning.
  const auto state = [](const std::string& dir) {
    return nlohmann::json::parse(testing::read_file(dir + "/trainer_state/state.json"));
  };
  const auto after = state(second + "/checkpoints/step-00000005");
  EXPECT_EQ(after["step"], 5);
  EXPECT_EQ(after["optimizer_steps"], 5);
  EXPECT_EQ(after["data"], state(first + "/checkpoints/step-00000005")["data"]);
}

}  // namespace
}  // namespace cpt::train
