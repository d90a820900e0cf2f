#pragma once
// The cpt-train command line, in two executables that users see as one.
//
// `cpt-train` does not link LibTorch. It runs the commands that need no
// model (tokenize, data, merge without --sweep, report) itself, and hands
// every other command line, unchanged, to `cpt-train-torch` beside it by
// exec: the same process, so its id, signals, environment and exit code
// are what a launcher (srun, torchrun) sees. Loading LibTorch and the CUDA
// libraries it links took 0.5 s warm and 1.6 s or more cold, and 500 MB of
// resident memory, in front of every merge and tokenize that never used them.
//
// Both parse with the same code and exit the same way: 0 done, 1 runtime
// failure, 2 bad usage/config/input, 75 preempted after saving.

namespace cpt::cli {

// The file name of the LibTorch executable, looked for beside the running one.
inline constexpr const char* kTorchExecutable = "cpt-train-torch";

// Whether this command line is one `cpt-train` hands to cpt-train-torch:
// anything but tokenize, data, report and merge without --sweep (after an
// optional leading --log-level), including --help and misspelt commands,
// which list every command.
bool needs_torch(int argc, char** argv);

// Replaces this process with cpt-train-torch and the same arguments; on
// failure, logs one line naming the path looked for and exits with 1.
[[noreturn]] void exec_torch_executable(char** argv);

// cpt-train's own commands (the ones needs_torch() leaves to it).
int run_without_torch(int argc, char** argv);

// cpt-train-torch: every command.
int run(int argc, char** argv);

}  // namespace cpt::cli
