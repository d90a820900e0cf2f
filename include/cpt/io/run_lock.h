#pragma once
// One run at a time per output directory: <output_dir>/.cpt-train.lock names
// the holder (host, pid, SLURM job) and is touched every minute while the run
// lives, so a second run, or a second job on another node, is refused
// instead of interleaving checkpoints and metrics with the first.
//
// A lock is stale, and taken over with a warning, when its holder is on this
// host and no longer running, when it belongs to this same SLURM job (a
// requeue runs the job again only after the earlier run ended), or when it
// has not been touched for `stale_after_s` (a holder on another host that
// died without cleaning up).

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace cpt::io {

class RunLock {
 public:
  static constexpr const char* kFileName = ".cpt-train.lock";

  // Takes the lock, creating `output_dir` if needed. Throws InputError
  // naming the holder and the lock file when another live run holds it.
  explicit RunLock(const std::string& output_dir, int stale_after_s = 600);
  ~RunLock();  // removes the lock file
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  void heartbeat_loop();

  std::string path_;
  std::string contents_;  // what this process wrote, to never remove another holder's lock
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread heartbeat_;
};

}  // namespace cpt::io
