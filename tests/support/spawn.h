#pragma once
// A command started in the background that the test can stop, signal and
// resume: for faults that must land at a chosen moment of a run (the run
// stops itself with SIGSTOP at a test hook; the test acts, then continues it).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "support/run_command.h"
#include "support/temp_dir.h"

namespace cpt::testing {

class Spawned {
 public:
  // Runs `command` with sh; its last word runs under `exec`, so the pid is the command's.
  explicit Spawned(const std::string& command) {
    const std::string line = "exec " + command + " >" + capture_.file("out") + " 2>" + capture_.file("err") + " </dev/null";
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Spawned() {
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      ::kill(pid_, SIGCONT);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;

  pid_t pid() const { return pid_; }

  // True once the process has stopped itself (SIGSTOP); false if it exited instead.
  bool wait_stopped() {
    int status = 0;
    if (::waitpid(pid_, &status, WUNTRACED) != pid_) throw std::runtime_error("waitpid failed");
    if (WIFSTOPPED(status)) return true;
    finish(status);
    return false;
  }

  void signal(int sig) { ::kill(pid_, sig); }
  void resume() { ::kill(pid_, SIGCONT); }

  // Waits for the exit; exit_code is -signal when a signal ended it.
  CommandResult wait() {
    while (!exited_) {
      int status = 0;
      if (::waitpid(pid_, &status, 0) != pid_) throw std::runtime_error("waitpid failed");
      if (WIFEXITED(status) || WIFSIGNALED(status)) finish(status);
    }
    return result_;
  }

 private:
  void finish(int status) {
    exited_ = true;
    result_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    result_.out = read_file(capture_.file("out"));
    result_.err = read_file(capture_.file("err"));
  }

  TempDir capture_;
  pid_t pid_ = -1;
  bool exited_ = false;
  CommandResult result_;
};

}  // namespace cpt::testing
