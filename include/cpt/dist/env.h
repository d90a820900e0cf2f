#pragma once
// Where this process sits in the job, read from torchrun's or SLURM's
// environment variables.

#include <string>

namespace cpt::dist {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string launcher = "none";  // torchrun | slurm | none
};

// torchrun's RANK/WORLD_SIZE/LOCAL_RANK win over SLURM_PROCID/SLURM_NTASKS/
// SLURM_LOCALID; neither means a single process. Throws InputError naming a
// variable that is set but not a valid number.
LaunchEnv launch_env_from_environment();

}  // namespace cpt::dist
