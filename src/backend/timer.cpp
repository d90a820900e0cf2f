// Device timers: the host clock around a synchronise (every backend), and
// device events (backends with timing events, through the device-generic
// c10::Event, so no CUDA header is needed).

#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <chrono>

#include "backends.h"

namespace cpt::backend {

namespace {

using Clock = std::chrono::steady_clock;

class HostClockTimer final : public DeviceTimer {
 public:
  explicit HostClockTimer(const Backend& backend) : backend_(backend) {
    backend_.synchronize();
    start_ = Clock::now();
  }
  void stop() override {
    backend_.synchronize();
    seconds_ = std::chrono::duration<double>(Clock::now() - start_).count();
  }
  double seconds() override { return seconds_; }

 private:
  const Backend& backend_;
  Clock::time_point start_;
  double seconds_ = 0;
};

// Events on the device's current stream; BACKEND_DEFAULT is the flag that
// enables timing (PYTORCH_DEFAULT creates CUDA events without it).
class EventTimer final : public DeviceTimer {
 public:
  explicit EventTimer(const c10::Device& device)
      : device_(device),
        start_(device.type(), c10::EventFlag::BACKEND_DEFAULT),
        stop_(device.type(), c10::EventFlag::BACKEND_DEFAULT) {
    start_.record(current_stream());
  }
  void stop() override { stop_.record(current_stream()); }
  double seconds() override {
    stop_.synchronize();
    return start_.elapsedTime(stop_) / 1e3;  // milliseconds
  }

 private:
  c10::Stream current_stream() const { return c10::impl::VirtualGuardImpl(device_.type()).getStream(device_); }

  c10::Device device_;
  c10::Event start_, stop_;
};

}  // namespace

std::unique_ptr<DeviceTimer> Backend::start_timer() const { return std::make_unique<HostClockTimer>(*this); }

std::unique_ptr<DeviceTimer> start_event_timer(const Backend& backend) {
  return std::make_unique<EventTimer>(backend.device());
}

}  // namespace cpt::backend
