#include "cpt/data/text_input.h"

#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <vector>

#include "cpt/common/error.h"

namespace cpt::data {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

constexpr size_t kChunk = 1 << 20;

}  // namespace

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  virtual size_t read(char* out, size_t size) = 0;  // 0 at the end
  virtual uint64_t consumed() const = 0;
};

namespace {

class PlainStream : public ByteStream {
 public:
  explicit PlainStream(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    if (file_ == nullptr) throw InputError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  }
  ~PlainStream() override { std::fclose(file_); }
  size_t read(char* out, size_t size) override {
    size_t n = std::fread(out, 1, size, file_);
    if (n == 0 && std::ferror(file_)) throw InputError(fmt::format("cannot read '{}'", path_));
    consumed_ += n;
    return n;
  }
  uint64_t consumed() const override { return consumed_; }

 protected:
  std::string path_;
  FILE* file_;
  uint64_t consumed_ = 0;
};

class GzipStream : public ByteStream {
 public:
  explicit GzipStream(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    if (file_ == nullptr) throw InputError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
    gzbuffer(file_, 1 << 18);
  }
  ~GzipStream() override { gzclose(file_); }
  size_t read(char* out, size_t size) override {
    int n = gzread(file_, out, static_cast<unsigned>(size));
    if (n < 0) {
      int code = 0;
      throw InputError(fmt::format("'{}' is not valid gzip: {}", path_, gzerror(file_, &code)));
    }
    return static_cast<size_t>(n);
  }
  uint64_t consumed() const override { return static_cast<uint64_t>(gzoffset(file_)); }

 private:
  std::string path_;
  gzFile file_;
};

class ZstdStream : public ByteStream {
 public:
  explicit ZstdStream(const std::string& path) : raw_(path), path_(path), context_(ZSTD_createDCtx()) {
    input_buffer_.resize(ZSTD_DStreamInSize());
  }
  ~ZstdStream() override { ZSTD_freeDCtx(context_); }
  size_t read(char* out, size_t size) override {
    ZSTD_outBuffer output{out, size, 0};
    while (output.pos == 0) {
      if (input_.pos == input_.size) {
        size_t n = raw_.read(input_buffer_.data(), input_buffer_.size());
        if (n == 0) {
          if (!frame_done_) throw InputError(fmt::format("'{}' is a truncated zstd stream", path_));
          return 0;
        }
        input_ = ZSTD_inBuffer{input_buffer_.data(), n, 0};
      }
      size_t rc = ZSTD_decompressStream(context_, &output, &input_);
      if (ZSTD_isError(rc)) {
        throw InputError(fmt::format("'{}' is not valid zstd: {}", path_, ZSTD_getErrorName(rc)));
      }
      frame_done_ = rc == 0;
    }
    return output.pos;
  }
  uint64_t consumed() const override { return raw_.consumed(); }

 private:
  PlainStream raw_;
  std::string path_;
  ZSTD_DCtx* context_;
  std::vector<char> input_buffer_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  bool frame_done_ = true;
};

}  // namespace

InputFile classify_input(const std::string& path) {
  InputFile file;
  file.path = path;
  std::string name = path;
  if (ends_with(name, ".gz")) {
    file.compression = Compression::kGzip;
    name.resize(name.size() - 3);
  } else if (ends_with(name, ".zst")) {
    file.compression = Compression::kZstd;
    name.resize(name.size() - 4);
  }
  if (ends_with(name, ".jsonl") || ends_with(name, ".json") || ends_with(name, ".ndjson")) {
    file.format = InputFormat::kJsonl;
  } else if (ends_with(name, ".txt")) {
    file.format = InputFormat::kText;
  } else {
    throw InputError(fmt::format("'{}': unknown input type; use .jsonl (one JSON document per line) or .txt (one "
                                 "document per file), optionally .gz or .zst",
                                 path));
  }
  return file;
}

RecordReader::RecordReader(const InputFile& file) : file_(file) {
  switch (file.compression) {
    case Compression::kNone: stream_ = std::make_unique<PlainStream>(file.path); break;
    case Compression::kGzip: stream_ = std::make_unique<GzipStream>(file.path); break;
    case Compression::kZstd: stream_ = std::make_unique<ZstdStream>(file.path); break;
  }
}

RecordReader::~RecordReader() = default;

uint64_t RecordReader::bytes_consumed() const {
  const uint64_t read = stream_->consumed();
  if (produced_ == 0) return read;
  const uint64_t parsed = produced_ - (buffer_.size() - position_);
  return static_cast<uint64_t>(static_cast<double>(read) * static_cast<double>(parsed) / static_cast<double>(produced_));
}

