#pragma once
// The independent references run on Debian's /usr/bin/python3. scripts/setup.sh
// installs their modules, so a missing one fails the test instead of
// skipping it: a skipped reference check would look like a passing one.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace cpt::testing {

inline ::testing::AssertionResult python_has(const std::string& module) {
  const std::string command = "/usr/bin/python3 -c 'import " + module + "' >/dev/null 2>&1";
  if (std::system(command.c_str()) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "/usr/bin/python3 cannot import " << module
                                       << "; run scripts/setup.sh (python3-numpy, python3-torch)";
}

}  // namespace cpt::testing
