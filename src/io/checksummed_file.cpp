#include "cpt/io/checksummed_file.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <future>
#include <stdexcept>

#include "cpt/common/crc32c.h"

namespace cpt::io {

namespace {

// O_DIRECT needs the memory address, the file offset and the length
// aligned to the device's logical block; 4 KiB covers 512-byte and 4K
// devices alike.
constexpr uint64_t kBlock = 4096;
constexpr size_t kStaging = size_t{8} << 20;
// One buffer filling while up to two are written (a virtual or network
// disk is fastest with several writes queued).
constexpr size_t kStreamBuffers = 3;
// Buffered writes of at least this size run beside their checksum.
constexpr size_t kOverlapAtLeast = size_t{1} << 20;

[[noreturn]] void system_error(const std::string& what, const std::string& path) {
  throw std::runtime_error(fmt::format("cannot {} '{}': {}", what, path, std::strerror(errno)));
}

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, FreeDeleter>;

AlignedBuffer aligned_buffer(size_t size) {
  void* p = nullptr;
  if (::posix_memalign(&p, kBlock, size) != 0) throw std::bad_alloc();
  return AlignedBuffer(static_cast<uint8_t*>(p));
}

void pwrite_all(int fd, const uint8_t* p, size_t size, uint64_t at, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) system_error("write", path);
    if (n == 0) {
      errno = EIO;
      system_error("write", path);
    }
    p += n;
    at += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
}

// Whether the open file lives in memory (tmpfs, ramfs): there O_DIRECT,
// which tmpfs accepts since Linux 6.6, is the same copy into the file's
// pages with our staging copy before it, and no device to spare.
bool in_memory_file_system(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return false;
  return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
}

}  // namespace

struct ChecksummedFile::PartialBlock {
  AlignedBuffer bytes = aligned_buffer(kBlock);
  uint64_t filled = 0;
};

// The staging buffers of the writes that continue the file from its start:
// `buffers[current]` holds the file's bytes [begin, begin + filled), begin
// a multiple of the staging size; the others are on their way to the
// device, or free.
struct ChecksummedFile::Stream {
  std::array<AlignedBuffer, kStreamBuffers> buffers;
  std::array<std::future<void>, kStreamBuffers> writes;
  size_t current = 0;
  uint64_t begin = 0;
  size_t filled = 0;
  bool ended = false;

  uint64_t end() const { return begin + filled; }
  void wait_all() {
    for (auto& write : writes) {
      if (write.valid()) write.get();
    }
  }
};

ChecksummedFile::ChecksummedFile(std::string path, uint64_t size, Cache cache) : path_(std::move(path)), size_(size) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) system_error("create", path_);
  if (cache == Cache::kBypass && !in_memory_file_system(fd_)) {
    const int flags = ::fcntl(fd_, F_GETFL);
    direct_ = flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0;
    if (direct_) {
      // Some file systems accept O_DIRECT and refuse the write: one
      // aligned block tells (the real first block overwrites it).
      AlignedBuffer probe = aligned_buffer(kBlock);
      std::memset(probe.get(), 0, kBlock);
      if (::pwrite(fd_, probe.get(), kBlock, 0) != static_cast<ssize_t>(kBlock)) {
        direct_ = false;
        if (::fcntl(fd_, F_SETFL, flags) != 0) {
          const int error = errno;
          ::close(fd_);  // the constructor throws: no destructor will
          errno = error;
          system_error("clear O_DIRECT on", path_);
        }
      }
    }
  }
  if (!direct_ && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) system_error("size", path_);
  if (direct_) stream_ = std::make_unique<Stream>();
}

ChecksummedFile::~ChecksummedFile() {
  if (stream_) {
    // An unfinished file: its writes still read the staging buffers.
    for (auto& write : stream_->writes) {
      try {
        if (write.valid()) write.get();
      } catch (const std::exception&) {  // the owner removes the file
      }
    }
  }
  if (fd_ >= 0) ::close(fd_);
}

void ChecksummedFile::write(uint64_t at, const void* bytes, size_t size) {
  if (at > size_ || size > size_ - at) {
    throw std::out_of_range(fmt::format("write of {} bytes at {} past the end of '{}' ({} bytes)", size, at, path_, size_));
  }
  if (size == 0) return;
  const auto* p = static_cast<const uint8_t*>(bytes);
  uint32_t crc = 0;
  if (direct_) {
    if (!append_to_stream(at, p, size, crc)) crc = write_staged(at, p, size);
  } else if (size < kOverlapAtLeast) {
    crc = crc32c(0, p, size);
    const std::lock_guard<std::mutex> one_writer(page_cache_mutex_);
    pwrite_all(fd_, p, size, at, path_);
  } else {
    // The copy into the page cache on one core, the checksum on another.
    auto written = std::async(std::launch::async, [&] {
      const std::lock_guard<std::mutex> one_writer(page_cache_mutex_);
      pwrite_all(fd_, p, size, at, path_);
    });
    crc = crc32c(0, p, size);
    written.get();
  }
  const std::lock_guard<std::mutex> lock(mutex_);
  pieces_.push_back({at, size, crc});
}

