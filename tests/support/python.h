#pragma once
// The references run on the Python of scripts/setup.sh's venv (CPT_PYTHON,
// the one whose torch wheel the build links), which holds the pinned
// transformers, safetensors, mergekit and megatron-core. A missing module
// fails the test instead of skipping it: a skipped reference check would
// look like a passing one.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace cpt::testing {

inline ::testing::AssertionResult python_has(const std::string& module) {
  const std::string command = std::string(CPT_PYTHON) + " -c 'import " + module + "' >/dev/null 2>&1";
  if (std::system(command.c_str()) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << CPT_PYTHON << " cannot import " << module
                                       << "; run scripts/setup.sh (scripts/requirements.txt)";
}

}  // namespace cpt::testing
