#include "cpt/dist/env.h"

#include <cstdlib>
#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::dist {

namespace {

int read_int(const char* name, int fallback, int minimum) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < minimum || value > (1 << 24)) {
    throw InputError(fmt::format("environment variable {}='{}' is not a valid number (>= {})", name, text, minimum));
  }
  return static_cast<int>(value);
}

bool is_set(const char* name) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0';
}

}  // namespace

LaunchEnv launch_env_from_environment() {
  LaunchEnv env;
  if (is_set("WORLD_SIZE") || is_set("RANK")) {
    env.launcher = "torchrun";
    env.rank = read_int("RANK", 0, 0);
    env.world_size = read_int("WORLD_SIZE", 1, 1);
    env.local_rank = read_int("LOCAL_RANK", 0, 0);
  } else if (is_set("SLURM_PROCID") && is_set("SLURM_NTASKS")) {
    env.launcher = "slurm";
    env.rank = read_int("SLURM_PROCID", 0, 0);
    env.world_size = read_int("SLURM_NTASKS", 1, 1);
    env.local_rank = read_int("SLURM_LOCALID", 0, 0);
  }
  if (env.rank >= env.world_size) {
    throw InputError(fmt::format("rank {} is outside the world of {} processes ({} environment)", env.rank,
                                 env.world_size, env.launcher));
  }
  return env;
}

}  // namespace cpt::dist
