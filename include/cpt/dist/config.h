#pragma once
// Data-parallel process group settings.

#include <cstdint>
#include <string>

namespace cpt::dist {

inline constexpr const char* kProcessGroupBackends[] = {"auto", "gloo", "nccl"};

struct Config {
  std::string backend = "auto";  // auto = NCCL on CUDA, Gloo on CPU
  bool zero1 = true;             // shard AdamW moments and master weights across ranks
  int64_t timeout_s = 600;       // a dead or hung peer fails the job after this long

  template <class V>
  void fields(V& v) {
    v("backend", backend);
    v("zero1", zero1);
    v("timeout_s", timeout_s);
  }
};

void validate(const Config& config);

}  // namespace cpt::dist
