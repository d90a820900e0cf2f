#include "cpt/common/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <mutex>

#include "cpt/common/error.h"

namespace cpt {

namespace {

// The mappings the SIGBUS handler may repair. Lock-free reads from the
// handler; registration takes a mutex.
struct Region {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<bool> faulted{false};
};
constexpr int kMaxRegions = 4096;
Region g_regions[kMaxRegions];
std::mutex g_regions_mutex;
struct sigaction g_previous_sigbus;
uintptr_t g_page_size = 4096;

void on_sigbus(int signal, siginfo_t* info, void* context) {
  const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (auto& region : g_regions) {
    const uintptr_t begin = region.begin.load(std::memory_order_acquire);
    if (begin == 0 || address < begin || address >= region.end.load(std::memory_order_acquire)) continue;
    // Zeros over the page the file no longer backs: the faulting read
    // completes, and its caller sees `faulted` and stops.
    void* page = reinterpret_cast<void*>(address & ~(g_page_size - 1));
    if (::mmap(page, g_page_size, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
      region.faulted.store(true, std::memory_order_release);
      return;
    }
    break;
  }
  // Not one of ours (or beyond repair): what would have happened without us.
  if (g_previous_sigbus.sa_flags & SA_SIGINFO) {
    if (g_previous_sigbus.sa_sigaction != nullptr) return g_previous_sigbus.sa_sigaction(signal, info, context);
  } else if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
    return g_previous_sigbus.sa_handler(signal);
  }
  ::signal(SIGBUS, SIG_DFL);  // returning re-runs the faulting access, which now ends the process
}

int register_region(const uint8_t* data, size_t size) {
  const std::lock_guard<std::mutex> lock(g_regions_mutex);
  static const bool installed = [] {
    g_page_size = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    return ::sigaction(SIGBUS, &action, &g_previous_sigbus) == 0;
  }();
  if (!installed) return -1;
  for (int i = 0; i < kMaxRegions; ++i) {
    if (g_regions[i].begin.load(std::memory_order_relaxed) != 0) continue;
    g_regions[i].faulted.store(false, std::memory_order_relaxed);
    g_regions[i].end.store(reinterpret_cast<uintptr_t>(data) + size, std::memory_order_release);
    g_regions[i].begin.store(reinterpret_cast<uintptr_t>(data), std::memory_order_release);
    return i;
  }
  return -1;  // table full: this mapping is unprotected, as every mapping was before
}

void unregister_region(int slot) {
  if (slot < 0) return;
  const std::lock_guard<std::mutex> lock(g_regions_mutex);
  g_regions[slot].begin.store(0, std::memory_order_release);
  g_regions[slot].end.store(0, std::memory_order_release);
}

int64_t mtime_ns(const struct stat& info) {
  return static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int error = errno;
    ::close(fd);
    throw InputError(fmt::format("cannot stat '{}': {}", path, std::strerror(error)));
  }
  size_ = static_cast<size_t>(info.st_size);
  device_ = info.st_dev;
  inode_ = info.st_ino;
  mtime_ns_ = mtime_ns(info);
  if (size_ > 0) {
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      throw InputError(fmt::format("cannot mmap '{}': {}", path, std::strerror(error)));
    }
    data_ = static_cast<const uint8_t*>(mapped);
    slot_ = register_region(data_, size_);
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(other.data_),
      size_(other.size_),
      slot_(other.slot_),
      device_(other.device_),
      inode_(other.inode_),
      mtime_ns_(other.mtime_ns_) {
  other.data_ = nullptr;
  other.size_ = 0;
  other.slot_ = -1;
}

MappedFile::~MappedFile() {
  unregister_region(slot_);
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::check_intact() const {
  if (slot_ >= 0 && g_regions[slot_].faulted.load(std::memory_order_acquire)) {
    throw InputError(fmt::format("'{}' was truncated while this process was reading it (another program changed "
                                 "the file); stopped before using the missing bytes",
                                 path_));
  }
}

void MappedFile::check_unchanged() const {
  check_intact();
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0) {
    throw InputError(fmt::format("'{}' was removed while this process was reading it: {}", path_, std::strerror(errno)));
  }
  if (info.st_dev != device_ || info.st_ino != inode_) {
    throw InputError(fmt::format("'{}' was replaced by another file while this process was reading it", path_));
  }
  if (static_cast<size_t>(info.st_size) != size_ || mtime_ns(info) != mtime_ns_) {
    throw InputError(fmt::format("'{}' was rewritten while this process was reading it ({} bytes when opened, {} "
                                 "now, or a newer modification time)",
                                 path_, size_, info.st_size));
  }
}

}  // namespace cpt
