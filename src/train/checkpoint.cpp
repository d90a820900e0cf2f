#include "cpt/train/checkpoint.h"

#include "cpt/data/bpe_tokenizer.h"

#include <torch/torch.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <thread>

#include "cpt/common/error.h"
#include "cpt/io/atomic_file.h"
#include "cpt/io/checksums.h"
#include "cpt/io/hf_checkpoint.h"
#include "cpt/io/safetensors.h"

namespace fs = std::filesystem;

namespace cpt::train {

namespace {

constexpr const char* kStatePrefix = "step-";
constexpr const char* kMasterDir = "trainer_state/master";  // fp32 master weights when the model files are bf16

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Fault injection for the tests, armed when a save begins:
// CPT_TEST_SAVE_FAULT=kill-after-us:N dies by SIGKILL N microseconds later,
// wherever the save has got to (as kill -9 would); "stop" stops the process
// (SIGSTOP) so a test can act while it is inside the save.
void arm_save_fault() {
  const char* fault = std::getenv("CPT_TEST_SAVE_FAULT");
  if (fault == nullptr) return;
  const std::string text(fault);
  if (text == "stop") {
    std::raise(SIGSTOP);
  } else if (text.rfind("kill-after-us:", 0) == 0) {
    const auto delay = std::chrono::microseconds(std::stoll(text.substr(14)));
    std::thread([delay] {
      std::this_thread::sleep_for(delay);
      std::raise(SIGKILL);
    }).detach();
  }
}

}  // namespace

std::string CheckpointPaths::step_dir(int64_t step) const {
  return (fs::path(root) / fmt::format("{}{:08d}", kStatePrefix, step)).string();
}

namespace {

// Moves the complete temporary directory to its final name. A step saved
// again (a resume from an older checkpoint) swaps with its old copy in one
// atomic rename, so no moment exists in which `latest` names nothing.
void publish(const std::string& temp, const std::string& final_dir) {
  if (!fs::exists(final_dir)) {
    fs::rename(temp, final_dir);
    return;
  }
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
    throw std::runtime_error(fmt::format("cannot replace '{}' with '{}': {}", final_dir, temp, std::strerror(errno)));
  }
  fs::remove_all(temp);  // now the old copy
}

// The moments in one safetensors file; a slice that is not a whole
// parameter records where it starts ("offset.<key>" in the metadata).
io::FileChecksum write_moments(const std::string& path, const std::vector<MomentSlice>& moments) {
  std::vector<io::TensorSpec> specs;
  std::map<std::string, std::string> metadata;
  for (const auto& m : moments) {
    specs.push_back({m.key, io::Dtype::kF32, m.values.sizes().vec()});
    if (m.values.dim() == 1 || m.offset != 0) metadata["offset." + m.key] = std::to_string(m.offset);
  }
  io::SafetensorsWriter writer(path, specs, metadata);
  std::map<std::string, const MomentSlice*> by_key;
  for (const auto& m : moments) by_key[m.key] = &m;
  for (const auto& info : writer.layout()) {
    const auto contiguous = by_key.at(info.spec.name)->values.to(torch::kCPU).contiguous();
    writer.write(info.spec.name, 0, contiguous.data_ptr(), static_cast<size_t>(contiguous.numel()) * 4);
  }
  return writer.finish();
}

std::string optimizer_file(int rank, int world) {
  return world == 1 ? "optimizer.safetensors" : fmt::format("optimizer-{:05d}-of-{:05d}.safetensors", rank, world);
}

// Every piece of every moment in a checkpoint's optimizer files, however
// many ranks wrote them, so that any rank layout can read its ranges.
class MomentPieces {
 public:
  explicit MomentPieces(const std::string& dir) : dir_(dir) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("optimizer", 0) == 0 && entry.path().extension() == ".safetensors") {
        files_.push_back(std::make_unique<io::SafetensorsFile>(entry.path().string()));
      }
    }
    if (files_.empty()) throw InputError(fmt::format("'{}' holds no optimizer*.safetensors", dir));
    for (const auto& file : files_) {
      for (const auto& t : file->tensors()) {
        if (t.spec.dtype != io::Dtype::kF32) {
          throw InputError(fmt::format("'{}': '{}' is not F32", file->path(), t.spec.name));
        }
        int64_t offset = 0;
        const auto it = file->metadata().find("offset." + t.spec.name);
        if (it != file->metadata().end()) {
          const char* end = it->second.data() + it->second.size();
          const auto [stop, error] = std::from_chars(it->second.data(), end, offset);
          if (error != std::errc() || stop != end || offset < 0 || offset > INT64_MAX - t.spec.numel()) {
            throw InputError(fmt::format("'{}': metadata \"offset.{}\" is \"{}\", not an element offset",
                                         file->path(), t.spec.name, it->second));
          }
        }
        pieces_[t.spec.name].push_back(
            {offset, t.spec.numel(), file.get(), reinterpret_cast<const float*>(file->data(t))});
      }
    }
  }

  void read(const std::string& key, int64_t offset, torch::Tensor& out) const {
    const auto it = pieces_.find(key);
    if (it == pieces_.end()) throw InputError(fmt::format("'{}': optimizer state has no '{}'", dir_, key));
    const int64_t n = out.numel();
    // Read into host fp32 memory, then copy to wherever the moments live.
    const bool in_place = out.is_cpu() && out.scalar_type() == torch::kFloat && out.is_contiguous();
    auto target = in_place ? out.view({-1}) : torch::empty({n}, torch::kFloat);
    int64_t covered = 0;
    for (const auto& piece : it->second) {
      const int64_t begin = std::max(offset, piece.offset), end = std::min(offset + n, piece.offset + piece.numel);
      if (begin >= end) continue;
      if (!io::parallel_copy_if_finite(io::Dtype::kF32, piece.data + (begin - piece.offset),
                                       target.data_ptr<float>() + (begin - offset), end - begin)) {
        throw InputError(fmt::format("'{}': optimizer state '{}' holds NaN or infinite values (the run that "
                                     "saved it had diverged); resume from an earlier checkpoint",
                                     piece.file->path(), key));
      }
      piece.file->check_intact();  // truncated by another program while it was read
      covered += end - begin;
    }
    if (covered != n) {
      throw InputError(fmt::format("'{}': optimizer state '{}' covers {} of elements [{}, {}); a shard file is "
                                   "missing or the model shape changed",
                                   dir_, key, covered, offset, offset + n));
    }
    if (!in_place) out.view({-1}).copy_(target);
  }

 private:
  struct Piece {
    int64_t offset, numel;  // in elements of the whole moment
    const io::SafetensorsFile* file;
    const float* data;
  };
  std::string dir_;
  std::vector<std::unique_ptr<io::SafetensorsFile>> files_;
  std::map<std::string, std::vector<Piece>> pieces_;
};

}  // namespace

