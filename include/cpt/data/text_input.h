#pragma once
// Raw documents from disk: JSONL (one JSON object per line) or plain text
// (one document per file), each optionally gzip- or zstd-compressed.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cpt::data {

enum class InputFormat { kJsonl, kText };
enum class Compression { kNone, kGzip, kZstd };

struct InputFile {
  std::string path;
  InputFormat format = InputFormat::kJsonl;
  Compression compression = Compression::kNone;
};

// By extension: .jsonl/.json/.ndjson or .txt, then optionally .gz or .zst.
// Throws InputError for anything else.
InputFile classify_input(const std::string& path);

class ByteStream;

// Reads records: a JSONL line, or the whole of a .txt file.
class RecordReader {
 public:
  explicit RecordReader(const InputFile& file);
  ~RecordReader();

  // False at the end. `line` is the 1-based line a JSONL record started on.
  bool next(std::string& record, int64_t& line);
  // On-disk (compressed) bytes of the records returned so far: the bytes
  // read, less the share of them still buffered and unparsed.
  uint64_t bytes_consumed() const;

 private:
  bool fill();

  InputFile file_;
  std::unique_ptr<ByteStream> stream_;
  std::string buffer_;
  size_t position_ = 0;
  uint64_t produced_ = 0;  // bytes the stream has delivered (decompressed)
  bool eof_ = false;
  int64_t line_ = 0;
};

bool valid_utf8(std::string_view text);

// The document text of a record, or empty with `reason` set: invalid JSON,
// not an object, missing key, value not a string, invalid UTF-8.
bool document_text(std::string_view record, InputFormat format, const std::string& text_key, std::string& text,
                   std::string& reason);

}  // namespace cpt::data
