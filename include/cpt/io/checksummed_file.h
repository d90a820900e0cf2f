#pragma once
// A new file of known size, written at any offsets in any order (by several
// threads at once), whose CRC-32C is computed from the bytes as they are
// written, so a checkpoint's manifest needs no second pass over its files.
//
// With Cache::kBypass the file is opened O_DIRECT where the file system
// allows it: the bytes go from a small aligned staging buffer straight to
// the device, with no page cache to fill and then flush at fsync. That is
// what large checkpoint writers do (DeepSpeed's FastPersist), and on a
// virtual disk it is several times faster than a buffered write + fsync.
// Pieces that do not cover whole 4 KiB blocks wait in memory until their
// block is complete. Where O_DIRECT is refused, the file is written through
// the page cache as before.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpt/io/checksums.h"

namespace cpt::io {

class ChecksummedFile {
 public:
  enum class Cache { kKeep, kBypass };

  // Creates (truncates) `path` at `size` bytes.
  ChecksummedFile(std::string path, uint64_t size, Cache cache);
  ~ChecksummedFile();  // closes the file; removing an unfinished one is the owner's call
  ChecksummedFile(const ChecksummedFile&) = delete;
  ChecksummedFile& operator=(const ChecksummedFile&) = delete;

  // Writes `size` bytes at byte `at`. Thread-safe; every byte of the file
  // must be written exactly once before finish().
  void write(uint64_t at, const void* bytes, size_t size);

  // Checks that the writes tiled the file, writes what still waits, fsyncs
  // and closes. Returns the file's size and CRC-32C.
  FileChecksum finish();

  bool bypasses_cache() const { return direct_; }
  const std::string& path() const { return path_; }

 private:
  struct Piece {
    uint64_t at, size;
    uint32_t crc;
  };
  struct PartialBlock;

  void write_through(uint64_t at, const uint8_t* bytes, size_t size);
  void add_to_block(uint64_t at, const uint8_t* bytes, size_t size);
  void write_block(uint64_t block, const uint8_t* bytes);

  std::string path_;
  uint64_t size_ = 0;
  int fd_ = -1;
  bool direct_ = false;
  std::mutex mutex_;
  std::vector<Piece> pieces_;
  std::map<uint64_t, std::unique_ptr<PartialBlock>> partial_blocks_;
};

}  // namespace cpt::io