std::string save_checkpoint(const CheckpointPaths& paths, const model::Shape& shape, DataParallel& replicas,
                            const AdamW& optimizer, const TrainerState& state, const SaveOptions& options) {
  dist::ProcessGroup& group = replicas.group();
  const NamedTensors weights = replicas.full_master_weights();  // a collective under bf16 ZeRO-1
  const int64_t optimizer_steps = optimizer.steps();
  const bool leader = group.rank() == 0;
  arm_save_fault();
  const std::string final_dir = paths.step_dir(state.step);
  const std::string temp = (fs::path(paths.root) / fmt::format(".{}{:08d}.tmp", kStatePrefix, state.step)).string();
  if (leader) {
    fs::create_directories(paths.root);
    // A save killed half-way leaves its temporary directory: never a
    // checkpoint (only `latest` names those), so clear it.
    for (const auto& entry : fs::directory_iterator(paths.root)) {
      if (entry.path().filename().string().rfind(".step-", 0) == 0) fs::remove_all(entry.path());
    }
    fs::create_directories(fs::path(temp) / "trainer_state");
  }
  group.barrier();  // the temporary directory exists (on the shared file system)

  // A save that fails (a full disk, a directory that became read-only)
  // removes what it wrote, so the space is free again; the checkpoints
  // before it and `latest` are untouched.
  try {
    // The checksums of the files this rank wrote, taken as it wrote them;
    // the manifest reads only the others (other ranks' moments, the JSON).
    io::ChecksumManifest written;
    // With ZeRO-1 every rank writes its own moments; otherwise rank 0 holds
    // them all. They are written beside the weights: a disk (virtual ones
    // most) takes two streams of writes faster than one.
    std::string moments_name;
    std::future<io::FileChecksum> moments_written;
    if (options.sharded_optimizer || leader) {
      const int world = options.sharded_optimizer ? group.size() : 1;
      moments_name = fmt::format("trainer_state/{}", optimizer_file(options.sharded_optimizer ? group.rank() : 0, world));
      moments_written = std::async(std::launch::async, [&optimizer, path = (fs::path(temp) / moments_name).string()] {
        return write_moments(path, optimizer.state());
      });
    }
    if (leader) {
      // The model files hold the master weights in fp32, so a resume is
      // exact, or rounded to bf16 with the fp32 master kept beside the
      // optimizer state.
      if (options.bf16_weights) {
        fs::create_directories(fs::path(temp) / kMasterDir);
        for (const auto& [name, checksum] : io::save_hf_weights(weights, shape, (fs::path(temp) / kMasterDir).string(),
                                                                io::Dtype::kF32, options.max_shard_size)) {
          written[fmt::format("{}/{}", kMasterDir, name)] = checksum;
        }
      }
      for (const auto& [name, checksum] : io::save_hf_weights(
               weights, shape, temp, options.bf16_weights ? io::Dtype::kBF16 : io::Dtype::kF32, options.max_shard_size)) {
        written[name] = checksum;
      }
      // The base model's tokenizer and generation settings, so the checkpoint
      // loads in transformers as the base does (Llama-3's and Qwen2's
      // tokenizer.json, their BOS/EOS and chat settings).
      if (!options.base_model.empty()) {
        for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "generation_config.json"}) {
          const fs::path from = fs::path(options.base_model) / name;
          if (fs::exists(from)) fs::copy_file(from, fs::path(temp) / name, fs::copy_options::overwrite_existing);
        }
      }
      // The run's own tokenizer, when it names one, is the one its data was
      // made with: a SentencePiece model, or a tokenizer.json with the
      // tokenizer_config.json that names its BOS and EOS.
      if (!options.tokenizer.empty() && fs::exists(options.tokenizer)) {
        fs::path file = options.tokenizer;
        if (fs::is_directory(file)) file = fs::exists(file / "tokenizer.model") ? file / "tokenizer.model" : file / "tokenizer.json";
        const bool json = data::is_tokenizer_json(file.string());
        if (fs::exists(file)) {
          fs::copy_file(file, fs::path(temp) / (json ? "tokenizer.json" : "tokenizer.model"),
                        fs::copy_options::overwrite_existing);
        }
        const fs::path config = file.parent_path() / "tokenizer_config.json";
        if (json && fs::exists(config)) {
          fs::copy_file(config, fs::path(temp) / "tokenizer_config.json", fs::copy_options::overwrite_existing);
        }
      }
    }
    if (moments_written.valid()) written[moments_name] = moments_written.get();
    group.barrier();  // every rank's files are written and fsynced
    if (leader) {
      io::write_file_atomic((fs::path(temp) / "trainer_state" / "state.json").string(),
                            trainer_state_json(state, optimizer_steps, group.size()));
      // The config this checkpoint was trained under: a resume may change
      // the mix or the step count, and each checkpoint keeps its own record.
      if (!options.resolved_config.empty()) {
        io::write_file_atomic((fs::path(temp) / "trainer_state" / "config.resolved.yaml").string(),
                              options.resolved_config);
      }
      // Last, over every file of every rank: a checkpoint names its own damage.
      io::write_checksums(temp, written);
      sync_directory((fs::path(temp) / "trainer_state").string());
      sync_directory(temp);
      publish(temp, final_dir);
      sync_directory(paths.root);
      io::write_file_atomic((fs::path(paths.root) / "latest").string(), fs::path(final_dir).filename().string() + "\n");
    }
  } catch (...) {
    std::error_code ignored;
    if (leader) fs::remove_all(temp, ignored);
    throw;
  }
  if (leader && options.keep_last > 0) {
    std::vector<std::string> steps;
    for (const auto& entry : fs::directory_iterator(paths.root)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory() && name.rfind(kStatePrefix, 0) == 0) steps.push_back(name);
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + static_cast<size_t>(options.keep_last) < steps.size(); ++i) {
      fs::remove_all(fs::path(paths.root) / steps[i]);
    }
  }
  group.barrier();  // no rank runs ahead of a checkpoint that is not complete
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

