#include "cpt/io/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>

#include "cpt/common/error.h"

namespace fs = std::filesystem;

namespace cpt::io {

namespace {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

std::string slurm_job() {
  const char* job = std::getenv("SLURM_JOB_ID");
  return job != nullptr ? job : "";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Creates the lock file only if there is none; false when one exists.
bool create_exclusive(const std::string& path, const std::string& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw InputError(fmt::format("cannot create the lock file '{}': {}", path, std::strerror(errno)));
  }
  const ssize_t n = ::write(fd, contents.data(), contents.size());
  const int error = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(contents.size())) {
    ::unlink(path.c_str());
    throw InputError(fmt::format("cannot write the lock file '{}': {}", path,
                                 n < 0 ? std::strerror(error) : "short write"));
  }
  return true;
}

}  // namespace

RunLock::RunLock(const std::string& output_dir, int stale_after_s) {
  std::error_code error;
  fs::create_directories(output_dir, error);
  if (error) throw InputError(fmt::format("run.output_dir '{}' cannot be created: {}", output_dir, error.message()));
  path_ = (fs::path(output_dir) / kFileName).string();
  const std::string host = host_name();
  const nlohmann::json me = {{"host", host},
                             {"pid", static_cast<int64_t>(::getpid())},
                             {"slurm_job_id", slurm_job()},
                             {"since", static_cast<int64_t>(std::time(nullptr))}};
  contents_ = me.dump() + "\n";

  for (int attempt = 0; attempt < 3; ++attempt) {
    if (create_exclusive(path_, contents_)) {
      heartbeat_ = std::thread([this] { heartbeat_loop(); });
      return;
    }
    const std::string text = read_text(path_);
    const nlohmann::json holder = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    struct stat info {};
    const bool exists = ::stat(path_.c_str(), &info) == 0;
    if (!exists) continue;  // released between our two looks
    const int64_t idle_s = static_cast<int64_t>(std::time(nullptr)) - static_cast<int64_t>(info.st_mtime);
    std::string stale_because;
    if (!holder.is_object() || !holder.contains("host") || !holder["host"].is_string() || !holder.contains("pid") ||
        !holder["pid"].is_number_integer()) {
      stale_because = "it is not a lock file cpt-train wrote";
    } else {
      const std::string holder_host = holder["host"];
      const auto pid = holder["pid"].get<int64_t>();
      const std::string job = holder.value("slurm_job_id", std::string());
      if (holder_host == host && (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH))) {
        stale_because = fmt::format("process {} on {} is no longer running", pid, host);
      } else if (!job.empty() && job == slurm_job()) {
        stale_because = fmt::format("it belongs to an earlier run of this SLURM job ({})", job);
      } else if (idle_s > stale_after_s) {
        stale_because = fmt::format("its holder has not touched it for {} s", idle_s);
      } else {
        throw InputError(fmt::format(
            "run.output_dir '{}' is in use by another run: {} pid {}{} holds '{}' (last seen {} s ago); wait for "
            "it to end or use another run.output_dir (if that run is gone, delete the lock file)",
            output_dir, holder_host, pid, job.empty() ? "" : fmt::format(" (SLURM job {})", job), path_,
            std::max<int64_t>(0, idle_s)));
      }
    }
    spdlog::warn("taking over the stale lock '{}': {}", path_, stale_because);
    // Only the lock just judged stale is removed: if another run took it
    // over meanwhile, its contents differ and the next attempt sees it live.
    if (read_text(path_) == text) ::unlink(path_.c_str());
  }
  throw InputError(fmt::format("cannot take the lock '{}': other runs keep taking it", path_));
}

RunLock::~RunLock() {
  if (heartbeat_.joinable()) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    heartbeat_.join();
  }
  if (read_text(path_) == contents_) ::unlink(path_.c_str());
}

void RunLock::heartbeat_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, std::chrono::seconds(60), [this] { return stopping_; })) {
    ::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0);  // now: the holder is alive
  }
}

}  // namespace cpt::io
