#pragma once
// The peak FLOP/s that MFU is reported against. Pure C++: the table of
// accelerators' nominal peaks and the wording of where a peak came from.

#include <optional>
#include <string>

namespace cpt::train {

// A device's dense (no sparsity) matmul peak in TFLOP/s from its vendor's
// data sheet, for `device_name` as the driver reports it ("NVIDIA H200",
// "NVIDIA A100-SXM4-80GB"). bf16: tensor-core bf16; otherwise plain fp32
// (LibTorch does not enable TF32 for fp32 matmuls by default). nullopt for
// a device or precision the table does not know.
std::optional<double> nominal_peak_tflops(const std::string& device_name, bool bf16);

// MFU's peak for one device, and where it came from, for the log line.
struct PeakFlops {
  double tflops = 0;   // one device (one rank)
  std::string source;  // "logging.peak_tflops", "nominal NVIDIA H200 bf16", "measured ..."
};

}  // namespace cpt::train
