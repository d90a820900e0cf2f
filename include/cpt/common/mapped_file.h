#pragma once
// A read-only memory map of a whole file (RAII).
//
// A file truncated by another program while it is mapped would kill the
// process with SIGBUS on the next read past its new end. Every mapping is
// registered with a SIGBUS handler that maps zeros over the faulting page
// and marks the mapping damaged, so the read completes and its caller
// (check_intact) stops with an error naming the file instead.

#include <cstddef>
#include <cstdint>
#include <string>

namespace cpt {

class MappedFile {
 public:
  // Throws InputError naming the path when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Throws InputError naming the file if a read since it was mapped went
  // past its end on disk (the file was truncated). One atomic load: cheap
  // enough after every read.
  void check_intact() const;

  // Throws InputError naming the file if it is no longer the file that was
  // mapped: truncated, rewritten (size or modification time changed) or
  // replaced (another inode under the path). One stat().
  void check_unchanged() const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  int slot_ = -1;  // in the SIGBUS handler's table of mappings; -1 when not registered
  uint64_t device_ = 0, inode_ = 0;
  int64_t mtime_ns_ = 0;
};

}  // namespace cpt
