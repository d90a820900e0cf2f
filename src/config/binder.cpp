#include "binder.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <set>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::config {

namespace {

const char* kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    default: return "a scalar";
  }
}

// The scalar as the user wrote it, or the node's kind when it is not one.
std::string shown(const YAML::Node& node) {
  return node.IsScalar() ? "'" + node.Scalar() + "'" : std::string(kind_of(node));
}

bool is_prefix_path(const std::string& prefix, const std::string& key) {
  if (key.size() < prefix.size() || key.compare(0, prefix.size(), prefix) != 0) return false;
  return key.size() == prefix.size() || key[prefix.size()] == '.' || key[prefix.size()] == '[';
}

std::optional<double> parse_double(const std::string& text) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (*end != '\0' || errno == ERANGE || !std::isfinite(value)) return std::nullopt;
  return value;
}

}  // namespace

Binder::Binder(std::string source, OverrideOrigins overrides)
    : source_(std::move(source)), overrides_(std::move(overrides)) {}

void Binder::record(const std::string& key, const YAML::Node& node) {
  lines_[key] = node.Mark().is_null() ? 0 : node.Mark().line + 1;
}

std::string Binder::where(const std::string& key) const {
  for (const auto& [path, flag] : overrides_) {
    if (is_prefix_path(path, key)) return "--set " + flag;
  }
  auto it = lines_.find(key);
  if (it != lines_.end() && it->second > 0) return fmt::format("{}:{}", source_, it->second);
  // A key absent from the file: point at its nearest parent that is there.
  std::string parent = key;
  while (true) {
    size_t cut = parent.find_last_of(".[");
    if (cut == std::string::npos) break;
    parent = parent.substr(0, cut);
    it = lines_.find(parent);
    if (it != lines_.end() && it->second > 0) return fmt::format("{}:{}", source_, it->second);
  }
  return source_;
}

void Binder::fail(const std::string& key, const std::string& message, const std::vector<std::string>& related) const {
  std::vector<std::string> flags;
  for (const std::string& other : related) {
    for (const auto& [path, flag] : overrides_) {
      if (is_prefix_path(path, other)) flags.push_back(fmt::format("{} is from --set {}", other, flag));
    }
  }
  throw InputError(fmt::format("{}: {}: {}{}", where(key), key, message,
                               flags.empty() ? "" : " (" + join(flags, "; ") + ")"));
}

void Binder::fail_at(const YAML::Node& node, const std::string& key, const std::string& message) const {
  for (const auto& [path, flag] : overrides_) {
    // The key was set by the flag, or the flag reshaped it (set one of its children).
    if (is_prefix_path(path, key) || is_prefix_path(key, path)) {
      throw InputError(fmt::format("--set {}: {}: {}", flag, key, message));
    }
  }
  if (node.Mark().is_null()) fail(key, message);
  throw InputError(fmt::format("{}:{}: {}: {}", source_, node.Mark().line + 1, key, message));
}

void convert(const Binder& b, const std::string& key, const YAML::Node& node, std::string& out) {
  if (node.IsNull()) {
    out.clear();
    return;
  }
  if (!node.IsScalar()) b.fail_at(node, key, fmt::format("expected a string, got {}", kind_of(node)));
  out = node.Scalar();
}

void convert(const Binder& b, const std::string& key, const YAML::Node& node, double& out) {
  std::optional<double> value = node.IsScalar() ? parse_double(node.Scalar()) : std::nullopt;
  if (!value) b.fail_at(node, key, fmt::format("expected a number, got {}", shown(node)));
  out = *value;
}

void convert(const Binder& b, const std::string& key, const YAML::Node& node, int64_t& out) {
  // Integers may be written as 29e9 or 1.5e9 too, as long as the value is whole.
  std::optional<double> value = node.IsScalar() ? parse_double(node.Scalar()) : std::nullopt;
  if (!value || std::floor(*value) != *value || std::fabs(*value) > 9.0e18) {
    b.fail_at(node, key, fmt::format("expected a whole number, got {}", shown(node)));
  }
  if (std::fabs(*value) < 9.0e15) {
    out = static_cast<int64_t>(*value);
  } else {
    // Past 2^53 a double is not exact: re-read plain integers digit by digit.
    char* end = nullptr;
    long long exact = std::strtoll(node.Scalar().c_str(), &end, 10);
    out = *end == '\0' ? exact : static_cast<int64_t>(*value);
  }
}

void convert(const Binder& b, const std::string& key, const YAML::Node& node, bool& out) {
  static const std::set<std::string> yes = {"true", "True", "TRUE"};
  static const std::set<std::string> no = {"false", "False", "FALSE"};
  if (node.IsScalar() && yes.count(node.Scalar())) {
    out = true;
  } else if (node.IsScalar() && no.count(node.Scalar())) {
    out = false;
  } else {
    b.fail_at(node, key, fmt::format("expected true or false, got {}", shown(node)));
  }
}

void convert(const Binder& b, const std::string& key, const YAML::Node& node, Bytes& out) {
  std::optional<int64_t> value = node.IsScalar() ? parse_bytes(node.Scalar()) : std::nullopt;
  if (!value) {
    b.fail_at(node, key, fmt::format("expected a byte size such as 5GB, 500MB, 2GiB or 1000000, got {}", shown(node)));
  }
  out.value = *value;
}

void convert(const Binder& b, const std::string& key, const YAML::Node& node, std::array<double, 2>& out) {
  if (!node.IsSequence() || node.size() != 2) {
    b.fail_at(node, key, fmt::format("expected a list of two numbers such as [0.9, 0.95], got {}", shown(node)));
  }
  for (size_t i = 0; i < 2; ++i) convert(b, key + "[" + std::to_string(i) + "]", node[i], out[i]);
}

Section::Section(Binder& binder, const YAML::Node& node, std::string path)
    : binder_(binder), node_(node), path_(std::move(path)) {
  if (!node_.IsMap() && !node_.IsNull()) {
    binder_.fail_at(node_, path_.empty() ? "(top level)" : path_,
                    fmt::format("expected a mapping of keys, got {}", shown(node_)));
  }
}

std::optional<YAML::Node> Section::find(const std::string& key) const {
  if (!node_.IsMap()) return std::nullopt;
  for (const auto& entry : node_) {
    if (entry.first.IsScalar() && entry.first.Scalar() == key) return entry.second;
  }
  return std::nullopt;
}

void Section::finish() const {
  if (!node_.IsMap()) return;
  std::map<std::string, int> seen;
  for (const auto& entry : node_) {
    const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "?";
    const std::string path = child_path(name);
    const int line = entry.first.Mark().line + 1;
    if (auto [it, inserted] = seen.emplace(name, line); !inserted) {
      binder_.fail_at(entry.first, path, fmt::format("duplicate key (first set on line {})", it->second));
    }
    bool known = false;
    for (const auto& declared : declared_) known = known || declared == name;
    if (known) continue;
    std::string message = fmt::format("unknown key '{}'", path);
    if (auto guess = closest_match(name, declared_)) message += fmt::format("; did you mean '{}'?", *guess);
    message += fmt::format(" Valid keys {}: {}", path_.empty() ? "at the top level" : "under '" + path_ + "'",
                           join(declared_, ", "));
    binder_.record(path, entry.first);
    throw InputError(fmt::format("{}: {}", binder_.where(path), message));
  }
}

}  // namespace cpt::config