void verify_checkpoint(const std::string& dir) {
  read_trainer_state(dir);
  if (!io::has_checksums(dir)) {
    spdlog::warn("{} has no {} (written before cpt-train recorded checksums): its files are not verified", dir,
                 io::kChecksumsFile);
    return;
  }
  io::verify_checksums(dir);
}

std::optional<std::string> newest_intact_checkpoint(const CheckpointPaths& paths, const std::string& except) {
  std::vector<fs::path> steps;
  for (const auto& entry : fs::directory_iterator(paths.root)) {
    if (entry.is_directory() && entry.path().filename().string().rfind(kStatePrefix, 0) == 0) steps.push_back(entry.path());
  }
  std::sort(steps.rbegin(), steps.rend());
  for (const auto& dir : steps) {
    if (fs::equivalent(dir, except)) continue;
    try {
      verify_checkpoint(dir.string());
      return dir.string();
    } catch (const InputError&) {
      continue;  // damaged too: look further back
    }
  }
  return std::nullopt;
}

TrainerState load_checkpoint(const std::string& dir, DataParallel& replicas, AdamW& optimizer) {
  const TrainerState state = read_trainer_state(dir);
  const fs::path master = fs::path(dir) / kMasterDir;
  const std::string weights_dir = fs::exists(master) ? master.string() : dir;
  if (replicas.parameters_are_host_master()) {
    NamedTensors parameters = replicas.parameters();  // share the parameters' storage
    io::load_hf_weights(parameters, weights_dir, /*verify_checksums=*/false);
  } else {
    NamedTensors weights;  // fp32 on the host, whatever the compute dtype
    for (const auto& [name, p] : replicas.parameters()) weights.emplace_back(name, torch::empty(p.sizes(), torch::kFloat));
    io::load_hf_weights(weights, weights_dir, /*verify_checksums=*/false);
    replicas.load_master_weights(weights);
  }
  const MomentPieces moments((fs::path(dir) / "trainer_state").string());
  optimizer.load_state([&](const std::string& key, int64_t offset, torch::Tensor& out) { moments.read(key, offset, out); },
                       state.optimizer_steps);
  return state;
}

}  // namespace cpt::train
