#pragma once
// The backends the registry knows; each lives in its own file.

#include <memory>

#include "cpt/backend/backend.h"

namespace cpt::backend {

// A timer of device events where this LibTorch has device-generic event
// timing (c10::Event::elapsedTime); the host-clock timer otherwise.
std::unique_ptr<DeviceTimer> start_event_timer(const Backend& backend);

Availability probe_cpu();
std::unique_ptr<Backend> create_cpu(int local_rank);

Availability probe_cuda();
std::unique_ptr<Backend> create_cuda(int local_rank);

Availability probe_neuron();
std::unique_ptr<Backend> create_neuron(int local_rank);

}  // namespace cpt::backend
