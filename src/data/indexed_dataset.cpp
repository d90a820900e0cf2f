#include "cpt/data/indexed_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <limits>

#include "cpt/common/error.h"

namespace cpt::data {

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderSize = 9 + 8 + 1 + 8 + 8;
constexpr size_t kWriteBuffer = 4 << 20;

// The .idx arrays start at byte 34, so they are not aligned: load by memcpy.
template <class T>
T load(const uint8_t* base, int64_t index) {
  T value;
  std::memcpy(&value, base + index * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return value;
}

template <class T>
void append(std::vector<uint8_t>& out, T value) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof(T));
}

bool valid_code(uint8_t code) { return code >= 1 && code <= 8; }

[[noreturn]] void system_error(const std::string& what, const std::string& path) {
  throw std::runtime_error(fmt::format("cannot {} '{}': {}", what, path, std::strerror(errno)));
}

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, bytes, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) system_error("write", path);
    bytes += n;
    size -= static_cast<size_t>(n);
  }
}

template <class T>
void widen(const uint8_t* src, int64_t count, int64_t* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int64_t>(load<T>(src, i));
}

}  // namespace

size_t dtype_size(TokenDtype dtype) {
  switch (dtype) {
    case TokenDtype::kUint8: case TokenDtype::kInt8: return 1;
    case TokenDtype::kInt16: case TokenDtype::kUint16: return 2;
    case TokenDtype::kInt32: case TokenDtype::kFloat32: return 4;
    case TokenDtype::kInt64: case TokenDtype::kFloat64: return 8;
  }
  return 0;
}

const char* dtype_name(TokenDtype dtype) {
  switch (dtype) {
    case TokenDtype::kUint8: return "uint8";
    case TokenDtype::kInt8: return "int8";
    case TokenDtype::kInt16: return "int16";
    case TokenDtype::kInt32: return "int32";
    case TokenDtype::kInt64: return "int64";
    case TokenDtype::kFloat64: return "float64";
    case TokenDtype::kFloat32: return "float32";
    case TokenDtype::kUint16: return "uint16";
  }
  return "unknown";
}

TokenDtype dtype_for_vocab(int64_t vocab_size) {
  return vocab_size < 65500 ? TokenDtype::kUint16 : TokenDtype::kInt32;
}

IndexedDatasetWriter::IndexedDatasetWriter(std::string prefix, TokenDtype dtype)
    : prefix_(std::move(prefix)), dtype_(dtype) {
  if (dtype_ != TokenDtype::kUint16 && dtype_ != TokenDtype::kInt32) {
    throw std::invalid_argument("IndexedDatasetWriter writes uint16 or int32 tokens");
  }
  const std::string tag = fmt::format(".tmp.{}", ::getpid());
  bin_temp_ = prefix_ + ".bin" + tag;
  idx_temp_ = prefix_ + ".idx" + tag;
  fd_ = ::open(bin_temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) system_error("create", bin_temp_);
  buffer_.reserve(kWriteBuffer);
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) {
    ::unlink(bin_temp_.c_str());
    ::unlink(idx_temp_.c_str());
  }
}

void IndexedDatasetWriter::write_bytes(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  buffer_.insert(buffer_.end(), bytes, bytes + size);
  if (buffer_.size() >= kWriteBuffer) {
    write_all(fd_, buffer_.data(), buffer_.size(), bin_temp_);
    buffer_.clear();
  }
}

void IndexedDatasetWriter::add_document(const int32_t* tokens, size_t count) {
  if (count > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw InputError(fmt::format("{}: a document of {} tokens exceeds the format's int32 length", prefix_, count));
  }
  if (dtype_ == TokenDtype::kUint16) {
    narrow_.resize(count);
    for (size_t i = 0; i < count; ++i) {
      if (tokens[i] < 0 || tokens[i] > 65535) {
        throw InputError(fmt::format("{}: token id {} does not fit uint16", prefix_, tokens[i]));
      }
      narrow_[i] = static_cast<uint16_t>(tokens[i]);
    }
    write_bytes(narrow_.data(), count * 2);
  } else {
    write_bytes(tokens, count * 4);
  }
  lengths_.push_back(static_cast<int32_t>(count));
  tokens_ += static_cast<int64_t>(count);
}

