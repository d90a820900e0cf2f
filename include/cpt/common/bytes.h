#pragma once
// A byte count that configs may write as "5GB", "512MiB" or a plain integer.

#include <cstdint>
#include <optional>
#include <string_view>

namespace cpt {

struct Bytes {
  int64_t value = 0;
};

// Decimal units (KB, MB, GB, TB = powers of 1000, as Hugging Face reads
// "5GB") and binary ones (KiB, MiB, GiB, TiB). Empty on anything else.
std::optional<int64_t> parse_bytes(std::string_view text);

}  // namespace cpt
