#include "cpt/train/checkpoint.h"

#include <torch/torch.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fmt/format.h>
#include <csignal>
#include <cstdlib>
#include <fstream>

#include "cpt/common/error.h"
#include "cpt/io/atomic_file.h"
#include "cpt/io/hf_checkpoint.h"
#include "cpt/io/safetensors.h"

namespace fs = std::filesystem;

namespace cpt::train {

namespace {

constexpr const char* kStatePrefix = "step-";

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Fault injection for the tests: CPT_TEST_KILL_IN_SAVE=<point> dies by
// SIGKILL at that point of writing a checkpoint, as kill -9 would.
void maybe_die(const char* point) {
  const char* at = std::getenv("CPT_TEST_KILL_IN_SAVE");
  if (at != nullptr && std::string(at) == point) std::raise(SIGKILL);
}

}  // namespace

std::string CheckpointPaths::step_dir(int64_t step) const {
  return (fs::path(root) / fmt::format("{}{:08d}", kStatePrefix, step)).string();
}

std::string save_checkpoint(const CheckpointPaths& paths, model::Llama& model, const AdamW& optimizer,
                            const TrainerState& state, const std::string& tokenizer, int64_t max_shard_size,
                            int64_t keep_last) {
  fs::create_directories(paths.root);
  // A save killed half-way leaves its temporary directory: never a
  // checkpoint (only `latest` names those), so clear it.
  for (const auto& entry : fs::directory_iterator(paths.root)) {
    if (entry.path().filename().string().rfind(".step-", 0) == 0) fs::remove_all(entry.path());
  }
  const std::string final_dir = paths.step_dir(state.step);
  const std::string temp = (fs::path(paths.root) / fmt::format(".{}{:08d}.tmp-{}", kStatePrefix, state.step, ::getpid())).string();
  fs::remove_all(temp);
  fs::create_directories(fs::path(temp) / "trainer_state");
  // Weights in fp32: they are the master copy, so a resume is exact.
  io::save_hf_weights(*model, model->shape(), temp, io::Dtype::kF32, max_shard_size);
  maybe_die("weights");
  if (!tokenizer.empty() && fs::exists(tokenizer)) fs::copy_file(tokenizer, fs::path(temp) / "tokenizer.model");

  std::vector<io::TensorSpec> specs;
  const NamedTensors moments = optimizer.state();
  for (const auto& [name, t] : moments) specs.push_back({name, io::Dtype::kF32, t.sizes().vec()});
  {
    io::SafetensorsWriter writer((fs::path(temp) / "trainer_state" / "optimizer.safetensors").string(), specs);
    for (const auto& [name, t] : moments) {
      const auto contiguous = t.contiguous();
      writer.write(name, 0, contiguous.data_ptr(), static_cast<size_t>(contiguous.numel()) * 4);
    }
    writer.finish();
  }
  const nlohmann::json json = {{"format_version", 1},
                               {"step", state.step},
                               {"tokens", state.tokens},
                               {"optimizer_steps", optimizer.steps()},
                               {"nonfinite_in_row", state.nonfinite_in_row},
                               {"config_hash", state.config_hash},
                               {"data", state.data.to_json()}};
  maybe_die("optimizer");
  io::write_file_atomic((fs::path(temp) / "trainer_state" / "state.json").string(), json.dump(2) + "\n");
  sync_directory((fs::path(temp) / "trainer_state").string());
  sync_directory(temp);
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run step replaces its old copy
  fs::rename(temp, final_dir);
  sync_directory(paths.root);
  maybe_die("renamed");
  io::write_file_atomic((fs::path(paths.root) / "latest").string(), fs::path(final_dir).filename().string() + "\n");

  if (keep_last > 0) {
    std::vector<std::string> steps;
    for (const auto& entry : fs::directory_iterator(paths.root)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory() && name.rfind(kStatePrefix, 0) == 0) steps.push_back(name);
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < steps.size(); ++i) fs::remove_all(fs::path(paths.root) / steps[i]);
  }
  return final_dir;
}

std::optional<std::string> latest_checkpoint(const CheckpointPaths& paths) {
  const fs::path latest = fs::path(paths.root) / "latest";
  if (!fs::exists(latest)) return std::nullopt;
  std::ifstream in(latest);
  std::string name;
  std::getline(in, name);
  if (name.empty() || !fs::is_directory(fs::path(paths.root) / name)) {
    throw InputError(fmt::format("'{}' names '{}', which is not a checkpoint directory", latest.string(), name));
  }
  return (fs::path(paths.root) / name).string();
}

TrainerState load_checkpoint(const std::string& dir, model::Llama& model, AdamW& optimizer) {
  const fs::path state_path = fs::path(dir) / "trainer_state" / "state.json";
  std::ifstream in(state_path);
  if (!in) throw InputError(fmt::format("'{}' is missing: not a cpt-train checkpoint", state_path.string()));
  const nlohmann::json json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) throw InputError(fmt::format("'{}' is not valid JSON", state_path.string()));
  TrainerState state;
  try {
    state.step = json.at("step").get<int64_t>();
    state.tokens = json.at("tokens").get<int64_t>();
    state.nonfinite_in_row = json.value("nonfinite_in_row", int64_t{0});
    state.config_hash = json.value("config_hash", std::string());
    state.data = data::BlendState::from_json(json.at("data"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("'{}': {}", state_path.string(), e.what()));
  }
  io::load_hf_weights(*model, dir);
  const io::SafetensorsFile moments((fs::path(dir) / "trainer_state" / "optimizer.safetensors").string());
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& t : moments.tensors()) {
    if (t.spec.dtype != io::Dtype::kF32) throw InputError(fmt::format("'{}': '{}' is not F32", moments.path(), t.spec.name));
    tensors[t.spec.name] = torch::from_blob(const_cast<uint8_t*>(moments.data(t)), t.spec.shape, torch::kFloat).clone();
  }
  optimizer.load_state(tensors, json.value("optimizer_steps", state.step));
  return state;
}

}  // namespace cpt::train
