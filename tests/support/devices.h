#pragma once
// Device-parameterised tests (CTranslate2's habit): every such test runs on
// the CPU, and again on CUDA. Without a GPU the CUDA instance reports itself
// as skipped ("not run: no CUDA device"), which ctest lists as Skipped, not
// Passed; with CPT_EXPECT_CUDA=1 (set on the GPU machines) it fails instead,
// so a GPU run can never pass by skipping.

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <string>

#include "cpt/backend/backend.h"

namespace cpt::testing {

inline bool cuda_expected() {
  const char* expect = std::getenv("CPT_EXPECT_CUDA");
  return expect != nullptr && std::string(expect) == "1";
}

// The devices a parameterised suite instantiates with.
inline ::testing::internal::ParamGenerator<std::string> all_devices() { return ::testing::Values("cpu", "cuda"); }

inline std::string device_test_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

}  // namespace cpt::testing

// The test's device, or the end of the test where that device is absent.
#define CPT_DEVICE_OR_NOT_RUN(name)                                                                      \
  [&] {                                                                                                  \
    if ((name) == "cuda" && !torch::cuda::is_available()) {                                              \
      if (::cpt::testing::cuda_expected()) {                                                             \
        ADD_FAILURE() << "CPT_EXPECT_CUDA=1 but " << ::cpt::backend::describe_availability("cuda");      \
      }                                                                                                  \
      return false;                                                                                      \
    }                                                                                                    \
    return true;                                                                                         \
  }()

#define CPT_REQUIRE_DEVICE(name)                                                                         \
  do {                                                                                                   \
    if (!CPT_DEVICE_OR_NOT_RUN(name)) {                                                                  \
      if (::cpt::testing::cuda_expected()) return;                                                       \
      GTEST_SKIP() << "not run: " << ::cpt::backend::describe_availability("cuda");                      \
    }                                                                                                    \
  } while (0)
