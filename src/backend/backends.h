#pragma once
// The backends the registry knows; each lives in its own file.

#include <memory>

#include "cpt/backend/backend.h"

namespace cpt::backend {

Availability probe_cpu();
std::unique_ptr<Backend> create_cpu(int local_rank);

Availability probe_cuda();
std::unique_ptr<Backend> create_cuda(int local_rank);

Availability probe_neuron();
std::unique_ptr<Backend> create_neuron(int local_rank);

}  // namespace cpt::backend
