#pragma once
// Fuzz targets: each feeds bytes to one parser of outside input the way
// cpt-train does. Bad input must end in an InputError (caught inside);
// a crash, a sanitizer report, a hang or any other exception is a bug.
// The libFuzzer binaries (scripts/fuzz.sh) and the regression test over
// tests/fuzz/regressions/ call the same functions.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cpt::fuzz {

struct Target {
  std::string name;  // also the folder of its seeds and regressions
  void (*run)(const uint8_t* data, size_t size);
};

// Every target, in a fixed order.
const std::vector<Target>& targets();

// The target called `name`; throws std::invalid_argument for an unknown name.
const Target& target(const std::string& name);

}  // namespace cpt::fuzz
