#include "cpt/merge/merge.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>

#include "cpt/common/error.h"
#include "cpt/common/strings.h"
#include "cpt/io/atomic_file.h"
#include "cpt/io/hf_model.h"
#include "cpt/merge/config.h"
#include "cpt/merge/methods.h"

namespace fs = std::filesystem;

namespace cpt::merge {

namespace {

// One output tensor: where each input comes from and the parameters it gets.
struct PlannedTensor {
  io::TensorSpec out;
  std::vector<const io::HfModel*> models;
  std::vector<std::string> input_names;
  MergeTask task;  // without read functions yet
};

struct LayerName {
  int64_t layer = -1;  // -1: not a layer tensor
  std::string suffix;
};

LayerName parse_layer(const std::string& name) {
  static const std::regex pattern(R"(^model\.layers\.(\d+)\.(.+)$)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return {};
  return {std::stoll(m[1].str()), m[2].str()};
}

bool ignored(const std::string& name) { return name.find("rotary_emb.inv_freq") != std::string::npos; }

int64_t layer_count(const io::HfModel& model) {
  if (model.config().contains("num_hidden_layers") && model.config()["num_hidden_layers"].is_number_integer()) {
    return model.config()["num_hidden_layers"].get<int64_t>();
  }
  int64_t count = 0;
  for (const auto& name : model.tensor_names()) count = std::max(count, parse_layer(name).layer + 1);
  return count;
}

std::string canonical(const std::string& path) {
  std::error_code error;
  const fs::path p = fs::weakly_canonical(fs::absolute(path), error);
  return error ? path : p.string();
}

class Planner {
 public:
  Planner(const MergeConfig& config, const MethodInfo& method) : config_(config), method_(method) {}

  const io::HfModel& open(const std::string& dir) {
    auto it = models_.find(dir);
    if (it == models_.end()) it = models_.emplace(dir, std::make_unique<io::HfModel>(dir)).first;
    return *it->second;
  }
  const std::map<std::string, std::unique_ptr<io::HfModel>>& models() const { return models_; }

  std::vector<OutputSlice> normalized_slices() {
    if (!config_.slices.empty()) return config_.slices;
    OutputSlice slice;
    bool base_included = false;
    for (const auto& m : config_.models) {
      InputSlice source = m;
      source.layer_range = std::make_pair(int64_t{0}, layer_count(open(m.model)));
      base_included = base_included || m.model == config_.base_model;
      slice.sources.push_back(source);
    }
    if (!config_.base_model.empty() && !base_included) {
      InputSlice base;
      base.model = config_.base_model;
      base.layer_range = std::make_pair(int64_t{0}, layer_count(open(base.model)));
      slice.sources.push_back(base);
    }
    return {slice};
  }

  std::vector<PlannedTensor> plan() {
    const std::vector<OutputSlice> slices = normalized_slices();
    check_parameter_names(slices);
    for (const auto& slice : slices) {
      for (const auto& source : slice.sources) {
        const int64_t layers = layer_count(open(source.model));
        if (source.layer_range->second > layers) {
          throw InputError(fmt::format("{}: layer_range [{}, {}] of '{}' goes past its {} layers", config_.source,
                                       source.layer_range->first, source.layer_range->second, source.model, layers));
        }
      }
    }
    std::vector<PlannedTensor> out;
    const io::HfModel& first = open(slices.front().sources.front().model);
    // Embeddings come before the layers and take the first slice's sources;
    // everything else outside the layers comes after, from the last slice.
    // Both read gradient parameters at t = 0, as mergekit 0.1.5 plans them
    // (its module-level ConfigReader), not at the end of the gradient.
    for (const auto& name : first.tensor_names()) {
      if (parse_layer(name).layer < 0 && !ignored(name) && name.find("embed_tokens") != std::string::npos) {
        out.push_back(plan_tensor(slices.front(), name, std::vector<std::string>(slices.front().sources.size(), name), 0.0));
      }
    }
    int64_t out_layer = 0;
    for (const auto& slice : slices) {
      const auto& range0 = *slice.sources.front().layer_range;
      const int64_t length = range0.second - range0.first;
      for (const auto& s : slice.sources) {
        if (s.layer_range->second - s.layer_range->first != length) {
          throw InputError(fmt::format("{}: all sources of a slice must cover the same number of layers", config_.source));
        }
      }
      const io::HfModel& lead = open(slice.sources.front().model);
      for (int64_t idx = 0; idx < length; ++idx, ++out_layer) {
        const double t = length > 1 ? static_cast<double>(idx) / static_cast<double>(length - 1) : 1.0;
        const std::string prefix = fmt::format("model.layers.{}.", range0.first + idx);
        for (const auto& name : lead.tensor_names()) {
          if (name.compare(0, prefix.size(), prefix) != 0 || ignored(name)) continue;
          const std::string suffix = name.substr(prefix.size());
          std::vector<std::string> inputs;
          for (const auto& s : slice.sources) inputs.push_back(fmt::format("model.layers.{}.{}", s.layer_range->first + idx, suffix));
          out.push_back(plan_tensor(slice, fmt::format("model.layers.{}.{}", out_layer, suffix), inputs, t));
        }
      }
    }
    layers_out_ = out_layer;
    for (const auto& name : open(slices.back().sources.front().model).tensor_names()) {
      if (parse_layer(name).layer < 0 && !ignored(name) && name.find("embed_tokens") == std::string::npos) {
        out.push_back(plan_tensor(slices.back(), name, std::vector<std::string>(slices.back().sources.size(), name), 0.0));
      }
    }
    base_dir_ = base_for(slices.front()).empty() ? slices.front().sources.front().model : base_for(slices.front());
    return out;
  }

  int64_t layers_out() const { return layers_out_; }
  const std::string& base_dir() const { return base_dir_; }

 private:
  // A misspelt parameter ("densty") would otherwise fall back to its
  // default without a word: refuse names the method does not take.
  void check_parameter_names(const std::vector<OutputSlice>& slices) const {
    std::vector<std::string> known;
    for (const auto& def : method_.global_params) known.push_back(def.name);
    for (const auto& def : method_.tensor_params) known.push_back(def.name);
    for (const auto& name : method_.text_params) known.push_back(name);
    auto check = [&](const Parameters& parameters, const std::string& where) {
      for (const auto& [name, setting] : parameters) {
        if (std::find(known.begin(), known.end(), name) != known.end()) continue;
        std::string message = fmt::format("{}: parameter '{}'{} is not one merge_method {} takes", config_.source,
                                          name, where, method_.name);
        if (auto guess = closest_match(name, known)) message += fmt::format("; did you mean '{}'?", *guess);
        throw InputError(message + fmt::format(" (it takes: {})", known.empty() ? "none" : join(known, ", ")));
      }
    };
    check(config_.parameters, "");
    for (const auto& slice : slices) {
      check(slice.parameters, "");
      for (const auto& source : slice.sources) check(source.parameters, fmt::format(" (of model '{}')", source.model));
    }
  }

  std::string base_for(const OutputSlice& slice) const {
    return slice.base_model.empty() ? config_.base_model : slice.base_model;
  }

  // Per-source, slice, then global: the first level that has a value wins.
  std::optional<double> lookup(const std::string& name, const OutputSlice& slice, const InputSlice* source,
                               const std::string& tensor, double t) const {
    for (const Parameters* level : {source ? &source->parameters : nullptr, &slice.parameters, &config_.parameters}) {
      if (level == nullptr) continue;
      auto it = level->find(name);
      if (it == level->end()) continue;
      if (auto value = it->second.number_for(tensor, t)) return value;
      if (it->second.text_for(tensor, t)) {
        throw InputError(fmt::format("{}: parameter '{}' must be a number", config_.source, name));
      }
    }
    return std::nullopt;
  }

  void check_range(const std::string& name, double value, const std::string& where) const {
    bool ok = std::isfinite(value);
    std::string rule = "a finite number";
    if (name == "t") {
      ok = ok && value >= 0 && value <= 1;
      rule = "in [0, 1]";
    } else if (name == "density") {
      ok = ok && value > 0 && value <= 1;
      rule = "in (0, 1]";
    } else if (name == "gamma") {
      ok = ok && value >= 0 && value < 1;
      rule = "in [0, 1)";
    }
    if (!ok) throw InputError(fmt::format("{}: parameter {} = {} for {} is invalid; it must be {}", config_.source, name, value, where, rule));
  }

  PlannedTensor plan_tensor(const OutputSlice& slice, const std::string& out_name,
                            const std::vector<std::string>& input_names, double t) {
    PlannedTensor p;
    p.task.name = out_name;
    const std::string base = base_for(slice);
    for (size_t i = 0; i < slice.sources.size(); ++i) {
      const io::HfModel& model = open(slice.sources[i].model);
      const io::HfModel::Tensor tensor = model.find(input_names[i]);
      if (tensor.info == nullptr) {
        throw InputError(fmt::format("model '{}' has no tensor '{}' (needed for output '{}')", model.dir(),
                                     input_names[i], out_name));
      }
      if (!io::is_float(tensor.info->spec.dtype)) {
        throw InputError(fmt::format("'{}' in {} is {}; only float tensors can be merged", input_names[i],
                                     tensor.file->path(), io::dtype_name(tensor.info->spec.dtype)));
      }
      if (i > 0 && tensor.info->spec.shape != p.out.shape) {
        const auto shape = [](const std::vector<int64_t>& s) { return nlohmann::json(s).dump(); };
        throw InputError(fmt::format("shape mismatch for '{}': {} in {} but {} in {}", out_name,
                                     shape(p.out.shape), p.models.front()->find(p.input_names.front()).file->path(),
                                     shape(tensor.info->spec.shape), tensor.file->path()));
      }
      if (i == 0) p.out = io::TensorSpec{out_name, tensor.info->spec.dtype, tensor.info->spec.shape};
      if (slice.sources[i].model == base) p.task.base = static_cast<int>(i);
      p.models.push_back(&model);
      p.input_names.push_back(input_names[i]);
    }
    const size_t count = slice.sources.size();
    if (method_.needs_base && p.task.base < 0) {
      throw InputError(fmt::format("{}: merge_method {} needs base_model among the models it merges{}", config_.source,
                                   method_.name, base.empty() ? " (base_model is not set)" : ""));
    }
    if (count < method_.min_models || (method_.max_models > 0 && count > method_.max_models)) {
      throw InputError(fmt::format("{}: merge_method {} takes {} models including the base; this merge has {}",
                                   config_.source, method_.name,
                                   method_.max_models ? fmt::format("exactly {}", method_.max_models)
                                                      : fmt::format("at least {}", method_.min_models),
                                   count));
    }
    if (p.task.base >= 0) p.out.dtype = p.models[static_cast<size_t>(p.task.base)]->find(p.input_names[static_cast<size_t>(p.task.base)]).info->spec.dtype;
    if (config_.out_dtype) {
      p.out.dtype = *config_.out_dtype;
    } else if (config_.dtype) {
      p.out.dtype = *config_.dtype;
    }

    for (const auto& def : method_.global_params) {
      auto value = lookup(def.name, slice, nullptr, out_name, t);
      if (!value) value = def.default_value;
      if (!value) throw InputError(fmt::format("{}: merge_method {} needs parameter '{}'", config_.source, method_.name, def.name));
      check_range(def.name, *value, out_name);
      p.task.params[def.name] = *value;
    }
    for (const auto& name : method_.text_params) {
      for (const Parameters* level : {&slice.parameters, &config_.parameters}) {
        auto it = level->find(name);
        if (it == level->end()) continue;
        if (auto text = it->second.text_for(out_name, t)) {
          if (name == "consensus_method" && *text != "sum" && *text != "count") {
            throw InputError(fmt::format("{}: consensus_method '{}' is not supported; use sum or count", config_.source, *text));
          }
          p.task.texts[name] = *text;
          break;
        }
      }
    }
    p.task.inputs.resize(count);
    for (size_t i = 0; i < count; ++i) {
      const bool is_base = static_cast<int>(i) == p.task.base;
      for (const auto& def : method_.tensor_params) {
        auto value = lookup(def.name, slice, &slice.sources[i], input_names[i], t);
        if (!value) value = def.default_value;
        if (!value) {
          if (is_base) continue;  // the base contributes no task vector
          throw InputError(fmt::format("{}: model '{}' needs parameter '{}' for {} (merge_method {})", config_.source,
                                       slice.sources[i].model, def.name, input_names[i], method_.name));
        }
        check_range(def.name, *value, fmt::format("{} of '{}'", input_names[i], slice.sources[i].model));
        p.task.inputs[i].params[def.name] = *value;
      }
    }
    if (method_.name == "linear") check_linear_weights(p);
    p.task.numel = p.out.numel();
    return p;
  }

  // All-zero weights would write an all-zero tensor; weights that cancel
  // (+1, -1) leave normalize nothing to divide by, so the plain weighted sum
  // (a difference of models) is written, and said once.
  void check_linear_weights(const PlannedTensor& p) {
    double total = 0;
    bool all_zero = true;
    for (const auto& input : p.task.inputs) {
      total += input.params.at("weight");
      all_zero = all_zero && input.params.at("weight") == 0;
    }
    if (all_zero) {
      throw InputError(fmt::format("{}: every linear weight of '{}' is 0; the merged tensor would be all zeros",
                                   config_.source, p.task.name));
    }
    if (total == 0 && p.task.params.at("normalize") != 0 && !warned_cancelling_weights_) {
      spdlog::warn("{}: the linear weights of '{}' sum to 0, so normalize cannot divide by their sum; such tensors are "
                   "written as the plain weighted sum (set normalize: false to say so)",
                   config_.source, p.task.name);
      warned_cancelling_weights_ = true;
    }
  }

  const MergeConfig& config_;
  const MethodInfo& method_;
  bool warned_cancelling_weights_ = false;
  std::map<std::string, std::unique_ptr<io::HfModel>> models_;
  int64_t layers_out_ = 0;
  std::string base_dir_;
};

// Removes a half-written output unless it was committed.
class PartialDir {
 public:
  explicit PartialDir(std::string path) : path_(std::move(path)) { fs::create_directories(path_); }
  ~PartialDir() {
    if (!committed_) {
      std::error_code ignored;
      fs::remove_all(path_, ignored);
    }
  }
  const std::string& path() const { return path_; }
  void commit_as(const std::string& target) {
    fs::rename(path_, target);
    committed_ = true;
  }

 private:
  std::string path_;
  bool committed_ = false;
};

void copy_tokenizer(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "added_tokens.json"}) {
    const fs::path source = fs::path(from) / name;
    if (fs::exists(source)) fs::copy_file(source, fs::path(to) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

namespace {

// Every model directory the config reads.
std::vector<std::string> input_dirs(const MergeConfig& config) {
  std::vector<std::string> dirs;
  if (!config.base_model.empty()) dirs.push_back(config.base_model);
  for (const auto& m : config.models) dirs.push_back(m.model);
  for (const auto& slice : config.slices) {
    if (!slice.base_model.empty()) dirs.push_back(slice.base_model);
    for (const auto& source : slice.sources) dirs.push_back(source.model);
  }
  return dirs;
}

nlohmann::json merged_model_config(const Planner& planner, io::Dtype dtype) {
  nlohmann::json model_config = planner.models().at(planner.base_dir())->config();
  model_config["num_hidden_layers"] = planner.layers_out();
  model_config["torch_dtype"] = io::torch_dtype_name(dtype);
  return model_config;
}

// Asks the kernel for the inputs of the next tensors while the merge
// computes the current one, from a thread of its own: with a cold page
// cache, the merge's page faults otherwise read each file a few pages at a
// time, waiting for every read, and the disk idles while it computes.
// Requests stay at most `window` bytes ahead of the tensor being merged.
class ReadAhead {
 public:
  struct Range {
    const uint8_t* data;
    size_t size;
  };

  ReadAhead(std::vector<std::vector<Range>> tensors, size_t window) : tensors_(std::move(tensors)), window_(window) {
    thread_ = std::thread([this] { run(); });
  }
  ~ReadAhead() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // The merge starts tensor `index` (in plan order).
  void merging(size_t index) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      merging_ = index;
    }
    changed_.notify_all();
  }

 private:
  void run() {
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    constexpr size_t kPiece = size_t{8} << 20;
    for (size_t t = 0; t < tensors_.size(); ++t) {
      size_t bytes = 0;
      for (const Range& r : tensors_[t]) bytes += r.size;
      {
        // Wait until tensor t starts within the window of the one merged.
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] {
          if (stop_) return true;
          size_t ahead = 0;
          for (size_t u = merging_; u < t; ++u) {
            for (const Range& r : tensors_[u]) ahead += r.size;
          }
          return t <= merging_ || ahead + bytes <= window_;
        });
        if (stop_) return;
      }
      for (const Range& r : tensors_[t]) {
        for (size_t at = 0; at < r.size; at += kPiece) {
          const auto begin = reinterpret_cast<uintptr_t>(r.data + at) & ~(page - 1);
          const auto end = reinterpret_cast<uintptr_t>(r.data + std::min(r.size, at + kPiece));
          // A hint: a failure only means the pages are read when touched.
          (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_WILLNEED);
        }
      }
    }
  }

