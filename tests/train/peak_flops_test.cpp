#include "cpt/train/peak_flops.h"

#include <gtest/gtest.h>

#include "cpt/common/error.h"
#include "cpt/train/trainer_state.h"

namespace cpt::train {
namespace {

// The names the CUDA driver reports, against the data sheets' dense peaks.
TEST(PeakFlops, NominalPeaksOfTheDriversNames) {
  EXPECT_EQ(nominal_peak_tflops("NVIDIA H200", true), 989);
  EXPECT_EQ(nominal_peak_tflops("NVIDIA H100 80GB HBM3", true), 989);
  EXPECT_EQ(nominal_peak_tflops("NVIDIA H100 PCIe", true), 756);
  EXPECT_EQ(nominal_peak_tflops("NVIDIA A100-SXM4-80GB", true), 312);
  EXPECT_EQ(nominal_peak_tflops("NVIDIA A100-SXM4-80GB", false), 19.5);
  EXPECT_EQ(nominal_peak_tflops("NVIDIA A10G", true), 70);
  EXPECT_EQ(nominal_peak_tflops("NVIDIA L40S", true), 362);
  // Unknown: measured instead, never guessed.
  EXPECT_EQ(nominal_peak_tflops("NVIDIA GeForce RTX 4090", true), std::nullopt);
  EXPECT_EQ(nominal_peak_tflops("Tesla V100-SXM2-16GB", true), std::nullopt) << "no bf16 on Volta";
  EXPECT_EQ(nominal_peak_tflops("cpu", false), std::nullopt);
}

TEST(TrainerStateFile, ElapsedTimeRoundTripsAndMustBeSeconds) {
  TrainerState state;
  state.step = 10;
  state.tokens = 640;
  state.optimizer_steps = 10;
  state.elapsed_s = 12.5;
  EXPECT_EQ(parse_trainer_state(trainer_state_json(state, 10, 1), "state.json").elapsed_s, 12.5);
  std::string text = trainer_state_json(state, 10, 1);
  text.replace(text.find("12.5"), 4, "-3");
  EXPECT_THROW(parse_trainer_state(text, "state.json"), InputError);
}

}  // namespace
}  // namespace cpt::train
