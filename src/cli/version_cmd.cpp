// cpt-train version [--json]

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "cpt/backend/backend.h"
#include "cpt/backend/build_info.h"
#include "cpt/backend/cpu_threads.h"
#include "cpt/common/error.h"
#include "cpt/common/strings.h"
#include "cpt/dist/process_group.h"

namespace cpt::cli {

Command add_version_command(CLI::App& parent) {
  auto json = std::make_shared<bool>(false);
  auto backends = std::make_shared<bool>(false);
  CLI::App* app = parent.add_subcommand("version", "print the version and what this build links against");
  add_examples(*app, {{"cpt-train version --backends", "LibTorch, CUDA, NCCL, and which accelerators this machine has"},
                      {"cpt-train version --json", "the same as one JSON object, for bug reports"}});
  app->add_flag("--json", *json, "print one JSON object");
  app->add_flag("--backends", *backends, "also list the accelerator backends and what this machine has of each");
  return {app, [json, backends]() -> int {
            const backend::BuildInfo info = backend::build_info();
            std::vector<backend::Availability> found;
            if (*backends) found = backend::probe_backends();
            if (*json) {
              nlohmann::ordered_json out = {{"version", CPT_VERSION},      {"git", CPT_GIT_DESCRIBE},
                                            {"build_type", CPT_BUILD_TYPE}, {"libtorch", info.torch_version},
                                            {"cuda_built", info.cuda_built}, {"cuda", info.cuda_version},
                                            {"cudnn", info.cudnn_version}, {"nccl", dist::nccl_version()},
                                            {"cuda_devices", info.cuda_devices},
                                            {"cpu_threads", info.cpu_threads},
                                            {"process_groups", dist::built_process_groups()}};
              for (const auto& b : found) {
                out["backends"][b.name] = {{"available", b.available}, {"detail", b.detail}};
              }
              std::printf("%s\n", out.dump(2).c_str());
              return kExitOk;
            }
            std::printf("cpt-train %s (git %s, %s build)\n", CPT_VERSION, CPT_GIT_DESCRIBE, CPT_BUILD_TYPE);
            std::string cuda = "CPU-only build";
            if (info.cuda_built) {
              cuda = fmt::format("CUDA {}, cuDNN {}, NCCL {} built in; {} CUDA device(s)", info.cuda_version,
                                 info.cudnn_version.empty() ? "none" : info.cudnn_version,
                                 dist::nccl_version().empty() ? "none" : dist::nccl_version(), info.cuda_devices);
            }
            // The threads a run of the model would use here, and why that many.
            std::printf("LibTorch %s, %s, %d CPU thread%s for a run (%s)\n", info.torch_version.c_str(), cuda.c_str(),
                        info.cpu_threads, info.cpu_threads == 1 ? "" : "s",
                        std::getenv("OMP_NUM_THREADS") != nullptr
                            ? "OMP_NUM_THREADS"
                            : fmt::format("{} of this machine's {} cores allowed by CPU affinity{}", backend::allowed_cpus(),
                                          std::thread::hardware_concurrency(),
                                          std::getenv("LOCAL_WORLD_SIZE") != nullptr ? ", shared by LOCAL_WORLD_SIZE ranks" : "")
                                  .c_str());
            std::printf("process groups: %s\n", join(dist::built_process_groups(), ", ").c_str());
            for (const auto& b : found) std::printf("%s\n", backend::describe_availability(b.name).c_str());
            return kExitOk;
          }};
}

}  // namespace cpt::cli