  const std::vector<std::vector<Range>> tensors_;
  const size_t window_;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t merging_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

// Receives each merged chunk of an output tensor (from worker threads).
using ChunkWriter = std::function<void(const io::TensorSpec& out, int64_t offset, const float* values, int64_t count)>;

// Merges every planned tensor in order, handing the values to `write`.
MergeReport run_plan(const MethodInfo& method, std::vector<PlannedTensor>& plan, const MergeOptions& options,
                     const std::function<void(const io::TensorSpec&)>& begin_tensor, const ChunkWriter& write,
                     const MergeProgressFn& on_progress) {
  const auto start = std::chrono::steady_clock::now();
  const int threads = options.threads > 0 ? options.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  MergeReport report;
  MergeProgress progress;
  progress.tensors_total = static_cast<int64_t>(plan.size());
  for (const auto& p : plan) progress.bytes_total += p.out.nbytes();
  // Mapped input pages count in the resident set. A tensor whose inputs
  // together fit in twice the largest tensor keeps them mapped across the
  // method's passes and drops them when done; larger ones drop every chunk
  // right after reading it (re-reading from the page cache in later passes).
  // Either way peak memory stays near 2x the largest tensor, whatever the
  // model size or the number of models.
  size_t largest = 0;
  for (const auto& p : plan) {
    for (size_t i = 0; i < p.models.size(); ++i) largest = std::max(largest, p.models[i]->find(p.input_names[i]).info->spec.nbytes());
  }
  std::vector<std::vector<ReadAhead::Range>> input_ranges;
  for (const auto& p : plan) {
    input_ranges.emplace_back();
    for (size_t i = 0; i < p.models.size(); ++i) {
      const io::HfModel::Tensor tensor = p.models[i]->find(p.input_names[i]);
      input_ranges.back().push_back({tensor.file->data(*tensor.info), tensor.info->spec.nbytes()});
    }
  }
  ReadAhead read_ahead(std::move(input_ranges), std::max<size_t>(2 * largest, size_t{256} << 20));
  for (size_t index = 0; index < plan.size(); ++index) {
    read_ahead.merging(index);
    PlannedTensor& p = plan[index];
    MergeTask& task = p.task;
    task.seed = options.seed;
    size_t tensor_inputs = 0;
    for (size_t i = 0; i < task.inputs.size(); ++i) tensor_inputs += p.models[i]->find(p.input_names[i]).info->spec.nbytes();
    const bool release_per_chunk = tensor_inputs > 2 * largest;
    for (size_t i = 0; i < task.inputs.size(); ++i) {
      const io::HfModel::Tensor tensor = p.models[i]->find(p.input_names[i]);
      report.input_bytes += tensor.info->spec.nbytes();
      const io::Dtype dtype = tensor.info->spec.dtype;
      const size_t element = io::dtype_bits(dtype) / 8;
      const int64_t numel = task.numel;
      task.inputs[i].read = [tensor, dtype, element, release_per_chunk, numel](int64_t offset, int64_t count, float* out) {
        const uint8_t* data = tensor.file->data(*tensor.info) + static_cast<size_t>(offset) * element;
        io::to_f32(dtype, data, out, static_cast<size_t>(count));
        // Methods read a chunk in blocks, in order: the read that ends a
        // chunk releases all of it (one call per chunk, not per block).
        const int64_t end = offset + count;
        if (release_per_chunk && (end % kMergeChunk == 0 || end == numel)) {
          const int64_t chunk_start = (end - 1) / kMergeChunk * kMergeChunk;
          tensor.file->release(*tensor.info, static_cast<size_t>(chunk_start) * element,
                               static_cast<size_t>(end - chunk_start) * element);
        }
      };
    }
    if (begin_tensor) begin_tensor(p.out);
    const io::TensorSpec& out = p.out;
    run_merge(method, task, [&](int64_t offset, const float* values, int64_t count) { write(out, offset, values, count); },
              threads);
    for (size_t i = 0; i < task.inputs.size(); ++i) {
      const io::HfModel::Tensor tensor = p.models[i]->find(p.input_names[i]);
      tensor.file->check_intact();  // an input truncated by another program while it was merged
      tensor.file->release(*tensor.info, 0, tensor.info->spec.nbytes());
    }
    ++progress.tensors_done;
    progress.bytes_done += p.out.nbytes();
    progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_progress) on_progress(progress);
  }
  report.tensors = static_cast<int64_t>(plan.size());
  report.output_bytes = progress.bytes_total;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace

void check_merge_output(const MergeConfig& config, const std::string& requested) {
  // The output must not clobber an input or an existing directory's files.
  const std::string output = canonical(requested);
  for (const auto& dir : input_dirs(config)) {
    const std::string input = canonical(dir);
    if (output == input || output.rfind(input + "/", 0) == 0) {
      throw InputError(fmt::format("--output '{}' is inside input model '{}'; choose another directory", requested, dir));
    }
  }
  if (fs::exists(output) && !(fs::is_directory(output) && fs::is_empty(output))) {
    throw InputError(fmt::format("--output '{}' exists and is not empty; remove it or choose another directory", requested));
  }
  const fs::path parent = fs::path(output).parent_path();
  std::error_code error;
  fs::create_directories(parent, error);
  if (error || ::access(parent.c_str(), W_OK) != 0) {
    throw InputError(fmt::format("--output '{}': cannot write into '{}'", requested, parent.string()));
  }
}

MergeReport merge_models(const MergeOptions& options, const MergeProgressFn& on_progress) {
  return merge_models(load_merge_config(options.config), options, on_progress);
}

MergeReport merge_models(const MergeConfig& config, const MergeOptions& options, const MergeProgressFn& on_progress) {
  const auto start = std::chrono::steady_clock::now();
  const MethodInfo& method = find_method(config.merge_method);
  Planner planner(config, method);
  std::vector<PlannedTensor> plan = planner.plan();
  check_merge_output(config, options.output);
  const std::string output = canonical(options.output);

  std::string tokenizer_dir = planner.base_dir();
  if (!config.tokenizer_source.empty() && config.tokenizer_source != "base") tokenizer_dir = config.tokenizer_source;
  if (!fs::is_directory(tokenizer_dir)) {
    throw InputError(fmt::format("{}: tokenizer_source '{}' is not a directory", config.source, tokenizer_dir));
  }

  PartialDir partial(fmt::format("{}.partial-{}", output, ::getpid()));
  std::vector<io::TensorSpec> specs;
  for (const auto& p : plan) specs.push_back(p.out);
  const auto shards = io::plan_shards(specs, options.max_shard_size);
  std::vector<std::unique_ptr<io::SafetensorsWriter>> writers;
  std::map<std::string, io::SafetensorsWriter*> writer_of;
  // Through the page cache: the merge's threads write as they compute, the
  // output is usually evaluated next, and O_DIRECT measured no faster here.
  for (size_t s = 0; s < shards.size(); ++s) {
    writers.push_back(std::make_unique<io::SafetensorsWriter>(
        (fs::path(partial.path()) / io::shard_file_name(s, shards.size())).string(), shards[s],
        std::map<std::string, std::string>{}, io::ChecksummedFile::Cache::kKeep));
    for (const auto& spec : shards[s]) writer_of[spec.name] = writers.back().get();
  }

  MergeReport report = run_plan(method, plan, options, {}, [&](const io::TensorSpec& out, int64_t offset, const float* values, int64_t count) {
    const size_t element = io::dtype_bits(out.dtype) / 8;
    thread_local std::vector<uint8_t> converted;
    converted.resize(static_cast<size_t>(count) * element);
    io::from_f32(out.dtype, values, converted.data(), static_cast<size_t>(count));
    writer_of.at(out.name)->write(out.name, static_cast<size_t>(offset) * element, converted.data(), converted.size());
  }, on_progress);
  for (auto& writer : writers) writer->finish();
  if (shards.size() > 1) {
    io::write_file_atomic((fs::path(partial.path()) / "model.safetensors.index.json").string(), io::shard_index_json(shards));
  }
  io::write_file_atomic((fs::path(partial.path()) / "config.json").string(),
                        merged_model_config(planner, specs.front().dtype).dump(2) + "\n");
  const fs::path generation = fs::path(planner.base_dir()) / "generation_config.json";
  if (fs::exists(generation)) fs::copy_file(generation, fs::path(partial.path()) / "generation_config.json");
  copy_tokenizer(tokenizer_dir, partial.path());
  if (fs::exists(output)) fs::remove(output);  // an empty directory
  partial.commit_as(output);

  report.shards = shards.size();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

MergePlan plan_merge(const MergeConfig& config) {
  Planner planner(config, find_method(config.merge_method));
  const std::vector<PlannedTensor> plan = planner.plan();
  MergePlan out;
  for (const auto& p : plan) out.tensors.push_back(p.out);
  out.model_config = merged_model_config(planner, out.tensors.front().dtype);
  return out;
}

MergeReport merge_into(const MergeConfig& config, const MergeOptions& options, const TensorDestination& destination,
                       const MergeProgressFn& on_progress) {
  const MethodInfo& method = find_method(config.merge_method);
  Planner planner(config, method);
  std::vector<PlannedTensor> plan = planner.plan();
  std::map<std::string, float*> target;  // filled before the tensor's workers start
  MergeReport report = run_plan(method, plan, options, [&](const io::TensorSpec& out) {
    target[out.name] = destination(out);
  }, [&](const io::TensorSpec& out, int64_t offset, const float* values, int64_t count) {
    float* into = target.at(out.name) + offset;
    if (out.dtype == io::Dtype::kF32) {
      std::copy(values, values + count, into);
      return;
    }
    // Through the output dtype and back, as the file would hold it.
    const size_t element = io::dtype_bits(out.dtype) / 8;
    thread_local std::vector<uint8_t> converted;
    converted.resize(static_cast<size_t>(count) * element);
    io::from_f32(out.dtype, values, converted.data(), static_cast<size_t>(count));
    io::to_f32(out.dtype, converted.data(), into, static_cast<size_t>(count));
  }, on_progress);
  return report;
}

}  // namespace cpt::merge
