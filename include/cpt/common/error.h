#pragma once
// Error kinds and the process exit codes they map to (DESIGN.md, CLI contract).

#include <stdexcept>
#include <string>
#include <vector>

namespace cpt {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,    // runtime failure
  kExitBadInput = 2,   // bad usage, config or input
  kExitPreempted = 75, // stopped by a signal after saving a checkpoint
};

// Bad usage, config or input: the user can fix it. Exit code 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A subcommand whose module has not landed yet. Exit code 2, so scripts do
// not mistake it for a crash of working code.
class NotBuiltYet : public InputError {
 public:
  NotBuiltYet(const std::string& what, const std::string& tracked_in);
};

// A config value that breaks a rule. Validators throw it with the full key
// ("optimizer.lr") and a sentence about the value; the config loader turns it
// into "file:line: key: sentence" because only it knows where the key came from.
class ConfigValueError : public InputError {
 public:
  // `related`: the other keys whose values the check compared `key` with.
  ConfigValueError(std::string key, const std::string& message, std::vector<std::string> related = {});
  const std::string& key() const { return key_; }
  const std::vector<std::string>& related() const { return related_; }

 private:
  std::string key_;
  std::vector<std::string> related_;
};

// A collective failed: another rank exited, hung past distributed.timeout_s
// or cannot be reached. Exit code 1, at once: c10d's destructors would
// otherwise wait on the failed peer.
class PeerFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Maps an exception thrown out of a subcommand to the exit code.
int exit_code_for(const std::exception& error);

}  // namespace cpt
