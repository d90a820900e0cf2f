#pragma once
// Data-parallel process group settings.

#include <cstdint>
#include <string>

namespace cpt::dist {

inline constexpr const char* kProcessGroupBackends[] = {"auto", "gloo", "nccl"};

struct Config {
  std::string backend = "auto";  // auto: what the device backend names (backend/backend.h)
  bool zero1 = true;             // shard AdamW moments and master weights across ranks
  int64_t timeout_s = 600;       // a dead or hung peer fails the job after this long
  int64_t master_port = 0;       // rendezvous port; 0: MASTER_PORT, else derived from SLURM_JOB_ID
  double bucket_mb = 25;         // gradients are all-reduced in buckets of about this size

  template <class V>
  void fields(V& v) {
    v("backend", backend);
    v("zero1", zero1);
    v("timeout_s", timeout_s);
    v("master_port", master_port);
    v("bucket_mb", bucket_mb);
  }
};

void validate(const Config& config);

}  // namespace cpt::dist
