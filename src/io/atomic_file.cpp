#include "cpt/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <stdexcept>

namespace fs = std::filesystem;

namespace cpt::io {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(fmt::format("cannot {} '{}': {}", what, path, std::strerror(errno)));
}

// Closes the descriptor and removes the temporary file unless committed.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("create", path_);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("write", path_);
      data.remove_prefix(static_cast<size_t>(n));
    }
  }
  void sync_and_close() {
    if (::fsync(fd_) != 0) fail("fsync", path_);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close", path_);
  }
  void commit_as(const std::string& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) fail("rename into", target);
    committed_ = true;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

void sync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail("fsync directory", dir);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view contents) {
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  TempFile temp(fmt::format("{}.tmp.{}", path, ::getpid()));
  temp.write_all(contents);
  temp.sync_and_close();
  temp.commit_as(path);
  sync_directory(dir.string());
}

LineAppender::LineAppender(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("open for appending", path_);
}

LineAppender::~LineAppender() {
  if (fd_ >= 0) ::close(fd_);
}

void LineAppender::append(std::string_view line) {
  std::string text(line);
  text += '\n';
  append_bytes(text);
}

void LineAppender::append_bytes(std::string_view text) {
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  ssize_t n;
  do {
    n = ::write(fd_, text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(text.size())) return;
  const int error = n < 0 ? errno : ENOSPC;  // a short write: the disk filled up mid-line
  // Best effort: the error below is what the user must see either way.
  [[maybe_unused]] const int cut = before >= 0 ? ::ftruncate(fd_, before) : -1;
  errno = error;
  fail("append to", path_);
}

}  // namespace cpt::io
