#pragma once
// Whole-file writes that are either complete or absent: readers never see a
// half-written file, and a crash never destroys the previous version.

#include <string>
#include <string_view>

namespace cpt::io {

// Writes to a temporary file beside `path`, fsyncs it, renames it over `path`
// and fsyncs the directory. Throws std::runtime_error naming the path and the
// system error; the temporary file is removed on failure.
void write_file_atomic(const std::string& path, std::string_view contents);

// A log of whole lines (metrics.jsonl): each line is appended with one
// write(); when the disk is full or the file cannot be written, the partial
// line is cut off again, so the file never ends in half a line, and the
// error names the path.
class LineAppender {
 public:
  explicit LineAppender(std::string path);  // opens (creates) for appending
  ~LineAppender();
  LineAppender(const LineAppender&) = delete;
  LineAppender& operator=(const LineAppender&) = delete;

  void append(std::string_view line);  // adds the '\n'
  // Appends `bytes` as they are, all or nothing, as append() does a line
  // (binary records: TensorBoard's event files).
  void append_bytes(std::string_view bytes);

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace cpt::io
