#pragma once
// ATen's CPU threads for a process that runs the model. The torch wheel's
// OpenMP takes every core of the machine by default; ranks that share a
// node (torchrun's LOCAL_WORLD_SIZE) would then fight over them. Torch-facing.

#include <string>

namespace cpt::backend {

// Unless the user set OMP_NUM_THREADS, gives ATen the cores this process
// may run on (its CPU affinity: srun binds each task to its own), divided
// by LOCAL_WORLD_SIZE when torchrun says several ranks share the node.
void configure_cpu_threads();

// The cores this process may run on (its CPU affinity).
int allowed_cpus();

// "N CPU threads", for the log.
std::string describe_cpu_threads();

}  // namespace cpt::backend
