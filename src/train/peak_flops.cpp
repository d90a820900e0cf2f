#include "cpt/train/peak_flops.h"

#include <algorithm>
#include <cctype>

namespace cpt::train {

namespace {

struct NominalPeak {
  const char* name;  // matched case-insensitively inside the driver's name; more specific names first
  double bf16_tflops;
  double fp32_tflops;  // 0: not known
};

// Dense peaks from the vendors' data sheets (SXM parts unless named).
constexpr NominalPeak kPeaks[] = {
    {"GH200", 989, 67},  {"H200", 989, 67},       {"H100 PCIe", 756, 51}, {"H100 NVL", 835, 60},
    {"H100", 989, 67},   {"H800", 989, 67},       {"B200", 2250, 0},      {"A100", 312, 19.5},
    {"A800", 312, 19.5}, {"L40S", 362, 91.6},     {"L40", 181, 90.5},     {"L4", 121, 30.3},
    {"A10G", 70, 31.2},  {"A10", 125, 31.2},      {"A6000", 155, 38.7},   {"V100", 0, 15.7},
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

}  // namespace

std::optional<double> nominal_peak_tflops(const std::string& device_name, bool bf16) {
  const std::string name = lower(device_name);
  for (const NominalPeak& peak : kPeaks) {
    if (name.find(lower(peak.name)) == std::string::npos) continue;
    const double tflops = bf16 ? peak.bf16_tflops : peak.fp32_tflops;
    if (tflops > 0) return tflops;
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace cpt::train
