#include "cpt/io/checksummed_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <deque>
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
constexpr size_t kInFlight = 2;

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

}  // namespace

struct ChecksummedFile::PartialBlock {
  AlignedBuffer bytes = aligned_buffer(kBlock);
  uint64_t filled = 0;
};

ChecksummedFile::ChecksummedFile(std::string path, uint64_t size, Cache cache) : path_(std::move(path)), size_(size) {
  constexpr int kFlags = O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC;
  if (cache == Cache::kBypass) {
    fd_ = ::open(path_.c_str(), kFlags | O_DIRECT, 0644);
    direct_ = fd_ >= 0;
    if (direct_) {
      // Some file systems accept O_DIRECT at open and refuse the write:
      // one aligned block tells (the real first block overwrites it).
      AlignedBuffer probe = aligned_buffer(kBlock);
      std::memset(probe.get(), 0, kBlock);
      if (::pwrite(fd_, probe.get(), kBlock, 0) != static_cast<ssize_t>(kBlock)) {
        ::close(fd_);
        fd_ = -1;
        direct_ = false;
      }
    }
  }
  if (fd_ < 0) fd_ = ::open(path_.c_str(), kFlags, 0644);
  if (fd_ < 0) system_error("create", path_);
  if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) system_error("size", path_);
}

ChecksummedFile::~ChecksummedFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ChecksummedFile::write(uint64_t at, const void* bytes, size_t size) {
  if (at > size_ || size > size_ - at) {
    throw std::out_of_range(fmt::format("write of {} bytes at {} past the end of '{}' ({} bytes)", size, at, path_, size_));
  }
  if (size == 0) return;
  const auto* p = static_cast<const uint8_t*>(bytes);
  uint32_t crc = 0;
  if (!direct_) {
    crc = crc32c(0, p, size);
    pwrite_all(fd_, p, size, at, path_);
  } else {
    // The unaligned head and tail wait in their blocks; the whole blocks
    // between go through a staging buffer, checksummed as they are copied.
    const uint64_t end = at + size;
    const uint64_t first_whole = std::min((at + kBlock - 1) / kBlock * kBlock, end);
    const uint64_t end_whole = std::max(end / kBlock * kBlock, first_whole);
    if (first_whole > at) {
      crc = crc32c(crc, p, first_whole - at);
      add_to_block(at, p, first_whole - at);
    }
    if (end_whole > first_whole) {
      // Staging buffers in turn: while the next piece is checksummed and
      // copied, up to kInFlight earlier ones are on their way to the device
      // (a virtual or network disk is fastest with several writes queued).
      thread_local std::array<AlignedBuffer, kInFlight + 1> staging;
      std::deque<std::future<void>> in_flight;
      size_t next = 0;
      for (uint64_t offset = first_whole; offset < end_whole;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kStaging, end_whole - offset));
        const uint8_t* source = p + (offset - at);
        crc = crc32c(crc, source, n);
        if (in_flight.size() == kInFlight) {
          in_flight.front().get();
          in_flight.pop_front();
        }
        if (!staging[next]) staging[next] = aligned_buffer(kStaging);
        uint8_t* buffer = staging[next].get();
        std::memcpy(buffer, source, n);
        in_flight.push_back(
            std::async(std::launch::async, [this, buffer, n, offset] { pwrite_all(fd_, buffer, n, offset, path_); }));
        next = (next + 1) % staging.size();
        offset += n;
      }
      for (auto& write : in_flight) write.get();
    }
    if (end > end_whole) {
      crc = crc32c(crc, p + (end_whole - at), end - end_whole);
      add_to_block(end_whole, p + (end_whole - at), end - end_whole);
    }
  }
  const std::lock_guard<std::mutex> lock(mutex_);
  pieces_.push_back({at, size, crc});
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
  if (complete) write_block(block, complete->bytes.get());
}

void ChecksummedFile::write_block(uint64_t block, const uint8_t* bytes) {
  pwrite_all(fd_, bytes, kBlock, block * kBlock, path_);
}

FileChecksum ChecksummedFile::finish() {
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
