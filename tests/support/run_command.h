#pragma once
// Runs a shell command and captures its exit code, stdout and stderr.

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace cpt::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  double wall_s = 0;  // run_ranks: how long this rank ran
};

inline CommandResult run_command(const std::string& command) {
  TempDir capture;
  const std::string out = capture.file("stdout");
  const std::string err = capture.file("stderr");
  const int status = std::system((command + " >" + out + " 2>" + err + " </dev/null").c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(out);
  result.err = read_file(err);
  return result;
}

// A TCP port on the loopback that nothing listens on right now.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t size = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

enum class Launcher { kTorchrun, kSlurm };

// Runs `command` as every rank of one job at once, as torchrun (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT on the loopback) or srun on one
// node (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST, and a
// SLURM_JOB_ID from which the port is derived) would; rank_env[r], when
// given, adds "NAME=value ..." for rank r. Returns each rank's result, in
// rank order, once all have exited.
inline std::vector<CommandResult> run_ranks(int world, const std::string& command,
                                            const std::vector<std::string>& rank_env = {},
                                            Launcher launcher = Launcher::kTorchrun) {
  TempDir capture;
  int port = free_port();
  // SLURM's port is 20000 + SLURM_JOB_ID % 20000: keep to that range.
  while (launcher == Launcher::kSlurm && (port < 20000 || port >= 40000)) port = free_port();
  std::string script;
  for (int r = 0; r < world; ++r) {
    const std::string extra = static_cast<size_t>(r) < rank_env.size() ? rank_env[static_cast<size_t>(r)] : "";
    const std::string prefix = capture.file(std::to_string(r));
    const std::string rank = std::to_string(r), size = std::to_string(world);
    const std::string variables =
        launcher == Launcher::kTorchrun
            ? "RANK=" + rank + " WORLD_SIZE=" + size + " LOCAL_RANK=" + rank +
                  " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port)
            : "SLURM_PROCID=" + rank + " SLURM_NTASKS=" + size + " SLURM_LOCALID=" + rank +
                  " SLURM_JOB_NODELIST=localhost,node-[02-03] SLURM_JOB_ID=" + std::to_string(port - 20000 + 940000);
    script += "(start=$EPOCHREALTIME; env -u RANK -u WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT " + variables + " " +
              extra + " " + command + " >" + prefix + ".out 2>" + prefix + ".err </dev/null; echo $? >" + prefix +
              ".rc; echo $start $EPOCHREALTIME >" + prefix + ".time) &\n";
  }
  script += "wait\n";
  std::system(("bash " + capture.write("job.sh", script)).c_str());
  std::vector<CommandResult> results(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    const std::string prefix = capture.file(std::to_string(r));
    auto& result = results[static_cast<size_t>(r)];
    const std::string rc = read_file(prefix + ".rc");
    result.exit_code = rc.empty() ? -1 : std::stoi(rc);
    result.out = read_file(prefix + ".out");
    result.err = read_file(prefix + ".err");
    double start = 0, end = 0;
    std::istringstream(read_file(prefix + ".time")) >> start >> end;
    result.wall_s = end - start;
  }
  return results;
}

}  // namespace cpt::testing
