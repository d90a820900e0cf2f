#include "cpt/dist/process_group.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <functional>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cpt/common/error.h"

namespace cpt::dist {

void Pending::wait() {
  if (!wait_) return;
  auto wait = std::move(wait_);
  wait_ = nullptr;
  wait();
}

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// One process: every collective is the identity.
class LocalGroup final : public ProcessGroup {
 public:
  LocalGroup() : ProcessGroup(0, 1) {}
  std::string backend_name() const override { return "local"; }
  Pending all_reduce_sum(at::Tensor) override { return {}; }
  Pending reduce_scatter_sum(at::Tensor output, std::vector<at::Tensor> inputs) override {
    output.copy_(inputs.at(0));
    return {};
  }
  void all_gather(const at::Tensor& local, std::vector<at::Tensor> outputs) override { outputs.at(0).copy_(local); }
  void barrier() override {}
};

// The rendezvous: a TCPStore served by rank 0. Failing to meet the peers
// within distributed.timeout_s is a PeerFailure naming the address.
c10::intrusive_ptr<c10d::Store> connect_store(const LaunchEnv& env, const Config& config) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env.master_port);
  store_options.isServer = env.rank == 0;
  store_options.numWorkers = env.world_size;
  store_options.timeout = std::chrono::milliseconds(config.timeout_s * 1000);
  return c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
}

// A c10d backend (ProcessGroupGloo, or ProcessGroupNCCL in a CUDA build)
// behind the trainer's collectives. NCCL takes device tensors only: the few
// host scalars the trainer reduces (the loss, the stop flag, eval sums)
// travel through the group's device.
template <class C10dGroup>
class C10dProcessGroup final : public ProcessGroup {
 public:
  using Factory = std::function<c10::intrusive_ptr<C10dGroup>(const c10::intrusive_ptr<c10d::Store>&)>;

  C10dProcessGroup(const LaunchEnv& env, const Config& config, std::string name, c10::optional<c10::Device> device,
                   const Factory& create)
      : ProcessGroup(env.rank, env.world_size), name_(std::move(name)), device_(device), timeout_s_(config.timeout_s) {
    try {
      group_ = create(connect_store(env, config));
    } catch (const c10::Error& e) {
      throw PeerFailure(fmt::format("could not join the {}-process {} group at {}:{} within "
                                    "distributed.timeout_s={}: {}",
                                    env.world_size, name_, env.master_addr, env.master_port, config.timeout_s,
                                    first_line(e.what_without_backtrace())));
    } catch (const std::exception& e) {
      throw PeerFailure(fmt::format("could not join the {}-process {} group at {}:{}: {}", env.world_size, name_,
                                    env.master_addr, env.master_port, first_line(e.what())));
    }
  }

  std::string backend_name() const override { return name_; }

  Pending all_reduce_sum(at::Tensor tensor) override {
    at::Tensor staged = staged_on_device(tensor);
    std::vector<at::Tensor> tensors{staged};
    Pending reduce = guard("all-reduce", [&] { return group_->allreduce(tensors); });
    if (staged.is_same(tensor)) return reduce;
    return Pending([reduce, tensor, staged]() mutable {
      reduce.wait();
      tensor.copy_(staged);
    });
  }

  // The list form of reduce_scatter: Gloo and NCCL both implement it from
  // 2.11 on (the single-tensor form was renamed in 2.14).
  Pending reduce_scatter_sum(at::Tensor output, std::vector<at::Tensor> inputs) override {
    at::Tensor staged = staged_on_device(output);
    std::vector<at::Tensor> outputs{staged};
    std::vector<std::vector<at::Tensor>> staged_inputs(1);
    for (const auto& input : inputs) staged_inputs[0].push_back(staged_on_device(input));
    Pending scatter = guard("reduce-scatter", [&] { return group_->reduce_scatter(outputs, staged_inputs); });
    if (staged.is_same(output)) return scatter;
    return Pending([scatter, output, staged]() mutable {
      scatter.wait();
      output.copy_(staged);
    });
  }

