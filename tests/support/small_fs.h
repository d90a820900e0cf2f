#pragma once
// A real, small file system for the fault tests: a tmpfs of a given size,
// mounted in a private mount namespace of the test process, so it is
// invisible to the rest of the machine and vanishes with the process. The
// processes the test starts share it. Root mounts it directly; another user
// becomes root of a new user namespace first. Anything else is a failure
// with the reason, never a skip.

#include <fcntl.h>
#include <linux/fs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace cpt::testing {

class SmallFilesystem {
 public:
  explicit SmallFilesystem(size_t bytes) : size_(bytes) {
    enter_private_mount_namespace();
    mount_point_ = dir_.file("fs");
    std::filesystem::create_directories(mount_point_);
    const std::string options = "size=" + std::to_string(bytes) + ",mode=0777";
    if (::mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      throw std::runtime_error("cannot mount a tmpfs at " + mount_point_ + ": " + std::strerror(errno));
    }
  }
  ~SmallFilesystem() { ::umount2(mount_point_.c_str(), MNT_DETACH); }

  std::string path() const { return mount_point_; }
  std::string file(const std::string& name) const { return mount_point_ + "/" + name; }

  uint64_t free_bytes() const {
    struct statvfs info {};
    ::statvfs(mount_point_.c_str(), &info);
    return static_cast<uint64_t>(info.f_bavail) * info.f_frsize;
  }

  // Takes all but `leave_free` bytes with a filler file (whole pages).
  void fill(uint64_t leave_free) {
    const uint64_t take = free_bytes() > leave_free ? free_bytes() - leave_free : 0;
    std::vector<char> block(1 << 16, 'x');
    const int fd = ::open(filler().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    uint64_t written = 0;
    while (written < take) {
      const ssize_t n = ::write(fd, block.data(), std::min<uint64_t>(block.size(), take - written));
      if (n <= 0) break;  // full
      written += static_cast<uint64_t>(n);
    }
    ::close(fd);
  }
  void unfill() { std::filesystem::remove(filler()); }


 private:
  std::string filler() const { return mount_point_ + "/.filler"; }

  static void enter_private_mount_namespace() {
    static const bool entered = [] {
      if (::unshare(CLONE_NEWNS) != 0) {
        const uid_t uid = ::getuid();
        const gid_t gid = ::getgid();
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
          throw std::runtime_error(std::string("cannot make a mount namespace (as root, or in a user namespace): ") +
                                   std::strerror(errno));
        }
        TempDir::write_to("/proc/self/setgroups", "deny");
        TempDir::write_to("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
        TempDir::write_to("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
      }
      // Mounts made from here on stay in this namespace.
      if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        throw std::runtime_error(std::string("cannot make / private: ") + std::strerror(errno));
      }
      return true;
    }();
    (void)entered;
  }

  TempDir dir_;
  std::string mount_point_;
  size_t size_;
};

// Makes a directory unwritable while files in it stay open, as a changed
// permission or a quota would: for root (whom permissions do not stop) by
// the immutable attribute (chattr +i), for anyone else by its mode.
inline void set_unwritable(const std::string& dir, bool unwritable) {
  if (::geteuid() != 0) {
    ::chmod(dir.c_str(), unwritable ? 0555 : 0755);
    return;
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  int flags = 0;
  if (fd < 0 || ::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    throw std::runtime_error("cannot read the attributes of " + dir + ": " + std::strerror(errno));
  }
  flags = unwritable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  const int rc = ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error("cannot set the attributes of " + dir + ": " + std::strerror(error));
}

}  // namespace cpt::testing