void IndexedDatasetWriter::finish() {
  write_all(fd_, buffer_.data(), buffer_.size(), bin_temp_);
  buffer_.clear();
  if (::fsync(fd_) != 0) system_error("fsync", bin_temp_);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) system_error("close", bin_temp_);

  const int64_t count = static_cast<int64_t>(lengths_.size());
  std::vector<uint8_t> idx;
  idx.reserve(kHeaderSize + static_cast<size_t>(count) * 20 + 8);
  idx.insert(idx.end(), kMagic, kMagic + 9);
  append<uint64_t>(idx, 1);
  append<uint8_t>(idx, static_cast<uint8_t>(dtype_));
  append<uint64_t>(idx, static_cast<uint64_t>(count));
  append<uint64_t>(idx, static_cast<uint64_t>(count + 1));
  for (int32_t length : lengths_) append<int32_t>(idx, length);
  int64_t pointer = 0;
  for (int32_t length : lengths_) {
    append<int64_t>(idx, pointer);
    pointer += static_cast<int64_t>(length) * static_cast<int64_t>(dtype_size(dtype_));
  }
  for (int64_t d = 0; d <= count; ++d) append<int64_t>(idx, d);

  int idx_fd = ::open(idx_temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (idx_fd < 0) system_error("create", idx_temp_);
  write_all(idx_fd, idx.data(), idx.size(), idx_temp_);
  if (::fsync(idx_fd) != 0 || ::close(idx_fd) != 0) system_error("fsync", idx_temp_);

  // .bin first: a reader needs both, and checks that they agree.
  if (::rename(bin_temp_.c_str(), (prefix_ + ".bin").c_str()) != 0) system_error("rename into", prefix_ + ".bin");
  if (::rename(idx_temp_.c_str(), (prefix_ + ".idx").c_str()) != 0) system_error("rename into", prefix_ + ".idx");
  finished_ = true;
}

