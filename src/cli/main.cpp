// cpt-train: the commands that need no LibTorch, run here; every other
// command line goes to cpt-train-torch (cpt/cli/app.h says why).

#include <vector>

#include "commands.h"
#include "merge_sweep.h"
#include "cpt/cli/app.h"

namespace cpt::cli {

namespace {
char** original_argv = nullptr;
}  // namespace

int run_without_torch(int argc, char** argv) {
  CommandLine line;
  line.add_commands = [](CLI::App& app) {
    return std::vector<Command>{add_tokenize_command(app), add_data_command(app), add_merge_command(app),
                                add_report_command(app)};
  };
  return run_command_line(argc, argv, line);
}

// needs_torch() sends `merge --sweep` to cpt-train-torch before parsing; a
// spelling of the flag it did not foresee ends up here, and goes there too.
int run_merge_sweep(const MergeSweepArgs&) { exec_torch_executable(original_argv); }

}  // namespace cpt::cli

int main(int argc, char** argv) {
  cpt::cli::original_argv = argv;
  if (cpt::cli::needs_torch(argc, argv)) cpt::cli::exec_torch_executable(argv);
  return cpt::cli::run_without_torch(argc, argv);
}
