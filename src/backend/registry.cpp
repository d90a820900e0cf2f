#include <fmt/format.h>

#include "backends.h"
#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::backend {

namespace {

struct Registration {
  const char* name;
  Availability (*probe)();
  std::unique_ptr<Backend> (*create)(int local_rank);
};

// The one table of backends. `auto` takes the first available of "cuda"
// and "cpu"; Neuron is only ever asked for by name.
constexpr Registration kRegistry[] = {
    {"cpu", probe_cpu, create_cpu},
    {"cuda", probe_cuda, create_cuda},
    {"neuron", probe_neuron, create_neuron},
};

const Registration* find(const std::string& name) {
  for (const auto& entry : kRegistry) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

std::string available_names() {
  std::vector<std::string> names;
  for (const auto& entry : kRegistry) {
    if (entry.probe().available) names.emplace_back(entry.name);
  }
  return join(names, ", ");
}

}  // namespace

std::vector<Availability> probe_backends() {
  std::vector<Availability> out;
  for (const auto& entry : kRegistry) out.push_back(entry.probe());
  return out;
}

std::string describe_availability(const std::string& name) {
  const Registration* entry = find(name);
  if (entry == nullptr) return name + ": not registered";
  const Availability a = entry->probe();
  return fmt::format("{}: {}: {}", a.name, a.available ? "available" : "not available", a.detail);
}

std::unique_ptr<Backend> select_backend(const std::string& name, int local_rank) {
  if (name == "auto") {
    return probe_cuda().available ? create_cuda(local_rank) : create_cpu(local_rank);
  }
  const Registration* entry = find(name);
  if (entry == nullptr) {
    std::vector<std::string> names = {"auto"};
    for (const auto& e : kRegistry) names.emplace_back(e.name);
    throw InputError(fmt::format("backend '{}' is not registered; valid: {}", name, join(names, ", ")));
  }
  const Availability availability = entry->probe();
  if (!availability.available) {
    throw InputError(fmt::format("backend {} is not available: {}; available here: {}", name, availability.detail,
                                 available_names()));
  }
  return entry->create(local_rank);
}

}  // namespace cpt::backend
