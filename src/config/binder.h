#pragma once
// Reads a YAML tree into the config structs through their fields() visitors,
// remembering where every key came from so errors can name file and line.

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cpt/common/bytes.h"
#include "cpt/config/fields.h"

namespace cpt::config {

// Keys set by --set, as normalised paths ("data.sources[0].weight") mapped to
// the flag text the user typed.
using OverrideOrigins = std::map<std::string, std::string>;

class Binder {
 public:
  Binder(std::string source, OverrideOrigins overrides);

  void record(const std::string& key, const YAML::Node& node);
  bool present(const std::string& key) const { return lines_.count(key) > 0; }

  // "file.yaml:12", "--set optimizer.lr=-1", or just the file for defaults.
  std::string where(const std::string& key) const;

  // One line: "<where>: <key>: <message>".
  // A check across keys names the --set flags among `related` too: the
  // line of `key` in the file is not the whole cause when a flag changed
  // the value it was compared with.
  [[noreturn]] void fail(const std::string& key, const std::string& message,
                         const std::vector<std::string>& related = {}) const;
  [[noreturn]] void fail_at(const YAML::Node& node, const std::string& key, const std::string& message) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  OverrideOrigins overrides_;
  std::map<std::string, int> lines_;  // key -> 1-based line in source_
};

void convert(const Binder& b, const std::string& key, const YAML::Node& node, std::string& out);
void convert(const Binder& b, const std::string& key, const YAML::Node& node, int64_t& out);
void convert(const Binder& b, const std::string& key, const YAML::Node& node, double& out);
void convert(const Binder& b, const std::string& key, const YAML::Node& node, bool& out);
void convert(const Binder& b, const std::string& key, const YAML::Node& node, Bytes& out);
void convert(const Binder& b, const std::string& key, const YAML::Node& node, std::array<double, 2>& out);

template <class T>
void convert(const Binder& b, const std::string& key, const YAML::Node& node, std::optional<T>& out) {
  T value{};
  convert(b, key, node, value);
  out = value;
}

// One YAML mapping being read. Each visited key is declared; finish() rejects
// the keys nobody declared, suggesting the nearest declared one.
class Section {
 public:
  Section(Binder& binder, const YAML::Node& node, std::string path);

  template <class T>
  void operator()(const char* key, T& out) {
    declared_.emplace_back(key);
    std::optional<YAML::Node> child = find(key);
    if (!child) return;
    const std::string path = child_path(key);
    binder_.record(path, *child);
    read(path, *child, out);
  }

  void finish() const;

 private:
  template <class T>
  void read(const std::string& path, const YAML::Node& node, T& out) {
    if constexpr (is_section<T>::value) {
      Section section(binder_, node, path);
      out.fields(section);
      section.finish();
    } else if constexpr (is_section_list<T>::value) {
      if (node.IsNull()) return;
      if (!node.IsSequence()) binder_.fail_at(node, path, "expected a list of mappings");
      out.resize(node.size());
      for (size_t i = 0; i < node.size(); ++i) {
        const std::string item_path = path + "[" + std::to_string(i) + "]";
        binder_.record(item_path, node[i]);
        read(item_path, node[i], out[i]);
      }
    } else {
      convert(binder_, path, node, out);
    }
  }

  std::optional<YAML::Node> find(const std::string& key) const;
  std::string child_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  Binder& binder_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::string> declared_;
};

}  // namespace cpt::config
