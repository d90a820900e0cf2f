#include "cpt/common/bytes.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

namespace cpt {

std::optional<int64_t> parse_bytes(std::string_view text) {
  static const std::pair<const char*, double> units[] = {
      {"KiB", 1024.0}, {"MiB", 1024.0 * 1024}, {"GiB", 1024.0 * 1024 * 1024}, {"TiB", 1024.0 * 1024 * 1024 * 1024},
      {"KB", 1e3},     {"MB", 1e6},            {"GB", 1e9},                   {"TB", 1e12},
      {"B", 1.0},      {"", 1.0},
  };
  std::string s(text);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  for (const auto& [suffix, scale] : units) {
    std::string unit(suffix);
    if (s.size() < unit.size() || s.compare(s.size() - unit.size(), unit.size(), unit) != 0) continue;
    std::string number = s.substr(0, s.size() - unit.size());
    while (!number.empty() && std::isspace(static_cast<unsigned char>(number.back()))) number.pop_back();
    if (number.empty()) return std::nullopt;
    char* end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (*end != '\0' || !std::isfinite(value) || value < 0) return std::nullopt;
    double bytes = std::round(value * scale);
    if (bytes > 9.2e18) return std::nullopt;
    return static_cast<int64_t>(bytes);
  }
  return std::nullopt;
}

}  // namespace cpt
