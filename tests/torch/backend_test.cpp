// The backend table: what this build and machine have, and the errors for
// what they lack.

#include "cpt/backend/backend.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cpt/common/error.h"
#include "support/run_command.h"

namespace cpt::backend {
namespace {

std::string message_of(const std::string& name) {
  try {
    select_backend(name, 0);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Backend, TheTableListsCpuCudaAndNeuron) {
  const auto all = probe_backends();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name, "cpu");
  EXPECT_TRUE(all[0].available);
  EXPECT_EQ(all[1].name, "cuda");
  EXPECT_FALSE(all[1].available) << "this machine has no GPU";
  EXPECT_EQ(all[1].detail, "no CUDA device (none visible to the driver, or CUDA_VISIBLE_DEVICES hides them)");
  EXPECT_EQ(all[2].name, "neuron");
  EXPECT_FALSE(all[2].available);
}

TEST(Backend, AutoIsTheCpuHereAndDescribesIt) {
  const auto chosen = select_backend("auto", 0);
  EXPECT_EQ(chosen->name(), "cpu");
  EXPECT_TRUE(chosen->device().is_cpu());
  EXPECT_EQ(chosen->process_group_backend(), "gloo");
  const auto host = torch::arange(6);
  EXPECT_TRUE(chosen->to_device(host).is_same(host)) << "no copy on the CPU";
}

TEST(Backend, UnknownAndUnavailableNamesSayWhy) {
  EXPECT_EQ(message_of("tpu"), "backend 'tpu' is not registered; valid: auto, cpu, cuda, neuron");
  EXPECT_EQ(message_of("cuda"),
            "backend cuda is not available: no CUDA device (none visible to the driver, or CUDA_VISIBLE_DEVICES "
            "hides them); available here: cpu");
  const std::string neuron = message_of("neuron");
  EXPECT_EQ(neuron.rfind("backend neuron is not available: the Neuron runtime libnrt.so.1 is not installed", 0), 0u)
      << neuron;
}

// The CPU backend counts bytes in tensors (as CUDA's "peak allocated"
// does), not the resident set: a tensor moves the peak by its size exactly.
TEST(Backend, CpuPeakMemoryCountsTensorBytesAndResets) {
  const auto cpu = select_backend("cpu", 0);
  cpu->reset_peak_memory();
  const int64_t before = cpu->memory().peak_bytes;
  ASSERT_GE(before, 0);
  EXPECT_EQ(cpu->memory().kind, "peak allocated");
  {
    auto big = torch::empty({64 << 20}, torch::kFloat);  // 256 MiB, never touched: no RSS, still counted
    auto small = torch::empty({1000}, torch::kByte);
    EXPECT_EQ(cpu->memory().peak_bytes, before + (256 << 20) + 1000);
  }
  EXPECT_EQ(cpu->memory().peak_bytes, before + (256 << 20) + 1000) << "the peak outlives the tensors";
  cpu->reset_peak_memory();
  EXPECT_EQ(cpu->memory().peak_bytes, before) << "the reset forgot the freed tensors";
}

TEST(Backend, TimerMeasuresTheWorkBetweenStartAndStop) {
  const auto cpu = select_backend("cpu", 0);
  const auto timer = cpu->start_timer();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  timer->stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // after stop: not counted
  EXPECT_GE(timer->seconds(), 0.06);
  EXPECT_LT(timer->seconds(), 0.4);
}

// The plugin's discovery path with a stand-in libnrt.so.1 that reports two
// NeuronCores: found, and still refused for want of a LibTorch device.
TEST(Backend, NeuronPluginFindsCoresAndSaysWhatElseIsMissing) {
  const testing::CommandResult r =
      testing::run_command(std::string("LD_LIBRARY_PATH=") + CPT_FAKE_NRT_DIR + " " + CPT_BINARY + " version --backends");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("neuron: not available: found 2 NeuronCore(s), but "), std::string::npos) << r.out;
  // CPT_NEURON_PLUGIN names the plugin; a library that is not one is refused.
  const std::string not_a_plugin =
      (std::filesystem::path(CPT_BINARY).parent_path() / "libcpt_sentencepiece.so").string();
  const testing::CommandResult wrong =
      testing::run_command("CPT_NEURON_PLUGIN=" + not_a_plugin + " " + CPT_BINARY + " version --backends");
  EXPECT_NE(wrong.out.find("neuron: not available: " + not_a_plugin + " has no cpt_neuron_probe"), std::string::npos)
      << wrong.out;
}

}  // namespace
}  // namespace cpt::backend