  void all_gather(const at::Tensor& local, std::vector<at::Tensor> outputs) override {
    std::vector<std::vector<at::Tensor>> out(1);
    for (const auto& o : outputs) out[0].push_back(staged_on_device(o));
    std::vector<at::Tensor> in{staged_on_device(local)};
    guard("all-gather", [&] { return group_->allgather(out, in); }).wait();
    for (size_t r = 0; r < outputs.size(); ++r) {
      if (!out[0][r].is_same(outputs[r])) outputs[r].copy_(out[0][r]);
    }
  }

  void barrier() override {
    c10d::BarrierOptions options;
    if (device_) options.device_ids = {device_->index()};
    guard("barrier", [&] { return group_->barrier(options); }).wait();
  }

 private:
  at::Tensor staged_on_device(const at::Tensor& t) const {
    return device_ && t.device() != *device_ ? t.to(*device_) : t;
  }

  // Starts a collective and turns c10d's failures (with their backtraces)
  // into one line saying which collective failed and why.
  template <class Start>
  Pending guard(const char* what, Start&& start) {
    auto fail = [timeout = timeout_s_, what](const std::string& why) {
      return PeerFailure(fmt::format("{} failed; another rank exited, or did not answer within "
                                     "distributed.timeout_s={}: {}",
                                     what, timeout, first_line(why)));
    };
    try {
      auto work = start();
      return Pending([work, fail] {
        try {
          work->wait();
        } catch (const c10::Error& e) {
          throw fail(e.what_without_backtrace());
        } catch (const std::exception& e) {
          throw fail(e.what());
        }
      });
    } catch (const c10::Error& e) {
      throw fail(e.what_without_backtrace());
    }
  }

  std::string name_;
  c10::optional<c10::Device> device_;  // where collectives run, when host tensors must be staged (NCCL)
  int64_t timeout_s_;
  c10::intrusive_ptr<C10dGroup> group_;
};

std::unique_ptr<ProcessGroup> connect_gloo(const LaunchEnv& env, const Config& config) {
  return std::make_unique<C10dProcessGroup<c10d::ProcessGroupGloo>>(
      env, config, "gloo", c10::nullopt, [&](const c10::intrusive_ptr<c10d::Store>& store) {
        auto options = c10d::ProcessGroupGloo::Options::create();
        options->timeout = std::chrono::milliseconds(config.timeout_s * 1000);
        // As torch.distributed: GLOO_SOCKET_IFNAME picks the network
        // interface (e.g. the InfiniBand or EFA one); otherwise the host
        // name's address.
        const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
        options->devices.push_back(interface != nullptr && *interface != '\0'
                                       ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
        return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
      });
}

std::unique_ptr<ProcessGroup> connect_nccl(const LaunchEnv& env, const Config& config) {
#ifdef USE_C10D_NCCL
  // One GPU per process: LOCAL_RANK's, as the CUDA backend chose.
  const c10::Device device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  return std::make_unique<C10dProcessGroup<c10d::ProcessGroupNCCL>>(
      env, config, "nccl", device, [&](const c10::intrusive_ptr<c10d::Store>& store) {
        auto options = c10d::ProcessGroupNCCL::Options::create();
        options->timeout = std::chrono::milliseconds(config.timeout_s * 1000);
        return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, options);
      });
#else
  (void)env, (void)config;
  throw InputError(
      "distributed.backend nccl: this build has no NCCL (its LibTorch is a CPU build, or nccl.h was not found when "
      "it was built; scripts/build-cuda.sh builds against a CUDA LibTorch); use gloo");
#endif
}

}  // namespace

std::vector<std::string> built_process_groups() {
#ifdef USE_C10D_NCCL
  return {"gloo", "nccl"};
#else
  return {"gloo"};
#endif
}

std::string nccl_version() {
#ifdef USE_C10D_NCCL
  return c10d::getNcclVersion();
#else
  return "";
#endif
}

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const LaunchEnv& env, const Config& config) {
  if (env.world_size == 1) return std::make_unique<LocalGroup>();
  check_rendezvous(env);
  spdlog::info("joining {} ranks through {}:{} ({})", env.world_size, env.master_addr, env.master_port,
               config.backend);
  return config.backend == "nccl" ? connect_nccl(env, config) : connect_gloo(env, config);
}

}  // namespace cpt::dist
