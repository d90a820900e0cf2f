#pragma once
// Process-wide logging: spdlog to stderr, one format, the rank in every line.

#include <string>

namespace cpt {

// Valid --log-level names, in spdlog's order.
inline constexpr const char* kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};

// Installs the default logger. `rank` appears in every line so interleaved
// output from many ranks (srun, torchrun) can be told apart. Throws
// InputError for an unknown level.
void init_logging(const std::string& level, int rank);

}  // namespace cpt
