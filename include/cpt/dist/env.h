#pragma once
// Where this process sits in the job and where its peers meet, read from
// torchrun's or SLURM's environment variables.

#include <string>
#include <vector>

namespace cpt::dist {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string launcher = "none";  // torchrun | slurm | none
  std::string master_addr;  // host of rank 0's TCPStore; empty: not given
  int master_port = 0;      // 0: not given
};

// torchrun's RANK/WORLD_SIZE/LOCAL_RANK win over SLURM_PROCID/SLURM_NTASKS/
// SLURM_LOCALID; neither means a single process.
//
// The rendezvous: MASTER_ADDR, else (SLURM) the first host of
// SLURM_JOB_NODELIST. MASTER_PORT, else `configured_port` when > 0, else
// (SLURM) 20000 + SLURM_JOB_ID % 20000 so that jobs sharing a node do not
// collide, else (not torchrun) 29500. Throws InputError naming a variable
// that is set but not valid.
LaunchEnv launch_env_from_environment(int configured_port = 0);

// Throws InputError naming what a multi-process job lacks to meet (no
// MASTER_ADDR, MASTER_PORT or SLURM host list).
void check_rendezvous(const LaunchEnv& env);

// Expands SLURM's compressed host list ("gpu-[01-04,07],login1",
// "rack[1-2]-n[01-02]") into host names in SLURM's order, keeping the
// zero-padding of each range. Throws InputError naming the list on a
// malformed one.
std::vector<std::string> expand_slurm_nodelist(const std::string& nodelist);

}  // namespace cpt::dist
