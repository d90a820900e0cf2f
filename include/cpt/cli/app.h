#pragma once
// The cpt-train command line. main() only calls this.

namespace cpt::cli {

// Parses argv, runs one subcommand, and maps any error to one log line and
// an exit code (0 done, 1 runtime failure, 2 bad usage/config/input,
// 75 preempted after saving).
int run(int argc, char** argv);

}  // namespace cpt::cli