// Copies a write that starts where the stream ends into the staging
// buffers, checksumming it on the way; returns false, copying nothing, for
// any other write.
bool ChecksummedFile::append_to_stream(uint64_t at, const uint8_t* bytes, size_t size, uint32_t& crc) {
  const std::lock_guard<std::mutex> lock(stream_mutex_);
  Stream& s = *stream_;
  if (s.ended || at != s.end()) return false;
  while (size > 0) {
    if (!s.buffers[s.current]) s.buffers[s.current] = aligned_buffer(kStaging);
    const size_t n = std::min(size, kStaging - s.filled);
    crc = crc32c(crc, bytes, n);
    std::memcpy(s.buffers[s.current].get() + s.filled, bytes, n);
    s.filled += n;
    bytes += n;
    size -= n;
    if (s.filled == kStaging) submit_stream_buffer();
  }
  return true;
}

// Sends the full current buffer to the device and makes the next one
// current, once its own earlier write is done.
void ChecksummedFile::submit_stream_buffer() {
  Stream& s = *stream_;
  const uint8_t* buffer = s.buffers[s.current].get();
  const size_t n = s.filled;
  const uint64_t at = s.begin;
  s.writes[s.current] = std::async(std::launch::async, [this, buffer, n, at] { pwrite_all(fd_, buffer, n, at, path_); });
  s.begin += n;
  s.filled = 0;
  s.current = (s.current + 1) % kStreamBuffers;
  if (s.writes[s.current].valid()) s.writes[s.current].get();
}

// Writes what the stream still holds: its whole blocks now, the bytes of
// its last, incomplete block with the other writes into that block.
void ChecksummedFile::end_stream() {
  const std::lock_guard<std::mutex> lock(stream_mutex_);
  Stream& s = *stream_;
  if (s.ended) return;
  s.ended = true;
  s.wait_all();
  const size_t whole = s.filled / kBlock * kBlock;
  const uint8_t* buffer = s.buffers[s.current].get();
  if (whole > 0) pwrite_all(fd_, buffer, whole, s.begin, path_);
  if (s.filled > whole) add_to_block(s.begin + whole, buffer + whole, s.filled - whole);
}

// A write out of the stream's order: the unaligned head and tail wait in
// their blocks; the whole blocks between go through a staging buffer of
// their own, checksummed as they are copied.
uint32_t ChecksummedFile::write_staged(uint64_t at, const uint8_t* p, size_t size) {
  uint32_t crc = 0;
  const uint64_t end = at + size;
  const uint64_t first_whole = std::min((at + kBlock - 1) / kBlock * kBlock, end);
  const uint64_t end_whole = std::max(end / kBlock * kBlock, first_whole);
  if (first_whole > at) {
    crc = crc32c(crc, p, first_whole - at);
    add_to_block(at, p, first_whole - at);
  }
  if (end_whole > first_whole) {
    const AlignedBuffer staging = aligned_buffer(static_cast<size_t>(std::min<uint64_t>(kStaging, end_whole - first_whole)));
    for (uint64_t offset = first_whole; offset < end_whole;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kStaging, end_whole - offset));
      const uint8_t* source = p + (offset - at);
      crc = crc32c(crc, source, n);
      std::memcpy(staging.get(), source, n);
      pwrite_all(fd_, staging.get(), n, offset, path_);
      offset += n;
    }
  }
  if (end > end_whole) {
    crc = crc32c(crc, p + (end_whole - at), end - end_whole);
    add_to_block(end_whole, p + (end_whole - at), end - end_whole);
  }
  return crc;
}

// Bytes within one block; the block is written once all of its bytes in
// the file are there (the last block's tail past the end is zeros).
void ChecksummedFile::add_to_block(uint64_t at, const uint8_t* bytes, size_t size) {
  const uint64_t block = at / kBlock;
  const uint64_t in_file = std::min(kBlock, size_ - block * kBlock);
  std::unique_ptr<PartialBlock> complete;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::unique_ptr<PartialBlock>& partial = partial_blocks_[block];
    if (!partial) {
      partial = std::make_unique<PartialBlock>();
      std::memset(partial->bytes.get(), 0, kBlock);
    }
    std::memcpy(partial->bytes.get() + (at - block * kBlock), bytes, size);
    partial->filled += size;
    if (partial->filled >= in_file) {
      complete = std::move(partial);
      partial_blocks_.erase(block);
    }
  }
  if (complete) pwrite_all(fd_, complete->bytes.get(), kBlock, block * kBlock, path_);
}

FileChecksum ChecksummedFile::finish() {
  if (stream_) end_stream();
  const std::lock_guard<std::mutex> lock(mutex_);
  std::sort(pieces_.begin(), pieces_.end(), [](const Piece& a, const Piece& b) { return a.at < b.at; });
  uint32_t crc = 0;
  uint64_t covered = 0;
  for (const Piece& piece : pieces_) {
    if (piece.at != covered) {
      throw std::logic_error(fmt::format("'{}': bytes [{}, {}) were written {}", path_, std::min(piece.at, covered),
                                         std::max(piece.at, covered), piece.at > covered ? "never" : "twice"));
    }
    crc = crc32c_combine(crc, piece.crc, piece.size);
    covered += piece.size;
  }
  if (covered != size_) {
    throw std::logic_error(fmt::format("'{}': bytes [{}, {}) were never written", path_, covered, size_));
  }
  if (!partial_blocks_.empty()) {
    throw std::logic_error(fmt::format("'{}': block {} is incomplete", path_, partial_blocks_.begin()->first));
  }
  // The last block went out whole; cut the file back to its size.
  if (direct_ && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) system_error("size", path_);
  if (::fsync(fd_) != 0) system_error("fsync", path_);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) system_error("close", path_);
  return {size_, crc};
}

}  // namespace cpt::io
