// The split described in cpt/cli/app.h: which command lines cpt-train runs
// itself, and the exec that hands the others to cpt-train-torch.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "cpt/cli/app.h"
#include "cpt/common/error.h"
#include "cpt/common/log.h"
#include "cpt/dist/env.h"

namespace fs = std::filesystem;

namespace cpt::cli {

namespace {

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// Asks glibc's malloc (2.35 and later) to back its large blocks with
// transparent huge pages where the kernel grants them on request (THP
// "madvise", the usual default): the trainer's parameters, gradients,
// optimizer state and activations are blocks of many megabytes, touched
// every step, and with 4 KiB pages a step spent its time in TLB misses and
// in faulting and clearing the pages of each step's new activations. On a
// ~100M model on 2 cores it trained 2-4% faster in fp32 and 3-5% in bf16.
// A value the user gave for the tunable stands; older glibc ignores it.
void ask_malloc_for_huge_pages() {
  constexpr const char* kTunable = "glibc.malloc.hugetlb";
  const char* given = std::getenv("GLIBC_TUNABLES");
  std::string tunables = given != nullptr ? given : "";
  if (tunables.find(kTunable) != std::string::npos) return;
  if (!tunables.empty()) tunables += ':';
  tunables.append(kTunable).append("=1");
  ::setenv("GLIBC_TUNABLES", tunables.c_str(), 1);
}

}  // namespace

bool needs_torch(int argc, char** argv) {
  int i = 1;
  while (i < argc) {  // a leading --log-level, which the commands also take after their name
    const std::string arg = argv[i];
    if (arg == "--log-level" && i + 1 < argc) {
      i += 2;
    } else if (starts_with(arg, "--log-level=")) {
      ++i;
    } else {
      break;
    }
  }
  if (i >= argc) return true;
  const std::string command = argv[i];
  if (command == "tokenize" || command == "data" || command == "report") return false;
  if (command != "merge") return true;
  for (int j = i + 1; j < argc; ++j) {
    const std::string arg = argv[j];
    if (arg == "--sweep" || starts_with(arg, "--sweep=")) return true;  // scores merges with the model
  }
  return false;
}

void exec_torch_executable(char** argv) {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  const fs::path path = (error ? fs::current_path() : self.parent_path()) / kTorchExecutable;
  ask_malloc_for_huge_pages();  // read by the new process's malloc at its start
  ::execv(path.c_str(), argv);
  const int failure = errno;
  init_logging("info", dist::launch_env_from_environment().rank);  // to stderr, as every error line
  spdlog::error("cannot run '{}' ({}): cpt-train runs train, eval, generate and version (everything that needs "
                "LibTorch) there; install it beside '{}'",
                path.string(), std::strerror(failure), self.string());
  std::exit(kExitFailure);
}

}  // namespace cpt::cli
