#pragma once
// Progress of a long job: a live line on a terminal, a log line every 30 s
// in batch jobs (SLURM logs would fill with carriage returns otherwise).

#include <unistd.h>

#include <cstdio>
#include <spdlog/spdlog.h>
#include <string>

namespace cpt::cli {

class ProgressLine {
 public:
  explicit ProgressLine(std::string job) : job_(std::move(job)), terminal_(::isatty(STDERR_FILENO) != 0) {}

  void update(const std::string& line, double seconds) {
    if (terminal_) {
      std::fprintf(stderr, "\r%s\033[K", line.c_str());
    } else if (seconds - last_logged_ >= 30) {
      last_logged_ = seconds;
      spdlog::info("{}: {}", job_, line);
    }
  }

  // Ends the live line so the next log line starts on its own.
  void finish() {
    if (terminal_) std::fprintf(stderr, "\n");
  }

 private:
  std::string job_;
  bool terminal_;
  double last_logged_ = 0;
};

}  // namespace cpt::cli
