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
// Writes that continue the file from its start (a safetensors writer's
// header, then each tensor in turn) are gathered into 8 MiB staging
// buffers, checksummed as they are copied, and go out as whole buffers
// while the next ones fill: the device sees large sequential writes, as
// from a raw `dd`, however small the tensors. Other writes stage their
// whole blocks on their own; bytes that do not cover a whole 4 KiB block
// wait in memory until their block is complete. Where O_DIRECT is refused,
// and on tmpfs and ramfs (no device: the staging copy would only add to
// the copy into the file's pages), the file is written through the page
// cache, each piece's write beside its checksum.

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
  struct Stream;

  bool append_to_stream(uint64_t at, const uint8_t* bytes, size_t size, uint32_t& crc);
  void submit_stream_buffer();
  void end_stream();
  uint32_t write_staged(uint64_t at, const uint8_t* bytes, size_t size);
  void add_to_block(uint64_t at, const uint8_t* bytes, size_t size);

  std::string path_;
  uint64_t size_ = 0;
  int fd_ = -1;
  bool direct_ = false;
  std::mutex mutex_;
  std::vector<Piece> pieces_;
  std::map<uint64_t, std::unique_ptr<PartialBlock>> partial_blocks_;
  // One buffered write at a time: concurrent ones serialise on the file's
  // lock in the kernel anyway, and the waiters spun there.
  std::mutex page_cache_mutex_;
  std::mutex stream_mutex_;  // held while a continuing write is copied in
  std::unique_ptr<Stream> stream_;  // O_DIRECT only
};

}  // namespace cpt::io
