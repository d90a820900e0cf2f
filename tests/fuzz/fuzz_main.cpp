// One libFuzzer binary per target: CPT_FUZZ_TARGET names it (tests/fuzz/CMakeLists.txt).

#include <cstddef>
#include <cstdint>

#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const cpt::fuzz::Target& target = cpt::fuzz::target(CPT_FUZZ_TARGET);
  target.run(data, size);
  return 0;
}
