#include "cpt/dist/env.h"

#include <cctype>
#include <cstdlib>
#include <fmt/format.h>

#include "cpt/common/error.h"

namespace cpt::dist {

namespace {

long read_long(const char* name, long fallback, long minimum, long maximum) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < minimum || value > maximum) {
    throw InputError(fmt::format("environment variable {}='{}' is not a valid number ({}..{})", name, text, minimum,
                                 maximum));
  }
  return value;
}

int read_int(const char* name, int fallback, int minimum) {
  return static_cast<int>(read_long(name, fallback, minimum, 1 << 24));
}

bool is_set(const char* name) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0';
}

[[noreturn]] void bad_nodelist(const std::string& list, const std::string& why) {
  throw InputError(fmt::format("SLURM host list '{}': {}", list, why));
}

// "01-04,07" -> {"01","02","03","04","07"}, keeping each range's width.
std::vector<std::string> expand_ranges(const std::string& list, const std::string& ranges) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= ranges.size()) {
    size_t end = ranges.find(',', begin);
    if (end == std::string::npos) end = ranges.size();
    const std::string item = ranges.substr(begin, end - begin);
    const size_t dash = item.find('-');
    const std::string low = item.substr(0, dash);
    const std::string high = dash == std::string::npos ? low : item.substr(dash + 1);
    const auto all_digits = [](const std::string& s) {
      if (s.empty() || s.size() > 9) return false;
      for (char ch : s) {
        if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
      }
      return true;
    };
    if (!all_digits(low) || !all_digits(high)) bad_nodelist(list, fmt::format("'[{}]' is not a list of numbers", ranges));
    const long first = std::stol(low), last = std::stol(high);
    if (last < first) bad_nodelist(list, fmt::format("range '{}' runs backwards", item));
    if (last - first > 100000) bad_nodelist(list, fmt::format("range '{}' is implausibly long", item));
    for (long n = first; n <= last; ++n) out.push_back(fmt::format("{:0{}d}", n, low.size()));
    begin = end + 1;
  }
  return out;
}

// One host expression without top-level commas: "rack[1-2]-n[01-02]".
void expand_host(const std::string& list, const std::string& expression, std::vector<std::string>& out) {
  std::vector<std::string> hosts = {""};
  size_t i = 0;
  while (i < expression.size()) {
    if (expression[i] == '[') {
      const size_t close = expression.find(']', i);
      if (close == std::string::npos) bad_nodelist(list, "a '[' is never closed");
      std::vector<std::string> next;
      const auto parts = expand_ranges(list, expression.substr(i + 1, close - i - 1));
      for (const auto& prefix : hosts) {
        for (const auto& part : parts) next.push_back(prefix + part);
      }
      hosts = std::move(next);
      i = close + 1;
    } else if (expression[i] == ']') {
      bad_nodelist(list, "a ']' has no '['");
    } else {
      const size_t next_bracket = expression.find_first_of("[]", i);
      const std::string text = expression.substr(i, next_bracket == std::string::npos ? std::string::npos : next_bracket - i);
      for (auto& host : hosts) host += text;
      i += text.size();
    }
  }
  out.insert(out.end(), hosts.begin(), hosts.end());
}

}  // namespace

std::vector<std::string> expand_slurm_nodelist(const std::string& nodelist) {
  if (nodelist.empty()) bad_nodelist(nodelist, "it is empty");
  std::vector<std::string> hosts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= nodelist.size(); ++i) {
    const char ch = i < nodelist.size() ? nodelist[i] : ',';
    if (ch == '[') {
      if (++depth > 1) bad_nodelist(nodelist, "brackets are nested");
    } else if (ch == ']') {
      if (--depth < 0) bad_nodelist(nodelist, "a ']' has no '['");
    } else if (ch == ',' && depth == 0) {
      if (i == start) bad_nodelist(nodelist, "it has an empty host name");
      expand_host(nodelist, nodelist.substr(start, i - start), hosts);
      start = i + 1;
    } else if (std::isspace(static_cast<unsigned char>(ch))) {
      bad_nodelist(nodelist, "it contains white space");
    }
  }
  if (depth != 0) bad_nodelist(nodelist, "a '[' is never closed");
  return hosts;
}

LaunchEnv launch_env_from_environment(int configured_port) {
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

  if (is_set("MASTER_ADDR")) {
    env.master_addr = std::getenv("MASTER_ADDR");
  } else if (env.launcher == "slurm") {
    const char* list = is_set("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST";
    if (is_set(list)) env.master_addr = expand_slurm_nodelist(std::getenv(list)).front();
  } else if (env.launcher == "none") {
    env.master_addr = "127.0.0.1";
  }
  if (is_set("MASTER_PORT")) {
    env.master_port = static_cast<int>(read_long("MASTER_PORT", 0, 1, 65535));
  } else if (configured_port > 0) {
    env.master_port = configured_port;
  } else if (env.launcher == "slurm" && is_set("SLURM_JOB_ID")) {
    env.master_port = static_cast<int>(20000 + read_long("SLURM_JOB_ID", 0, 0, 1L << 40) % 20000);
  } else if (env.launcher != "torchrun") {
    env.master_port = 29500;
  }
  return env;
}

void check_rendezvous(const LaunchEnv& env) {
  if (env.world_size == 1) return;
  if (env.master_addr.empty()) {
    throw InputError(env.launcher == "slurm"
                         ? "SLURM_JOB_NODELIST is not set; set MASTER_ADDR to rank 0's host"
                         : "MASTER_ADDR is not set; a multi-process torchrun-style launch needs MASTER_ADDR and "
                           "MASTER_PORT");
  }
  if (env.master_port == 0) {
    throw InputError("MASTER_PORT is not set; a multi-process torchrun-style launch needs MASTER_ADDR and MASTER_PORT");
  }
}

}  // namespace cpt::dist
