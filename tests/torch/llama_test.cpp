// The Llama decoder against Hugging Face transformers' LlamaForCausalLM,
// which loads the checkpoint this project writes.

#include "cpt/model/llama.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cpt/backend/autocast.h"
#include "cpt/common/error.h"
#include "cpt/io/hf_checkpoint.h"
#include "cpt/io/hf_model.h"
#include "cpt/model/loss.h"
#include "cpt/model/shape.h"
#include "support/python.h"
#include "support/run_command.h"
#include "support/shapes.h"
#include "support/temp_dir.h"

namespace cpt::model {
namespace {


TEST(Llama, ParameterNamesAreHuggingFacesAndCountMatchesTheFormula) {
  Llama llama(testing::small_gqa_shape());
  int64_t count = 0;
  std::vector<std::string> names;
  for (const auto& p : llama->named_parameters()) {
    count += p.value().numel();
    names.push_back(p.key());
  }
  EXPECT_EQ(count, parameter_count(testing::small_gqa_shape()));
  EXPECT_NE(std::find(names.begin(), names.end(), "model.layers.1.self_attn.k_proj.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "model.layers.0.post_attention_layernorm.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "lm_head.weight"), names.end());
  EXPECT_EQ(llama->named_parameters()["model.layers.0.self_attn.k_proj.weight"].sizes(), (std::vector<int64_t>{16, 64}));
}

TEST(Llama, TransformersLoadsOurCheckpointWithEveryKeyAndGivesOurLogits) {
  ASSERT_TRUE(testing::python_has("transformers"));
  testing::TempDir dir;
  const Shape shape = testing::small_gqa_shape();
  Llama written(shape);
  written->init_weights(7);
  // Norm weights away from 1, so a wrong norm cannot pass unnoticed.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : written->named_parameters()) {
      if (p.value().dim() == 1) p.value().uniform_(0.5, 1.5);
    }
  }
  io::save_hf_weights(*written, shape, dir.path(), io::Dtype::kF32, 5'000'000'000);

  Llama loaded(shape);
  io::load_hf_weights(*loaded, dir.path());
  const std::vector<std::vector<int64_t>> rows = {{1, 5, 9, 33, 2, 100, 7, 7, 64, 3, 12, 0}, {4, 4, 4, 80, 91, 1, 2, 3, 50, 60, 70, 99}};
  auto tokens = torch::tensor(rows[0]).view({1, 12});
  tokens = torch::cat({tokens, torch::tensor(rows[1]).view({1, 12})});
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = loaded->forward(tokens).contiguous();
  }
  const std::string out = dir.file("reference.f32");
  const testing::CommandResult r = testing::run_command(
      fmt::format(CPT_PYTHON " {}/tests/model/transformers_llama.py {} '{}' {}", CPT_SOURCE_DIR, dir.path(),
                  nlohmann::json(rows).dump(), out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string bytes = testing::read_file(out);
  ASSERT_EQ(bytes.size(), static_cast<size_t>(logits.numel()) * 4);
  auto reference = torch::from_blob(const_cast<char*>(bytes.data()), logits.sizes(), torch::kFloat).clone();
  const double max_diff = (logits - reference).abs().max().item<double>();
  EXPECT_LT(max_diff, 1e-4) << "max |logit difference|";
  EXPECT_GT(logits.abs().max().item<double>(), 0.1) << "logits are not trivially small";
}

TEST(Llama, DocumentMaskAndPositionResetsIsolateDocuments) {
  const Shape shape = testing::small_gqa_shape();
  Llama llama(shape);
  llama->init_weights(3);
  torch::NoGradGuard no_grad;
  // Two documents packed in one row vs the second document alone.
  auto packed = torch::tensor({5, 6, 7, 8, 10, 11, 12, 13}).view({1, 8});
  auto positions = torch::tensor({0, 1, 2, 3, 0, 1, 2, 3}).view({1, 8});
  auto alone = torch::tensor({10, 11, 12, 13}).view({1, 4});
  auto with_mask = llama->forward(packed, positions, /*document_mask=*/true);
  auto reference = llama->forward(alone);
  EXPECT_LT((with_mask.narrow(1, 4, 4) - reference).abs().max().item<double>(), 1e-5);
  auto without_mask = llama->forward(packed);
  EXPECT_GT((without_mask.narrow(1, 4, 4) - reference).abs().max().item<double>(), 1e-3) << "the mask matters";
}

// The same for gradients, with a different mask in each batch row: a
// document's gradients must be those it gets alone.
TEST(Llama, DocumentMaskedGradientsMatchTheDocumentsAlone) {
  const Shape shape = testing::small_gqa_shape();
  Llama llama(shape);
  llama->init_weights(3);
  // Row 0: documents of 4 and 4 tokens; row 1: 3, 4 and 1. The loss reads
  // the 4-token document at columns 4..7 of row 0 and 3..6 of row 1.
  auto packed = torch::tensor({5, 6, 7, 8, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 33, 40}).view({2, 8});
  auto positions = torch::tensor({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 0}).view({2, 8});
  auto alone = torch::tensor({10, 11, 12, 13, 30, 31, 32, 33}).view({2, 4});
  torch::manual_seed(9);
  const auto upstream = torch::randn({2, 4, shape.vocab_size});
  auto gradients = [&](const torch::Tensor& logits) {
    llama->zero_grad();
    (logits * upstream).sum().backward();
    std::vector<torch::Tensor> out;
    for (const auto& p : llama->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto logits = llama->forward(packed, positions, /*document_mask=*/true);
  const auto with_mask = gradients(torch::stack({logits[0].narrow(0, 4, 4), logits[1].narrow(0, 3, 4)}));
  const auto reference = gradients(llama->forward(alone));
  ASSERT_EQ(with_mask.size(), reference.size());
  auto relative_error = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).norm() / b.norm()).item<double>();
  };
  for (size_t i = 0; i < reference.size(); ++i) {
    EXPECT_LT(relative_error(with_mask[i], reference[i]), 1e-5) << "parameter " << i;
  }
  const auto causal = gradients(llama->forward(packed).narrow(1, 4, 4));
  EXPECT_GT(relative_error(causal[1], reference[1]), 1e-2) << "the mask matters";
}

// RMSNorm's hand-written backward against autograd of HF's composed ops.
TEST(Llama, RmsNormBackwardMatchesAutogradOfTheComposedOps) {
  torch::manual_seed(3);
  RMSNorm norm(48, 1e-5);
  {
    torch::NoGradGuard no_grad;
    norm->named_parameters()["weight"].uniform_(0.5, 1.5);
  }
  const auto weight = norm->named_parameters()["weight"];
  const auto input = torch::randn({3, 5, 48}) * 3.0, upstream = torch::randn({3, 5, 48});

  auto x = input.clone().requires_grad_(true);
  norm->forward(x).backward(upstream);
  const auto grad_x = x.grad().clone(), grad_weight = weight.grad().clone();

  auto x_ref = input.clone().requires_grad_(true);
  auto weight_ref = weight.detach().clone().requires_grad_(true);
  const auto y_ref = weight_ref * (x_ref * torch::rsqrt(x_ref.pow(2).mean(-1, true) + 1e-5));
  y_ref.backward(upstream);
  EXPECT_TRUE(torch::allclose(norm->forward(input), y_ref, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(grad_x, x_ref.grad(), 1e-4, 1e-6)) << (grad_x - x_ref.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(grad_weight, weight_ref.grad(), 1e-4, 1e-5)) << (grad_weight - weight_ref.grad()).abs().max();
}

// The fused head and loss against the unfused ones (at::linear, then
// torch's cross_entropy in fp32). 70 rows against 8k or 53 columns: on a CPU
// the rows go in L2-sized pieces (32 rows of an 8k vocab), so both vocabs
// cross piece and thread boundaries with a partial last piece.
void expect_fused_loss_matches_unfused(int64_t vocab, c10::ScalarType dtype, double tolerance) {
  torch::manual_seed(11);
  const int64_t rows = 70, dim = 24;
  const auto hidden = (torch::randn({rows, dim}) * 2.0).to(dtype), weight = torch::randn({vocab, dim}).to(dtype);
  const auto targets = torch::randint(0, vocab, {rows}, torch::kLong);
  auto h_ours = hidden.clone().requires_grad_(true), w_ours = weight.clone().requires_grad_(true);
  auto h_ref = hidden.clone().requires_grad_(true), w_ref = weight.clone().requires_grad_(true);
  torch::Tensor token_losses;
  const auto ours = model::fused_linear_cross_entropy(h_ours, w_ours, targets, &token_losses);
  const auto logits = at::linear(h_ref, w_ref).to(torch::kFloat);
  const auto theirs = torch::nn::functional::cross_entropy(logits, targets);
  const auto theirs_each = torch::nn::functional::cross_entropy(
      logits.detach(), targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  EXPECT_EQ(ours.scalar_type(), torch::kFloat);
  EXPECT_NEAR(ours.item<double>(), theirs.item<double>(), 1e-5 * theirs.item<double>());
  EXPECT_FALSE(token_losses.requires_grad());
  EXPECT_TRUE(torch::allclose(token_losses, theirs_each, 1e-5, 1e-5)) << (token_losses - theirs_each).abs().max();
  (ours * 0.375).backward();  // a non-unit upstream gradient, as the accumulation share gives
  (theirs * 0.375).backward();
  for (const auto& [a, b] : {std::pair{h_ours.grad(), h_ref.grad()}, std::pair{w_ours.grad(), w_ref.grad()}}) {
    ASSERT_EQ(a.scalar_type(), dtype);
    const auto diff = (a - b).to(torch::kFloat).abs().max().item<double>();
    const auto scale = b.to(torch::kFloat).abs().max().item<double>();
    EXPECT_LE(diff, tolerance * scale) << vocab << " " << dtype;
  }
}

TEST(Loss, FusedLinearCrossEntropyMatchesTheHeadThenTorchsLoss) {
  expect_fused_loss_matches_unfused(8192, torch::kFloat, 1e-5);
  expect_fused_loss_matches_unfused(53, torch::kFloat, 1e-5);
  // bf16: the gradient is rounded to bf16 where the unfused one is rounded
  // by the cast's backward, the same rounding; the GEMMs accumulate
  // differently.
  expect_fused_loss_matches_unfused(8192, torch::kBFloat16, 2e-2);
}

// A micro-batch's share of the loss that bf16 cannot hold (1/3) scales the
// bf16 gradients by itself, not by its bf16 rounding (0.33398, +0.2%):
// the gradients of loss/3 are those of the loss over 3, rounded element by
// element, with no bias in their sum.
TEST(Loss, FusedLinearCrossEntropyScalesBf16GradientsByTheExactShare) {
  torch::manual_seed(14);
  const auto hidden = torch::randn({256, 64}).to(torch::kBFloat16),
             weight = torch::randn({512, 64}).to(torch::kBFloat16);
  const auto targets = torch::randint(0, 512, {256}, torch::kLong);
  const auto gradients = [&](double share) {
    auto h = hidden.clone().requires_grad_(true), w = weight.clone().requires_grad_(true);
    (model::fused_linear_cross_entropy(h, w, targets) * share).backward();
    return std::pair{h.grad().to(torch::kDouble), w.grad().to(torch::kDouble)};
  };
  const auto [h_one, w_one] = gradients(1.0);
  const auto [h_third, w_third] = gradients(1.0 / 3.0);
  EXPECT_NEAR((h_third.abs().sum() * 3 / h_one.abs().sum()).item<double>(), 1.0, 3e-4);
  EXPECT_NEAR((w_third.abs().sum() * 3 / w_one.abs().sum()).item<double>(), 1.0, 3e-4);
}

// A weight that already has a .grad (DataParallel's flat buffer) gets the
// head's gradient added there, as the model's projections do.
TEST(Loss, FusedLinearCrossEntropyAddsIntoAWeightsGradient) {
  torch::manual_seed(12);
  const auto hidden = torch::randn({9, 16}), targets = torch::randint(0, 40, {9}, torch::kLong);
  auto weight = torch::randn({40, 16}).requires_grad_(true);
  const auto earlier = torch::randn({40, 16});
  weight.mutable_grad() = earlier.clone();
  model::fused_linear_cross_entropy(hidden.requires_grad_(true), weight, targets).backward();
  auto w_ref = weight.detach().clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(at::linear(hidden.detach(), w_ref), targets).backward();
  EXPECT_TRUE(torch::allclose(weight.grad(), earlier + w_ref.grad(), 1e-5, 1e-6))
      << (weight.grad() - earlier - w_ref.grad()).abs().max();
}

// Without gradients (an evaluation) the same losses come back, with no
// node behind them.
TEST(Loss, FusedLinearCrossEntropyWithoutGradientsGivesTheSameLosses) {
  torch::manual_seed(13);
  const auto hidden = torch::randn({70, 24}), weight = torch::randn({8192, 24});
  const auto targets = torch::randint(0, 8192, {70}, torch::kLong);
  const auto logits = at::linear(hidden, weight);
  const auto theirs_each = torch::nn::functional::cross_entropy(
      logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  torch::NoGradGuard no_grad;
  torch::Tensor token_losses;
  const auto ours = model::fused_linear_cross_entropy(hidden, weight.requires_grad_(true), targets, &token_losses);
  EXPECT_FALSE(ours.requires_grad());
  EXPECT_NEAR(ours.item<double>(), theirs_each.mean().item<double>(), 1e-5 * theirs_each.mean().item<double>());
  EXPECT_TRUE(torch::allclose(token_losses, theirs_each, 1e-5, 1e-5)) << (token_losses - theirs_each).abs().max();
}

TEST(Loss, FusedLinearCrossEntropyRejectsMismatchedShapesAndDtypes) {
  const auto hidden = torch::randn({4, 8}), targets = torch::zeros({4}, torch::kLong);
  EXPECT_THROW(model::fused_linear_cross_entropy(hidden, torch::randn({10, 7}), targets), c10::Error);
  EXPECT_THROW(model::fused_linear_cross_entropy(hidden, torch::randn({10, 8}).to(torch::kBFloat16), targets),
               c10::Error);
  EXPECT_THROW(model::fused_linear_cross_entropy(hidden, torch::randn({10, 8}), targets.narrow(0, 0, 3)), c10::Error);
}

// Relative L2 distance and cosine between two gradients, in double.
std::pair<double, double> distance_and_cosine(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kDouble).flatten(), y = b.to(torch::kDouble).flatten();
  const double norm = y.norm().item<double>();
  const double distance = (x - y).norm().item<double>() / std::max(norm, 1e-30);
  const double cosine = x.dot(y).item<double>() / std::max(x.norm().item<double>() * norm, 1e-30);
  return {distance, cosine};
}

// Each recompute mode against keeping everything, in fp32, with bf16
// parameters (the training path of train.precision bf16), and (full only)
// under bf16 autocast: full recomputation in backward must run with the
// forward's autocast state although backward runs outside the scope.
// Every mode runs the same forward kernels, so the loss is the same
// bit for bit. Full recompute repeats the same backward too: gradients
// equal. Selective computes the projections' input gradient as one sum
// (g_q W_q + g_k W_k + g_v W_v, each addmm rounding once) where autograd
// adds three separately rounded products: in fp32 that is rounding noise
// (1e-5 relative); with bf16 parameters, bf16 rounding of the gradient
// flowing back through the blocks: stated bound 2e-2 relative L2 distance
// per tensor and a cosine of at least 0.9998.
TEST(Llama, ActivationCheckpointingGivesTheSameGradients) {
  torch::manual_seed(0);
  const auto tokens = torch::randint(0, 101, {2, 24}, torch::kLong), targets = torch::randint(0, 101, {2, 24}, torch::kLong);
  const auto two_documents =
      torch::cat({torch::arange(10, torch::kLong), torch::arange(14, torch::kLong)}).unsqueeze(0).expand({2, 24});
  enum Mode { kFp32, kBf16Parameters, kBf16Autocast };
  for (const Mode mode : {kFp32, kBf16Parameters, kBf16Autocast}) {
    const bool autocast_on = mode == kBf16Autocast;
    const auto grad_dtype = mode == kBf16Parameters ? torch::kBFloat16 : torch::kFloat;
    std::vector<Recompute> recomputes = {Recompute::kNone, Recompute::kFull};
    if (!autocast_on) recomputes.push_back(Recompute::kSelective);
    std::map<std::string, torch::Tensor> grads[3];
    double losses[3];
    for (size_t r = 0; r < recomputes.size(); ++r) {
      Llama llama(testing::small_gqa_shape());
      llama->init_weights(9);
      if (mode == kBf16Parameters) llama->to(torch::kBFloat16);
      llama->set_activation_checkpointing(recomputes[r]);
      torch::Tensor loss;
      {
        const backend::AutocastScope autocast(torch::kCPU, {autocast_on, torch::kBFloat16});
        // Document masking (two documents per row) on bf16 parameters: the
        // mask travels into the recomputation too.
        const auto logits = mode == kBf16Parameters ? llama->forward(tokens, two_documents, true) : llama->forward(tokens);
        loss = torch::nn::functional::cross_entropy(logits.view({-1, 101}), targets.view({-1}));
      }
      loss.backward();
      losses[r] = loss.item<double>();
      for (const auto& p : llama->named_parameters()) grads[r][p.key()] = p.value().grad().clone();
    }
    for (size_t r = 1; r < recomputes.size(); ++r) {
      const bool selective = recomputes[r] == Recompute::kSelective;
      const std::string what = std::string(selective ? "selective" : "full") + " mode " + std::to_string(mode);
      EXPECT_EQ(losses[0], losses[r]) << what;
      ASSERT_EQ(grads[0].size(), grads[r].size());
      for (const auto& [name, g] : grads[0]) {
        const auto& other = grads[r][name];
        ASSERT_TRUE(other.defined()) << name << " " << what;
        EXPECT_EQ(other.scalar_type(), grad_dtype) << "gradients have their parameter's dtype";
        if (!selective) {
          EXPECT_TRUE(torch::allclose(g, other, 1e-5, 1e-7)) << name << " " << what;
        } else if (mode == kFp32) {
          EXPECT_TRUE(torch::allclose(g, other, 1e-4, 1e-6)) << name << " " << what;
        } else {
          const auto [distance, cosine] = distance_and_cosine(other, g);
          EXPECT_LE(distance, 2e-2) << name << " " << what;
          EXPECT_GE(cosine, 0.9998) << name << " " << what;
        }
      }
    }
  }
}

// Each family's options (q/k/v biases, a tied lm_head, a sliding window
// shorter than the documents, Llama-3.1's RoPE scaling) through each
// recompute mode: the same loss, and the same gradients for every
// parameter, biases included.
TEST(Llama, FamilyOptionsGiveTheSameGradientsInEveryRecomputeMode) {
  torch::manual_seed(0);
  Shape shape = testing::small_gqa_shape();
  shape.arch.attention_bias = true;
  shape.arch.tie_word_embeddings = true;
  shape.arch.sliding_window = 6;
  shape.arch.rope_scaling = {8.0, 1.0, 4.0, 16};
  const auto tokens = torch::randint(0, 101, {2, 24}, torch::kLong), targets = torch::randint(0, 101, {2, 24}, torch::kLong);
  const auto two_documents =
      torch::cat({torch::arange(10, torch::kLong), torch::arange(14, torch::kLong)}).unsqueeze(0).expand({2, 24});
  std::map<std::string, torch::Tensor> grads[3];
  double losses[3];
  const Recompute modes[] = {Recompute::kNone, Recompute::kFull, Recompute::kSelective};
  for (int r = 0; r < 3; ++r) {
    Llama llama(shape);
    llama->init_weights(9);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : llama->named_parameters()) {
        if (p.key().find("bias") != std::string::npos) p.value().normal_(0.0, 0.1);  // init_weights zeroes them
      }
    }
    llama->set_activation_checkpointing(modes[r]);
    const auto logits = llama->forward(tokens, two_documents, true);
    const auto loss = torch::nn::functional::cross_entropy(logits.view({-1, 101}), targets.view({-1}));
    loss.backward();
    losses[r] = loss.item<double>();
    for (const auto& p : llama->named_parameters()) grads[r][p.key()] = p.value().grad().clone();
  }
  ASSERT_TRUE(grads[0].count("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(grads[0].count("lm_head.weight")) << "a tied lm_head has no parameter of its own";
  for (int r = 1; r < 3; ++r) {
    EXPECT_NEAR(losses[0], losses[r], 1e-6);
    for (const auto& [name, g] : grads[0]) {
      ASSERT_TRUE(grads[r][name].defined()) << name << " mode " << r;
      EXPECT_TRUE(torch::allclose(g, grads[r][name], 1e-4, 1e-6)) << name << " mode " << r;
    }
  }
}

// Two backwards, the second into .grad buffers that already hold values
// (DataParallel's flat buffer views, mid-accumulation): the projections add
// their weights' gradients into those buffers inside the GEMM, so each
// buffer must end as what it held plus the gradient a fresh backward
// gives, in every recompute mode, for biases and a tied lm_head too; and a
// backward with no .grad yet must return the gradients as usual.
TEST(Llama, GradientsAddIntoTheGradBuffersThatAlreadyExist) {
  torch::manual_seed(0);
  Shape shape = testing::small_gqa_shape();
  shape.arch.attention_bias = true;
  shape.arch.tie_word_embeddings = true;
  const auto tokens = torch::randint(0, 101, {2, 12}, torch::kLong);
  const auto targets = torch::randint(0, 101, {2, 12}, torch::kLong);
  for (const Recompute mode : {Recompute::kNone, Recompute::kFull, Recompute::kSelective}) {
    Llama llama(shape);
    llama->init_weights(9);
    llama->set_activation_checkpointing(mode);
    const auto backward = [&] {
      const auto logits = llama->forward(tokens);
      torch::nn::functional::cross_entropy(logits.view({-1, 101}), targets.view({-1})).backward();
    };
    backward();  // no .grad yet: autograd's own accumulation
    std::map<std::string, torch::Tensor> fresh, held;
    for (auto& p : llama->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      fresh[p.key()] = p.value().grad().clone();
      held[p.key()] = torch::randn_like(p.value());
      p.value().mutable_grad() = held[p.key()].clone();  // a buffer of its own, as a flat-buffer view is
    }
    backward();
    for (auto& p : llama->named_parameters()) {
      const auto expected = held[p.key()] + fresh[p.key()];
      EXPECT_TRUE(torch::allclose(p.value().grad(), expected, 1e-5, 1e-6))
          << p.key() << " mode " << static_cast<int>(mode) << ": " << (p.value().grad() - expected).abs().max();
    }
  }
}

// Each family against transformers: a tiny random model that transformers
// made and saved loads here with logits equal to transformers' own, and
// what we save loads back in transformers as the same class with every key.
TEST(Llama, EachFamilyEqualsTransformersBothWays) {
  ASSERT_TRUE(testing::python_has("transformers"));
  const std::vector<std::vector<int64_t>> rows = {{1, 5, 9, 33, 2, 100, 7, 7, 64, 3, 12, 0, 250, 17, 18, 299},
                                                  {4, 4, 4, 80, 91, 1, 2, 3, 50, 60, 70, 99, 5, 6, 7, 8}};
  const std::string tokens_json = nlohmann::json(rows).dump();
  const auto tokens = torch::tensor(rows[0]).view({1, 16}).repeat({2, 1});
  tokens[1].copy_(torch::tensor(rows[1]));
  const auto read_logits = [&](const std::string& path) {
    const std::string bytes = testing::read_file(path);
    EXPECT_EQ(bytes.size(), static_cast<size_t>(2 * 16 * 300 * 4)) << path;
    return torch::from_blob(const_cast<char*>(bytes.data()), {2, 16, 300}, torch::kFloat).clone();
  };
  const std::map<std::string, std::string> described = {
      {"llama3", "LlamaForCausalLM, tied embeddings, llama3 RoPE scaling (factor 8, low 1, high 4, original context 32)"},
      {"mistral", "MistralForCausalLM, sliding window 8"},
      {"qwen2", "Qwen2ForCausalLM, tied embeddings, q/k/v biases"}};
  for (const auto& [family, description] : described) {
    testing::TempDir dir;
    const std::string made = dir.file("made"), saved = dir.file("saved");
    const auto make = testing::run_command(fmt::format(CPT_PYTHON " {}/tests/model/transformers_family.py make {} {} '{}' {}",
                                                       CPT_SOURCE_DIR, family, made, tokens_json, dir.file("theirs.f32")));
    ASSERT_EQ(make.exit_code, 0) << make.err;
    const Shape shape = read_hf_config(made + "/config.json");
    EXPECT_EQ(describe(shape.arch), description);
    Llama ours(shape);
    io::load_hf_weights(*ours, made);
    torch::Tensor logits;
    {
      torch::NoGradGuard no_grad;
      logits = ours->forward(tokens).contiguous();
    }
    const auto theirs = read_logits(dir.file("theirs.f32"));
    EXPECT_LT((logits - theirs).abs().max().item<double>(), 1e-4) << family << ": max |logit difference|";
    EXPECT_GT(logits.abs().max().item<double>(), 0.1) << "logits are not trivially small";
    // The option the family adds matters here: without it the logits differ.
    if (family != "qwen2") {  // qwen2's biases cannot be left out of its weights
      Shape plain = shape;
      plain.arch.sliding_window = 0;
      plain.arch.rope_scaling = {};
      Llama without(plain);
      io::load_hf_weights(*without, made);
      torch::NoGradGuard no_grad;
      const double exact = (logits - theirs).abs().max().item<double>();
      const double without_option = (without->forward(tokens) - theirs).abs().max().item<double>();
      EXPECT_GT(without_option, std::max(100 * exact, 2e-4)) << family << " without its option; with it " << exact;
    }

    std::filesystem::create_directories(saved);
    io::save_hf_weights(*ours, shape, saved, io::Dtype::kF32, 5'000'000'000);
    const auto load = testing::run_command(fmt::format(CPT_PYTHON " {}/tests/model/transformers_family.py load {} {} '{}' {}",
                                                       CPT_SOURCE_DIR, family, saved, tokens_json, dir.file("back.f32")));
    ASSERT_EQ(load.exit_code, 0) << load.err;
    EXPECT_LT((logits - read_logits(dir.file("back.f32"))).abs().max().item<double>(), 1e-4) << family;
    const auto config = nlohmann::json::parse(testing::read_file(saved + "/config.json"));
    EXPECT_EQ(config["architectures"][0], architecture_name(shape.arch.model_type));
    EXPECT_EQ(config["model_type"], family == "llama3" ? "llama" : family);
  }
}

TEST(Llama, SelectiveRecomputeRefusesAutocast) {
  Llama llama(testing::small_gqa_shape());
  llama->set_activation_checkpointing(Recompute::kSelective);
  const backend::AutocastScope autocast(torch::kCPU, {true, torch::kBFloat16});
  EXPECT_THROW(llama->forward(torch::zeros({1, 4}, torch::kLong)), std::logic_error);
}

TEST(Llama, RecomputeModesParseFromTheirConfigNames) {
  EXPECT_EQ(parse_recompute("none"), Recompute::kNone);
  EXPECT_EQ(parse_recompute("full"), Recompute::kFull);
  EXPECT_EQ(parse_recompute("selective"), Recompute::kSelective);
  EXPECT_THROW(parse_recompute("true"), std::invalid_argument);
}

TEST(Autocast, ScopeRunsMatmulsInBf16AndRestoresTheState) {
  const auto a = torch::randn({8, 8}), b = torch::randn({8, 8});
  ASSERT_FALSE(backend::autocast_state(torch::kCPU).enabled);
  {
    const backend::AutocastScope outer(torch::kCPU, {true, torch::kBFloat16});
    EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kBFloat16);
    {
      const backend::AutocastScope inner(torch::kCPU, {false, torch::kBFloat16});
      EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kFloat);
    }
    EXPECT_TRUE(backend::autocast_state(torch::kCPU).enabled) << "the inner scope restored the outer state";
    // RMSNorm keeps fp32 statistics and the logits come out fp32.
    Llama llama(testing::small_gqa_shape());
    EXPECT_EQ(llama->forward(torch::randint(0, 101, {1, 8}, torch::kLong)).scalar_type(), torch::kFloat);
  }
  EXPECT_FALSE(backend::autocast_state(torch::kCPU).enabled);
  EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kFloat);
}

TEST(HfCheckpoint, BadCheckpointsAreRejectedWithTheFirstProblem) {
  testing::TempDir dir;
  const Shape shape = testing::small_gqa_shape();
  Llama llama(shape);
  llama->init_weights(1);
  io::save_hf_weights(*llama, shape, dir.path(), io::Dtype::kBF16, 20'000);  // sharded, bf16
  EXPECT_TRUE(std::filesystem::exists(dir.file("model.safetensors.index.json")));
  Llama again(shape);
  EXPECT_NO_THROW(io::load_hf_weights(*again, dir.path()));
  EXPECT_TRUE(torch::allclose(again->named_parameters()["lm_head.weight"], llama->named_parameters()["lm_head.weight"], 0, 1e-2));

  Shape wider = shape;
  wider.hidden_size = 128;
  Llama wrong(wider);
  try {
    io::load_hf_weights(*wrong, dir.path());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [101,64]"), std::string::npos) << e.what();
  }
  Shape deeper = shape;
  deeper.num_hidden_layers = 3;
  Llama missing(deeper);
  try {
    io::load_hf_weights(*missing, dir.path());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("has no tensor 'model.layers.2."), std::string::npos) << e.what();
  }
  {
    torch::NoGradGuard no_grad;
    llama->named_parameters()["model.norm.weight"][3] = std::numeric_limits<float>::quiet_NaN();
  }
  testing::TempDir nan_dir;
  io::save_hf_weights(*llama, shape, nan_dir.path(), io::Dtype::kF32, 5'000'000'000);
  try {
    io::load_hf_weights(*again, nan_dir.path());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'model.norm.weight'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cpt::model
