#include "cpt/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <set>

#include "cpt/common/error.h"

namespace cpt::io {

namespace {

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference reader's MAX_HEADER_SIZE

[[noreturn]] void system_error(const std::string& what, const std::string& path) {
  throw std::runtime_error(fmt::format("cannot {} '{}': {}", what, path, std::strerror(errno)));
}

bool multiply(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

}  // namespace

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t TensorSpec::nbytes() const { return static_cast<size_t>(numel()) * dtype_bits(dtype) / 8; }

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  auto bad = [&](const std::string& what) { return InputError(fmt::format("'{}': {}", path, what)); };
  if (file_.size() < 8) throw bad(fmt::format("{} bytes is too short for a safetensors file", file_.size()));
  uint64_t header_size;
  std::memcpy(&header_size, file_.data(), 8);
  if (header_size > kMaxHeader) throw bad(fmt::format("header length {} exceeds the 100 MB limit", header_size));
  if (8 + header_size > file_.size()) {
    throw bad(fmt::format("header length {} runs past the end of the {}-byte file", header_size, file_.size()));
  }
  const char* header = reinterpret_cast<const char*>(file_.data() + 8);
  data_ = file_.data() + 8 + header_size;

  // Duplicate top-level keys are invalid; nlohmann would keep the last one silently.
  std::set<std::string> keys;
  std::string duplicate;
  nlohmann::json::parser_callback_t callback = [&](int depth, nlohmann::json::parse_event_t event,
                                                   nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string()) {
      if (!keys.insert(parsed.get<std::string>()).second && duplicate.empty()) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json json = nlohmann::json::parse(header, header + header_size, callback, /*allow_exceptions=*/false);
  if (json.is_discarded()) throw bad("the header is not valid UTF-8 JSON");
  if (!json.is_object()) throw bad("the header is not a JSON object");
  if (!duplicate.empty()) throw bad(fmt::format("the header names tensor '{}' twice", duplicate));

  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw bad("__metadata__ must be an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) throw bad(fmt::format("__metadata__ value '{}' is not a string", m.key()));
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      throw bad(fmt::format("tensor '{}' needs dtype, shape and data_offsets", name));
    }
    TensorInfo info;
    info.spec.name = name;
    const auto dtype = entry["dtype"].is_string() ? parse_dtype(entry["dtype"].get<std::string>()) : std::nullopt;
    if (!dtype) throw bad(fmt::format("tensor '{}' has unknown dtype {}", name, entry["dtype"].dump()));
    info.spec.dtype = *dtype;
    if (!entry["shape"].is_array()) throw bad(fmt::format("tensor '{}': shape is not a list", name));
    uint64_t elements = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) throw bad(fmt::format("tensor '{}': shape {} is not a list of sizes", name, entry["shape"].dump()));
      const uint64_t size = d.get<uint64_t>();
      if (!multiply(elements, size, elements)) throw bad(fmt::format("tensor '{}': shape overflows", name));
      info.spec.shape.push_back(static_cast<int64_t>(size));
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      throw bad(fmt::format("tensor '{}': data_offsets must be [begin, end]", name));
    }
    info.begin = offsets[0].get<uint64_t>();
    info.end = offsets[1].get<uint64_t>();
    uint64_t bits;
    if (!multiply(elements, dtype_bits(info.spec.dtype), bits)) throw bad(fmt::format("tensor '{}': size overflows", name));
    if (bits % 8 != 0) throw bad(fmt::format("tensor '{}' does not fill whole bytes", name));
    if (info.end < info.begin) throw bad(fmt::format("tensor '{}' ends before it begins", name));
    if (info.end - info.begin != bits / 8) {
      throw bad(fmt::format("tensor '{}' spans {} bytes but {} {} needs {}", name, info.end - info.begin,
                            entry["shape"].dump(), dtype_name(info.spec.dtype), bits / 8));
    }
    tensors_.push_back(std::move(info));
  }
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const auto& t : tensors_) {
    if (t.begin != expected) {
      throw bad(fmt::format("tensor '{}' starts at byte {} but the previous one ends at {}: holes and overlaps are "
                            "invalid",
                            t.spec.name, t.begin, expected));
    }
    expected = t.end;
  }
  if (8 + header_size + expected != file_.size()) {
    throw bad(fmt::format("the tensors end at byte {} of the data but the file holds {}; it is truncated or has "
                          "trailing bytes",
                          expected, file_.size() - 8 - header_size));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) by_name_[tensors_[i].spec.name] = i;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::release(const TensorInfo& tensor, size_t offset, size_t size) const {
  const long page = ::sysconf(_SC_PAGESIZE);
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data_ + tensor.begin + offset);
  const uintptr_t aligned = begin / static_cast<uintptr_t>(page) * static_cast<uintptr_t>(page);
  ::madvise(reinterpret_cast<void*>(aligned), size + (begin - aligned), MADV_DONTNEED);
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> tensors,
                                     std::map<std::string, std::string> metadata, ChecksummedFile::Cache cache)
    : path_(std::move(path)), temp_(path_ + ".tmp") {
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorSpec& a, const TensorSpec& b) {
    if (dtype_bits(a.dtype) != dtype_bits(b.dtype)) return dtype_bits(a.dtype) > dtype_bits(b.dtype);
    return a.name < b.name;
  });
  metadata["format"] = "pt";
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (auto& spec : tensors) {
    if (by_name_.count(spec.name)) throw std::invalid_argument("tensor '" + spec.name + "' is listed twice");
    TensorInfo info{spec, offset, offset + spec.nbytes()};
    header[spec.name] = {{"dtype", dtype_name(spec.dtype)}, {"shape", spec.shape}, {"data_offsets", {info.begin, info.end}}};
    offset = info.end;
    by_name_[spec.name] = layout_.size();
    layout_.push_back(std::move(info));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  data_start_ = 8 + text.size();
  written_.assign(layout_.size(), 0);

  file_ = std::make_unique<ChecksummedFile>(temp_, data_start_ + offset, cache);
  const uint64_t size = text.size();
  text.insert(0, reinterpret_cast<const char*>(&size), 8);
  file_->write(0, text.data(), text.size());
}

SafetensorsWriter::~SafetensorsWriter() {
  file_.reset();
  if (!finished_) ::unlink(temp_.c_str());
}

void SafetensorsWriter::write(const std::string& name, size_t offset, const void* bytes, size_t size) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw std::invalid_argument("no tensor '" + name + "' in " + path_);
  const TensorInfo& info = layout_[it->second];
  if (offset + size > info.end - info.begin) throw std::out_of_range("write past the end of tensor '" + name + "'");
  file_->write(data_start_ + info.begin + offset, bytes, size);
  std::lock_guard<std::mutex> lock(mutex_);
  written_[it->second] += static_cast<uint64_t>(size);
}

FileChecksum SafetensorsWriter::finish() {
  for (size_t i = 0; i < layout_.size(); ++i) {
    if (written_[i] != layout_[i].end - layout_[i].begin) {
      throw std::logic_error(fmt::format("tensor '{}' of {} got {} of its {} bytes", layout_[i].spec.name, path_,
                                         written_[i], layout_[i].end - layout_[i].begin));
    }
  }
  const FileChecksum checksum = file_->finish();
  if (::rename(temp_.c_str(), path_.c_str()) != 0) system_error("rename into", path_);
  finished_ = true;
  return checksum;
}

}  // namespace cpt::io
