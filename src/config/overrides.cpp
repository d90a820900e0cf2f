#include "overrides.h"

#include <cctype>
#include <fmt/format.h>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::config {

namespace {

bool is_index(const std::string& part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

[[noreturn]] void bad(const std::string& flag, const std::string& message) {
  throw InputError(fmt::format("--set {}: {}", flag, message));
}

}  // namespace

OverrideOrigins apply_overrides(YAML::Node& root, const std::vector<std::string>& overrides) {
  OverrideOrigins origins;
  for (const std::string& flag : overrides) {
    const size_t equals = flag.find('=');
    if (equals == std::string::npos) bad(flag, "expected KEY=VALUE, e.g. --set optimizer.lr=3e-5");
    const std::string key = flag.substr(0, equals);
    const std::string text = flag.substr(equals + 1);
    const std::vector<std::string> parts = split(key, '.');
    for (const auto& part : parts) {
      if (part.empty()) bad(flag, fmt::format("'{}' is not a key path; use dots between names, e.g. optimizer.lr", key));
    }

    YAML::Node value;
    try {
      value = text.empty() ? YAML::Node(YAML::NodeType::Null) : YAML::Load(text);
    } catch (const YAML::Exception& e) {
      bad(flag, fmt::format("the value is not valid YAML ({})", e.msg));
    }

    std::string path;
    YAML::Node current = root;
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string& part = parts[i];
      const bool last = i + 1 == parts.size();
      if (current.IsNull()) current = YAML::Node(YAML::NodeType::Map);
      if (current.IsSequence()) {
        if (!is_index(part) || std::stoul(part) >= current.size()) {
          bad(flag, fmt::format("'{}' is a list of {} entries; '{}' is not an index into it", path, current.size(),
                                part));
        }
        path += "[" + part + "]";
        if (last) {
          current[std::stoul(part)] = value;
        } else {
          // reset() rebinds the handle; operator= would overwrite the node.
          current.reset(current[std::stoul(part)]);
        }
        continue;
      }
      if (!current.IsMap()) bad(flag, fmt::format("'{}' is a single value, so it has no key '{}'", path, part));
      path += path.empty() ? part : "." + part;
      if (last) {
        current[part] = value;
      } else {
        if (!current[part]) current[part] = YAML::Node(YAML::NodeType::Map);
        current.reset(current[part]);
      }
    }
    origins[path] = flag;
  }
  return origins;
}

}  // namespace cpt::config