IndexedDataset::IndexedDataset(const std::string& prefix)
    : prefix_(prefix), idx_(prefix + ".idx"), bin_(prefix + ".bin") {
  const std::string& idx_path = idx_.path();
  auto bad = [&](const std::string& path, const std::string& what) {
    return InputError(fmt::format("'{}': {}", path, what));
  };
  if (idx_.size() < kHeaderSize) {
    throw bad(idx_path, fmt::format("{} bytes is too short for the 34-byte header of a Megatron index", idx_.size()));
  }
  const uint8_t* p = idx_.data();
  if (std::memcmp(p, kMagic, 9) != 0) throw bad(idx_path, "bad magic: not a Megatron MMapIndexedDataset index");
  const uint64_t version = load<uint64_t>(p + 9, 0);
  if (version != 1) throw bad(idx_path, fmt::format("index version {} is not supported (only 1)", version));
  const uint8_t code = p[17];
  if (!valid_code(code)) {
    throw bad(idx_path, fmt::format("dtype code {} is unknown; valid codes are 1-8", code));
  }
  dtype_ = static_cast<TokenDtype>(code);
  if (dtype_ == TokenDtype::kFloat32 || dtype_ == TokenDtype::kFloat64) {
    throw bad(idx_path, fmt::format("dtype {} cannot hold token ids", dtype_name(dtype_)));
  }
  const uint64_t sequences = load<uint64_t>(p + 18, 0);
  const uint64_t documents = load<uint64_t>(p + 26, 0);
  const uint64_t expected = kHeaderSize + sequences * 12 + documents * 8;
  if (sequences > (1ULL << 40) || documents > (1ULL << 40) || idx_.size() != expected) {
    if (idx_.size() == expected + sequences && sequences > 0) {
      throw bad(idx_path, "has sequence modes: multimodal datasets are not supported");
    }
    throw bad(idx_path, fmt::format("is {} bytes but its header ({} sequences, {} document boundaries) needs {}; "
                                    "the file is truncated or corrupt",
                                    idx_.size(), sequences, documents, expected));
  }
  sequence_count_ = static_cast<int64_t>(sequences);
  document_count_ = static_cast<int64_t>(documents);
  lengths_ = p + kHeaderSize;
  pointers_ = lengths_ + sequence_count_ * 4;
  doc_index_ = pointers_ + sequence_count_ * 8;

  if (document_count_ < 1 || document_index(0) != 0 || document_index(document_count_ - 1) != sequence_count_) {
    throw bad(idx_path, "document indices must start at 0 and end at the sequence count");
  }
  for (int64_t d = 1; d < document_count_; ++d) {
    if (document_index(d) < document_index(d - 1)) {
      throw bad(idx_path, fmt::format("document index {} decreases", d));
    }
  }
  const int64_t item = static_cast<int64_t>(dtype_size(dtype_));
  int64_t expected_pointer = 0;
  for (int64_t s = 0; s < sequence_count_; ++s) {
    const int64_t length = sequence_length(s);
    if (length < 0) throw bad(idx_path, fmt::format("sequence {} has negative length {}", s, length));
    if (sequence_pointer(s) != expected_pointer) {
      throw bad(idx_path, fmt::format("sequence {} starts at byte {} but the sequences before it end at {}; "
                                      "pointers must be cumulative",
                                      s, sequence_pointer(s), expected_pointer));
    }
    expected_pointer += length * item;
  }
  if (static_cast<int64_t>(bin_.size()) != expected_pointer) {
    throw bad(bin_.path(), fmt::format("is {} bytes but '{}' describes {} bytes of {} {} tokens; the pair does not "
                                       "match or one is truncated",
                                       bin_.size(), idx_path, expected_pointer, expected_pointer / item,
                                       dtype_name(dtype_)));
  }
  tokens_ = expected_pointer / item;
}

int64_t IndexedDataset::sequence_length(int64_t s) const { return load<int32_t>(lengths_, s); }
int64_t IndexedDataset::sequence_pointer(int64_t s) const { return load<int64_t>(pointers_, s); }
int64_t IndexedDataset::document_index(int64_t d) const { return load<int64_t>(doc_index_, d); }

int64_t IndexedDataset::document_offset(int64_t d) const {
  const int64_t first = document_index(d);
  const int64_t item = static_cast<int64_t>(dtype_size(dtype_));
  return first < sequence_count_ ? sequence_pointer(first) / item : tokens_;
}

int64_t IndexedDataset::document_length(int64_t d) const { return document_offset(d + 1) - document_offset(d); }

void IndexedDataset::read_tokens(int64_t offset, int64_t count, int64_t* out) const {
  if (offset < 0 || count < 0 || offset + count > tokens_) {
    throw std::out_of_range(fmt::format("{}.bin: tokens [{}, {}) are outside its {} tokens", prefix_, offset,
                                        offset + count, tokens_));
  }
  const uint8_t* src = bin_.data() + offset * static_cast<int64_t>(dtype_size(dtype_));
  switch (dtype_) {
    case TokenDtype::kUint8: widen<uint8_t>(src, count, out); break;
    case TokenDtype::kInt8: widen<int8_t>(src, count, out); break;
    case TokenDtype::kInt16: widen<int16_t>(src, count, out); break;
    case TokenDtype::kUint16: widen<uint16_t>(src, count, out); break;
    case TokenDtype::kInt32: widen<int32_t>(src, count, out); break;
    case TokenDtype::kInt64: widen<int64_t>(src, count, out); break;
    default: throw std::logic_error("float token dtype passed validation");
  }
  bin_.check_intact();  // a truncated .bin read as zeros: stop before they are trained on
}

void IndexedDataset::check_unchanged() const {
  idx_.check_unchanged();
  bin_.check_unchanged();
}

}  // namespace cpt::data
