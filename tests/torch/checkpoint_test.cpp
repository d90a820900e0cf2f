// A checkpoint's save and load in one process: weights and AdamW moments
// come back bit for bit, and a non-finite moment is refused with its file
// and key named (non-finite weights: HfCheckpoint in llama_test.cpp).

#include "cpt/train/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cpt/common/error.h"
#include "cpt/dist/env.h"
#include "cpt/dist/process_group.h"
#include "cpt/io/hf_checkpoint.h"
#include "cpt/model/llama.h"
#include "cpt/train/data_parallel.h"
#include "cpt/train/optimizer.h"
#include "support/shapes.h"
#include "support/temp_dir.h"

namespace cpt::train {
namespace {

// A model with its data-parallel wrapper and optimizer, on one rank.
struct Trainable {
  explicit Trainable(uint64_t seed) : llama(testing::small_gqa_shape()) {
    llama->init_weights(seed);
    for (auto& p : llama->named_parameters()) parameters.emplace_back(p.key(), p.value());
    group = dist::ProcessGroup::connect(dist::LaunchEnv{}, dist::Config{});
    replicas = std::make_unique<DataParallel>(*group, parameters, /*zero1=*/true, 1 << 12);
    optimizer = std::make_unique<AdamW>(replicas->owned_slices(), OptimizerConfig{});
    torch::NoGradGuard no_grad;
    torch::manual_seed(seed);
    for (auto& moment : optimizer->state()) moment.values.normal_(0, 1e-3).abs_();
  }

  std::string save(const std::string& root) {
    TrainerState state;
    state.step = 3;
    return save_checkpoint(CheckpointPaths{root}, testing::small_gqa_shape(), *replicas, *optimizer, state, SaveOptions{});
  }

  model::Llama llama;
  NamedTensors parameters;
  std::unique_ptr<dist::ProcessGroup> group;
  std::unique_ptr<DataParallel> replicas;
  std::unique_ptr<AdamW> optimizer;
};

TEST(Checkpoint, LoadRestoresWeightsAndMomentsBitForBit) {
  testing::TempDir dir;
  Trainable saved(1);
  const std::string checkpoint = saved.save(dir.file("checkpoints"));
  Trainable loaded(2);
  load_checkpoint(checkpoint, *loaded.replicas, *loaded.optimizer);
  for (size_t i = 0; i < saved.parameters.size(); ++i) {
    EXPECT_TRUE(torch::equal(saved.parameters[i].second, loaded.parameters[i].second)) << saved.parameters[i].first;
  }
  const std::vector<MomentSlice> before = saved.optimizer->state();
  const std::vector<MomentSlice> after = loaded.optimizer->state();
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i].values, after[i].values)) << before[i].key;
  }
}

TEST(Checkpoint, ANonFiniteMomentIsRefusedNamingItsFileAndKey) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    testing::TempDir dir;
    Trainable saved(1);
    const MomentSlice moment = saved.optimizer->state().back();  // shares the moment's storage
    {
      torch::NoGradGuard no_grad;
      moment.values.view({-1})[moment.values.numel() - 1] = bad;  // the very last element read
    }
    const std::string checkpoint = saved.save(dir.file("checkpoints"));
    verify_checkpoint(checkpoint);  // intact: its checksums were taken of what was saved
    Trainable loaded(2);
    try {
      load_checkpoint(checkpoint, *loaded.replicas, *loaded.optimizer);
      FAIL() << "a moment holding " << bad << " was loaded";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("trainer_state/optimizer.safetensors"), std::string::npos) << what;
      EXPECT_NE(what.find("'" + moment.key + "'"), std::string::npos) << what;
      EXPECT_NE(what.find("NaN or infinite"), std::string::npos) << what;
    }
  }
}

TEST(Checkpoint, ParallelCopyIfFiniteCopiesEveryElementAndFindsOneBadValueAnywhere) {
  // Several of its 64K-element slices, and an odd tail.
  const int64_t count = (int64_t{1} << 20) + 37;
  const torch::Tensor source = torch::randn({count});
  torch::Tensor target = torch::zeros({count});
  ASSERT_TRUE(io::parallel_copy_if_finite(io::Dtype::kF32, source.data_ptr(), target.data_ptr(), count));
  EXPECT_TRUE(torch::equal(source, target));
  for (const int64_t at : {int64_t{0}, int64_t{1} << 16, count / 2 + 1, count - 1}) {
    torch::Tensor damaged = source.clone();
    damaged[at] = std::numeric_limits<float>::infinity();
    EXPECT_FALSE(io::parallel_copy_if_finite(io::Dtype::kF32, damaged.data_ptr(), target.data_ptr(), count)) << at;
  }
  const torch::Tensor half = source.to(torch::kBFloat16);
  torch::Tensor half_target = torch::zeros({count}, torch::kBFloat16);
  ASSERT_TRUE(io::parallel_copy_if_finite(io::Dtype::kBF16, half.data_ptr(), half_target.data_ptr(), count));
  EXPECT_TRUE(torch::equal(half, half_target));
}

}  // namespace
}  // namespace cpt::train
