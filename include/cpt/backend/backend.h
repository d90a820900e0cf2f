#pragma once
// The accelerator behind one interface. The trainer asks its Backend for
// the device, bf16 support, synchronisation, memory statistics, host to
// device staging and the process-group backend; it never names CUDA or
// Neuron. Backends are registered by name in one table
// (src/backend/registry.cpp). Torch-facing (c10/ATen core headers only).

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cpt::backend {

struct MemoryStats {
  int64_t peak_bytes = -1;  // since the last reset; -1: not known on this backend
  std::string kind;         // what peak_bytes measures, e.g. "peak RSS"
};

// Seconds of device work between Backend::start_timer() and stop(). On a
// device with timing events, stop() records an event and returns at once;
// seconds() waits for it. Elsewhere stop() synchronises and reads the host
// clock.
class DeviceTimer {
 public:
  virtual ~DeviceTimer() = default;
  virtual void stop() = 0;
  virtual double seconds() = 0;  // after stop()
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // The device's product name ("NVIDIA H200"), for its nominal peak; the
  // backend's name where it has none to tell.
  virtual std::string model_name() const { return name(); }
  // This process's device (from LOCAL_RANK on multi-device machines).
  virtual c10::Device device() const = 0;
  // Whether train.precision bf16 runs as bf16 autocast here; fp32 otherwise.
  virtual bool supports_bf16() const = 0;
  // The c10d process group that `distributed.backend: auto` means here.
  virtual std::string process_group_backend() const = 0;
  // Waits for all work queued on the device, so host timers measure it.
  virtual void synchronize() const = 0;
  virtual MemoryStats memory() const = 0;
  virtual void reset_peak_memory() = 0;
  // A host tensor on the device: through pinned memory and a non-blocking
  // copy where the device has them; the same tensor on the CPU.
  virtual at::Tensor to_device(const at::Tensor& host) const = 0;
  // Starts timing the work queued from now on. This default synchronises
  // and uses the host clock.
  virtual std::unique_ptr<DeviceTimer> start_timer() const;
};

// What a registered backend finds in this build and on this machine.
struct Availability {
  std::string name;
  bool available = false;
  std::string detail;  // the devices found, or what is missing
};

// Every registered backend, in the table's order.
std::vector<Availability> probe_backends();

// "<name>: available: <detail>" or "<name>: not available: <why>", as
// `cpt-train version --backends` prints it.
std::string describe_availability(const std::string& name);

// The backend `name` (auto | a registered name) for the process with
// `local_rank`. auto = CUDA when present, else CPU. Throws InputError for
// an unknown name (listing the registered ones) or an unavailable one
// (saying what is missing, listing the available ones).
std::unique_ptr<Backend> select_backend(const std::string& name, int local_rank);

}  // namespace cpt::backend
