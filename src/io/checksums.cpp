#include "cpt/io/checksums.h"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cpt/common/crc32c.h"
#include "cpt/common/error.h"
#include "cpt/io/atomic_file.h"

namespace fs = std::filesystem;

namespace cpt::io {

void write_checksums(const std::string& dir) {
  nlohmann::ordered_json files = nlohmann::ordered_json::object();
  std::vector<std::string> names;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = fs::relative(entry.path(), dir).generic_string();
    if (name != kChecksumsFile) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const std::string path = (fs::path(dir) / name).string();
    files[name] = {{"bytes", fs::file_size(path)}, {"crc32c", fmt::format("{:08x}", file_crc32c(path))}};
  }
  const nlohmann::ordered_json manifest = {{"algorithm", "crc32c"}, {"files", files}};
  write_file_atomic((fs::path(dir) / kChecksumsFile).string(), manifest.dump(2) + "\n");
}

ChecksumManifest parse_checksums(const std::string& text, const std::string& source) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) throw InputError(fmt::format("'{}' is not a JSON object", source));
  if (json.value("algorithm", std::string()) != "crc32c") {
    throw InputError(fmt::format("'{}': \"algorithm\" must be \"crc32c\"", source));
  }
  const auto files = json.find("files");
  if (files == json.end() || !files->is_object()) throw InputError(fmt::format("'{}' has no \"files\" object", source));
  ChecksumManifest manifest;
  for (const auto& [name, entry] : files->items()) {
    const auto bytes = entry.is_object() ? entry.find("bytes") : entry.end();
    const auto crc = entry.is_object() ? entry.find("crc32c") : entry.end();
    if (bytes == entry.end() || !bytes->is_number_unsigned() || crc == entry.end() || !crc->is_string() ||
        crc->get<std::string>().size() != 8 ||
        crc->get<std::string>().find_first_not_of("0123456789abcdef") != std::string::npos) {
      throw InputError(fmt::format("'{}': the entry of '{}' needs \"bytes\" (an unsigned integer) and \"crc32c\" "
                                   "(8 lowercase hex digits)",
                                   source, name));
    }
    if (name.empty() || name.front() == '/' || name.find("..") != std::string::npos) {
      throw InputError(fmt::format("'{}': '{}' is not a path inside the checkpoint", source, name));
    }
    manifest[name] = {bytes->get<uint64_t>(), static_cast<uint32_t>(std::stoul(crc->get<std::string>(), nullptr, 16))};
  }
  return manifest;
}

bool has_checksums(const std::string& dir) { return fs::exists(fs::path(dir) / kChecksumsFile); }

void verify_checksums(const std::string& dir, const std::function<bool(const std::string&)>& which) {
  const std::string manifest_path = (fs::path(dir) / kChecksumsFile).string();
  std::ifstream in(manifest_path, std::ios::binary);
  if (!in) throw InputError(fmt::format("cannot read '{}'", manifest_path));
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& [name, want] : parse_checksums(text.str(), manifest_path)) {
    if (which && !which(name)) continue;
    const std::string path = (fs::path(dir) / name).string();
    std::error_code error;
    const uint64_t bytes = fs::file_size(path, error);
    if (error) throw InputError(fmt::format("'{}' is missing from the checkpoint ({})", path, error.message()));
    if (bytes != want.bytes) {
      throw InputError(fmt::format("'{}' is {} bytes, but {} were written: the file is truncated or was changed",
                                   path, bytes, want.bytes));
    }
    const uint32_t crc = file_crc32c(path);
    if (crc != want.crc32c) {
      throw InputError(fmt::format("'{}' is corrupt: its CRC-32C is {:08x}, {:08x} was written", path, crc,
                                   want.crc32c));
    }
  }
}

bool is_model_file(const std::string& relative_path) { return relative_path.rfind("trainer_state/", 0) != 0; }

}  // namespace cpt::io
