#include "cpt/dist/process_group.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
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
  void all_gather(const at::Tensor& local, std::vector<at::Tensor> outputs) override { outputs.at(0).copy_(local); }
  void barrier() override {}
};

// c10d's Gloo group. In LibTorch 1.13 ProcessGroupGloo is a ProcessGroup
// and its work a ProcessGroup::Work; in 2.x a Backend and a c10d::Work. The
// calls below are the same in both, so `auto` is the whole adapter.
class GlooGroup final : public ProcessGroup {
 public:
  GlooGroup(const LaunchEnv& env, const Config& config) : ProcessGroup(env.rank, env.world_size), timeout_s_(config.timeout_s) {
    const std::chrono::milliseconds timeout(config.timeout_s * 1000);
    try {
      c10d::TCPStoreOptions store_options;
      store_options.port = static_cast<uint16_t>(env.master_port);
      store_options.isServer = env.rank == 0;
      store_options.numWorkers = env.world_size;
      store_options.timeout = timeout;
      auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
      auto options = c10d::ProcessGroupGloo::Options::create();
      options->timeout = timeout;
      // As torch.distributed: GLOO_SOCKET_IFNAME picks the network interface
      // (e.g. the InfiniBand or EFA one); otherwise the host name's address.
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      options->devices.push_back(interface != nullptr && *interface != '\0'
                                     ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
    } catch (const c10::Error& e) {
      throw PeerFailure(fmt::format("could not join the {}-process group at {}:{} within "
                                    "distributed.timeout_s={}: {}",
                                    env.world_size, env.master_addr, env.master_port, config.timeout_s,
                                    first_line(e.what_without_backtrace())));
    } catch (const std::exception& e) {
      throw PeerFailure(fmt::format("could not join the {}-process group at {}:{}: {}",
                                    env.world_size, env.master_addr, env.master_port, first_line(e.what())));
    }
  }

  std::string backend_name() const override { return "gloo"; }

  Pending all_reduce_sum(at::Tensor tensor) override {
    std::vector<at::Tensor> tensors{std::move(tensor)};
    return guard("all-reduce", [&] { return group_->allreduce(tensors); });
  }

  void all_gather(const at::Tensor& local, std::vector<at::Tensor> outputs) override {
    std::vector<std::vector<at::Tensor>> out{std::move(outputs)};
    std::vector<at::Tensor> in{local};
    guard("all-gather", [&] { return group_->allgather(out, in); }).wait();
  }

  void barrier() override {
    guard("barrier", [&] { return group_->barrier(); }).wait();
  }

 private:
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

  int64_t timeout_s_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const LaunchEnv& env, const Config& config) {
  if (env.world_size == 1) return std::make_unique<LocalGroup>();
  check_rendezvous(env);
  if (config.backend == "nccl") {
    throw NotBuiltYet("distributed.backend nccl", "issue #7; use gloo");
  }
  spdlog::info("joining {} ranks through {}:{} (gloo)", env.world_size, env.master_addr, env.master_port);
  return std::make_unique<GlooGroup>(env, config);
}

}  // namespace cpt::dist