bool RecordReader::fill() {
  if (eof_) return false;
  buffer_.erase(0, position_);
  position_ = 0;
  size_t old = buffer_.size();
  buffer_.resize(old + kChunk);
  size_t n = stream_->read(buffer_.data() + old, kChunk);
  buffer_.resize(old + n);
  produced_ += n;
  if (n == 0) eof_ = true;
  return n > 0;
}

bool RecordReader::next(std::string& record, int64_t& line) {
  if (file_.format == InputFormat::kText) {
    if (line_ > 0) return false;
    while (fill()) {
    }
    record.assign(buffer_, position_);
    buffer_.clear();
    position_ = 0;
    line = line_ = 1;
    return true;
  }
  while (true) {
    size_t newline = buffer_.find('\n', position_);
    if (newline != std::string::npos) {
      record.assign(buffer_, position_, newline - position_);
      position_ = newline + 1;
      line = ++line_;
      if (!record.empty() && record.back() == '\r') record.pop_back();
      return true;
    }
    if (!fill()) {
      if (position_ >= buffer_.size()) return false;
      record.assign(buffer_, position_);  // last line without a newline
      position_ = buffer_.size();
      line = ++line_;
      return true;
    }
  }
}

bool valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size(), i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      if (i + k >= n || (s[i + k] & 0xC0) != 0x80) return false;
      code = (code << 6) | (s[i + k] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are invalid.
    static const uint32_t minimum[] = {0, 0x80, 0x800, 0x10000};
    if (code < minimum[extra] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

namespace {

// Pulls one top-level string field out of a JSON object without building
// the whole document tree: a JSONL line is parsed once per document, so the
// DOM's allocations would cost more than the parse.
class TextFieldFinder : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit TextFieldFinder(const std::string& key) : key_(key) {}

  bool null() override { return value("null"); }
  bool boolean(bool) override { return value("a boolean"); }
  bool number_integer(number_integer_t) override { return value("a number"); }
  bool number_unsigned(number_unsigned_t) override { return value("a number"); }
  bool number_float(number_float_t, const string_t&) override { return value("a number"); }
  bool string(string_t& val) override {
    if (depth_ == 1 && at_key_) {
      found_ = true;
      text_ = std::move(val);
    }
    at_key_ = false;
    return true;
  }
  bool binary(binary_t&) override { return value("binary"); }
  bool start_object(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }
  bool key(string_t& val) override {
    at_key_ = depth_ == 1 && val == key_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    syntax_error_ = true;
    return false;
  }

  bool syntax_error() const { return syntax_error_; }
  bool top_is_object() const { return top_is_object_; }
  bool found() const { return found_; }
  const char* wrong_kind() const { return wrong_kind_; }
  std::string& text() { return text_; }

 private:
  bool value(const char* kind) {
    if (depth_ == 1 && at_key_) wrong_kind_ = kind;
    at_key_ = false;
    return true;
  }
  bool open(bool object) {
    if (depth_ == 0) top_is_object_ = object;
    if (depth_ == 1 && at_key_) wrong_kind_ = object ? "an object" : "a list";
    at_key_ = false;
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  const std::string& key_;
  int depth_ = 0;
  bool at_key_ = false;
  bool found_ = false;
  bool syntax_error_ = false;
  bool top_is_object_ = false;
  const char* wrong_kind_ = nullptr;
  std::string text_;
};

}  // namespace

bool document_text(std::string_view record, InputFormat format, const std::string& text_key, std::string& text,
                   std::string& reason) {
  // Checked first so that a broken byte is reported as such, not as bad JSON.
  if (!valid_utf8(record)) {
    reason = "invalid UTF-8";
    return false;
  }
  if (format == InputFormat::kText) {
    text.assign(record);
    return true;
  }
  TextFieldFinder finder(text_key);
  nlohmann::json::sax_parse(record.begin(), record.end(), &finder);
  if (finder.syntax_error()) {
    reason = "invalid JSON";
    return false;
  }
  if (!finder.top_is_object()) {
    reason = "not a JSON object";
    return false;
  }
  if (finder.wrong_kind() != nullptr) {
    reason = fmt::format("\"{}\" is {}, not a string", text_key, finder.wrong_kind());
    return false;
  }
  if (!finder.found()) {
    reason = fmt::format("no \"{}\" key", text_key);
    return false;
  }
  text = std::move(finder.text());
  return true;
}

}  // namespace cpt::data
