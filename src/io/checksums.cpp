#include "cpt/io/checksums.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>
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

namespace {

// CRC-32C of each file, in ranges of at most kRange bytes checksummed on
// every core and combined (crc32c_combine): a checkpoint's moments are one
// file of GBs, and one core reads only a few GB/s.
std::vector<uint32_t> crc_of_files(const std::vector<std::string>& paths) {
  constexpr uint64_t kRange = uint64_t{64} << 20;
  struct Range {
    size_t file;
    uint64_t offset, size;
    uint32_t crc = 0;
  };
  std::vector<Range> ranges;
  for (size_t i = 0; i < paths.size(); ++i) {
    std::error_code error;
    const uint64_t size = fs::file_size(paths[i], error);
    if (error) throw InputError(fmt::format("cannot read '{}': {}", paths[i], error.message()));
    for (uint64_t offset = 0; offset < size; offset += kRange) ranges.push_back({i, offset, std::min(kRange, size - offset)});
  }
  std::vector<std::exception_ptr> errors(ranges.size());
  std::atomic<size_t> next{0};
  const size_t workers = std::min<size_t>(ranges.size(), std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < ranges.size(); i = next++) {
        try {
          ranges[i].crc = file_range_crc32c(paths[ranges[i].file], ranges[i].offset, ranges[i].size);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  std::vector<uint32_t> crcs(paths.size(), 0);  // ranges are in file order, each file's in offset order
  for (const Range& range : ranges) crcs[range.file] = crc32c_combine(crcs[range.file], range.crc, range.size);
  return crcs;
}

}  // namespace

void write_checksums(const std::string& dir, const ChecksumManifest& known) {
  ChecksumManifest checksums;
  std::vector<std::string> names, paths;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = fs::relative(entry.path(), dir).generic_string();
    if (name == kChecksumsFile) continue;
    const auto it = known.find(name);
    // A known file whose size changed since is read like any other.
    if (it != known.end() && it->second.bytes == entry.file_size()) {
      checksums[name] = it->second;
    } else {
      names.push_back(name);
      paths.push_back(entry.path().string());
    }
  }
  const std::vector<uint32_t> crcs = crc_of_files(paths);
  for (size_t i = 0; i < names.size(); ++i) checksums[names[i]] = {fs::file_size(paths[i]), crcs[i]};
  nlohmann::ordered_json files = nlohmann::ordered_json::object();
  for (const auto& [name, checksum] : checksums) {
    files[name] = {{"bytes", checksum.bytes}, {"crc32c", fmt::format("{:08x}", checksum.crc32c)}};
  }
  const nlohmann::ordered_json manifest = {{"algorithm", "crc32c"}, {"files", files}};
  write_file_atomic((fs::path(dir) / kChecksumsFile).string(), manifest.dump(2) + "\n");
}

ChecksumManifest parse_checksums(const std::string& text, const std::string& source) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) throw InputError(fmt::format("'{}' is not a JSON object", source));
  if (!json.contains("algorithm") || json["algorithm"] != "crc32c") {
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
  std::vector<std::pair<std::string, FileChecksum>> wanted;
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
    wanted.emplace_back(path, want);
  }
  std::vector<std::string> paths;
  for (const auto& [path, want] : wanted) paths.push_back(path);
  const std::vector<uint32_t> crcs = crc_of_files(paths);
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (crcs[i] != wanted[i].second.crc32c) {
      throw InputError(fmt::format("'{}' is corrupt: its CRC-32C is {:08x}, {:08x} was written", wanted[i].first,
                                   crcs[i], wanted[i].second.crc32c));
    }
  }
}

bool is_model_file(const std::string& relative_path) { return relative_path.rfind("trainer_state/", 0) != 0; }

}  // namespace cpt::io
