#pragma once
// Small string helpers shared by the config and CLI layers.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cpt {

std::string join(const std::vector<std::string>& parts, std::string_view separator);
std::vector<std::string> split(std::string_view text, char separator);
// Without leading and trailing blanks.
std::string trim(std::string_view text);

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, if it is close enough to be a plausible typo.
std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates);

// "8388608" -> "8,388,608": large counts are read by people in plans and logs.
std::string with_thousands(int64_t value);

// 7.24e9 -> "7.24B", 90400 -> "90.4K": a count as people say it.
std::string human_count(double count);

// 3.2e9 bytes -> "2.98 GiB".
std::string human_bytes(double bytes);

}  // namespace cpt
