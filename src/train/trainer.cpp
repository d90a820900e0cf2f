#include "cpt/train/trainer.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <spdlog/spdlog.h>
#include <thread>
#include <unistd.h>

#include "cpt/backend/backend.h"
#include "cpt/common/error.h"
#include "cpt/common/strings.h"
#include "cpt/config/serialize.h"
#include "cpt/data/loader.h"
#include "cpt/data/sources.h"
#include "cpt/data/tokenizer.h"
#include "cpt/io/hf_checkpoint.h"
#include "cpt/io/atomic_file.h"
#include "cpt/io/event_file.h"
#include "cpt/io/run_lock.h"
#include "cpt/model/attention.h"
#include "cpt/model/loss.h"
#include "cpt/model/shape.h"
#include "cpt/dist/env.h"
#include "cpt/train/checkpoint.h"
#include "cpt/train/data_parallel.h"
#include "cpt/train/inference.h"
#include "cpt/train/peak_flops.h"
#include "cpt/train/schedule.h"

namespace fs = std::filesystem;

namespace cpt::train {

namespace {

std::atomic<int> g_stop_signal{0};

// SIGTERM, SIGUSR1 (SLURM's warning before the end of the time limit) and
// SIGINT (Ctrl-C) ask for a checkpoint and exit 75 after the current step.
// A second Ctrl-C means "now": the process exits without saving, and
// `latest` still names the last complete checkpoint.
void on_stop_signal(int signal) {
  if (signal == SIGINT && g_stop_signal != 0) {
    static constexpr char kMessage[] = "second interrupt: exiting at once, without saving\n";
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    ::_exit(130);
  }
  g_stop_signal = signal;
}

void install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  for (const int signal : {SIGTERM, SIGUSR1, SIGINT}) ::sigaction(signal, &action, nullptr);
}

// The checkpoint to resume from, checked file by file against the checksums
// it was written with. `--resume auto` never loads a damaged one: it names
// the newest intact checkpoint for --resume PATH instead.
void verify_resume_point(const std::string& dir, const CheckpointPaths& paths, bool automatic) {
  try {
    verify_checkpoint(dir);
  } catch (const InputError& damage) {
    if (!automatic) throw;
    const std::optional<std::string> intact = newest_intact_checkpoint(paths, dir);
    throw InputError(fmt::format("--resume auto: the newest checkpoint is damaged: {}; {}", damage.what(),
                                 intact ? fmt::format("the newest intact one is {}: pass --resume {} to continue "
                                                      "from it",
                                                      *intact, *intact)
                                        : std::string("no intact checkpoint remains; start again with --resume none "
                                                      "in a new run.output_dir")));
  }
}

using Clock = std::chrono::steady_clock;

// Matmul FLOP/s of this device in the training dtype: the best of several
// short trials, so a moment of contention does not lower the peak (and
// inflate MFU).
double measure_matmul_flops(const backend::Backend& device, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const int64_t n = device.device().is_cpu() ? 1024 : 8192;
  const auto options = torch::TensorOptions().device(device.device()).dtype(dtype);
  auto a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  auto c = torch::mm(a, b);  // warm up
  device.synchronize();
  double best = 0;
  for (int trial = 0; trial < 8; ++trial) {
    const auto start = Clock::now();
    int runs = 0;
    double seconds = 0;
    do {
      torch::mm_out(c, a, b);
      ++runs;
      device.synchronize();
      seconds = std::chrono::duration<double>(Clock::now() - start).count();
    } while (seconds < 0.08);
    best = std::max(best, 2.0 * n * n * n * runs / seconds);
  }
  return best;
}

// One device's peak for MFU: logging.peak_tflops, else the device's nominal
// peak, else (CPUs, unknown accelerators) measured. The ranks measure in
// turn: ranks sharing a machine would otherwise each measure a fraction of
// it, and MFU would read above 100%.
PeakFlops resolve_peak_flops(const config::Config& c, const backend::Backend& device, bool bf16,
                             dist::ProcessGroup& group) {
  const char* precision = bf16 ? "bf16" : "fp32";
  if (c.logging.peak_tflops > 0) return {c.logging.peak_tflops, fmt::format("logging.peak_tflops ({})", precision)};
  if (!device.device().is_cpu()) {
    if (const auto nominal = nominal_peak_tflops(device.model_name(), bf16)) {
      return {*nominal, fmt::format("nominal {} {} dense", device.model_name(), precision)};
    }
  }
  double measured = 0;
  for (int turn = 0; turn < group.size(); ++turn) {
    if (turn == group.rank()) measured = measure_matmul_flops(device, bf16 ? torch::kBFloat16 : torch::kFloat);
    group.barrier();
  }
  // The ranks' mean, so every rank reports the same MFU.
  auto sum = torch::tensor({measured}, torch::kDouble);
  group.all_reduce_sum(sum).wait();
  return {sum.item<double>() / group.size() / 1e12,
          fmt::format("measured on this {}: {} matmul, best of 8 trials at start-up{}", device.model_name(), precision,
                      group.size() > 1 ? ", ranks in turn" : "")};
}

// What a resumed run must share with the checkpoint: the model's shape and
// the sequence length. Everything else (weights of the mix, cadences, the
// number of steps, the world size) may change.
nlohmann::json resume_guard(const config::Config& c) {
  auto model = config::to_json(c)["model"];
  model.erase("preset");
  model.erase("init_from");
  model["seq_len"] = c.data.seq_len;
  model["architecture"] = model::describe(c.model.shape.arch);
  return model;
}

void check_resume_guard(const std::string& dir, const nlohmann::json& saved, const nlohmann::json& now) {
  if (saved.is_null()) return;  // written before the guard existed
  for (const auto& [key, value] : now.items()) {
    const std::string full = key == "seq_len" ? "data.seq_len" : "model." + key;
    // Guards written before architectures were recorded are Llama's.
    const nlohmann::json before = key == "architecture" && !saved.contains(key)
                                      ? nlohmann::json(model::describe(model::Architecture{}))
                                      : saved.value(key, nlohmann::json());
    if (before != value) {
      throw InputError(fmt::format("cannot resume from {}: {} was {} there and is {} now; to continue from its "
                                   "weights with a new shape or length, start a new phase in a new directory: "
                                   "--set model.init_from={} --set run.output_dir=<new directory>",
                                   dir, full, before.is_null() ? "absent" : before.dump(), value.dump(), dir));
    }
  }
}

// The optimisation recipe, to warn when a resume changes it (the model's
// shape is guarded above; a changed shape is refused).
std::string config_hash(const config::Config& c) {
  return fmt::format("{:016x}", std::hash<std::string>{}(config::to_json(c)["optimizer"].dump()));
}

// On resume, drop metrics rows past the checkpoint: those steps run again.
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    const auto row = nlohmann::json::parse(line, nullptr, false);
    if (!row.is_discarded() && row.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  io::write_file_atomic(path, kept);
}

// The config a checkpoint was saved under (trainer_state/config.resolved.yaml);
// null for checkpoints from before it was kept, or one that no longer loads.
nlohmann::json saved_config(const std::string& dir) {
  const fs::path path = fs::path(dir) / "trainer_state" / "config.resolved.yaml";
  std::ifstream in(path);
  if (!in) return nullptr;
  std::stringstream text;
  text << in.rdbuf();
  try {
    config::LoadOptions options;
    return config::to_json(config::load_text(text.str(), path.string(), options).config);
  } catch (const std::exception& e) {
    spdlog::debug("{} does not load as a config ({}); changes since it are not listed", path.string(), e.what());
    return nullptr;
  }
}

std::string describe_sources(const data::Config& d) {
  double total = 0;
  for (const auto& source : d.sources) total += source.weight;
  std::vector<std::string> parts;
  for (const auto& source : d.sources) {
    parts.push_back(fmt::format("{} {:.3g}%", source.name, 100.0 * source.weight / total));
  }
  return join(parts, ", ");
}

// What a resume changes against the checkpoint's own config, in words: the
// mix, the step budget (the schedule re-stretches), the batch, the recipe.
std::vector<std::string> describe_changes(const nlohmann::json& before, const config::Config& now_config,
                                          int64_t step) {
  std::vector<std::string> changes;
  if (before.is_null()) return changes;
  const nlohmann::json now = config::to_json(now_config);
  const auto differs = [&](const char* section, const char* key) {
    return before.contains(section) && before[section].contains(key) && before[section][key] != now[section][key];
  };
  if (before.contains("data") && before["data"]["sources"] != now["data"]["sources"]) {
    std::vector<std::string> parts;
    double total = 0;
    for (const auto& source : before["data"]["sources"]) total += source.value("weight", 0.0);
    for (const auto& source : before["data"]["sources"]) {
      parts.push_back(fmt::format("{} {:.3g}%", source.value("name", std::string("?")),
                                  total > 0 ? 100.0 * source.value("weight", 0.0) / total : 0.0));
    }
    changes.push_back(fmt::format("the data mix changed: {} before, {} now; the stream continues with the new "
                                  "weights",
                                  join(parts, ", "), describe_sources(now_config.data)));
  }
  if (differs("train", "steps")) {
    const int64_t old_steps = before["train"]["steps"].get<int64_t>();
    std::string lr;
    try {
      config::Config old_config = config::load_text(nlohmann::json(before).dump(), "checkpoint").config;
      lr = fmt::format("; the schedule re-stretches: the learning rate of step {} is {:.3g} (was {:.3g})", step + 1,
                       learning_rate(now_config.optimizer, now_config.schedule, step + 1, now_config.train.steps),
                       learning_rate(old_config.optimizer, old_config.schedule, step + 1, old_steps));
    } catch (const std::exception&) {
    }
    changes.push_back(fmt::format("train.steps changed from {} to {}{}", old_steps, now_config.train.steps, lr));
  }
  for (const char* key : {"global_batch_size", "micro_batch_size", "precision"}) {
    if (differs("train", key)) {
      changes.push_back(fmt::format("train.{} changed from {} to {}", key, before["train"][key].dump(),
                                    now["train"][key].dump()));
    }
  }
  for (const char* section : {"optimizer", "schedule"}) {
    if (!before.contains(section)) continue;
    for (const auto& [key, value] : now[section].items()) {
      if (before[section].contains(key) && before[section][key] != value) {
        changes.push_back(fmt::format("{}.{} changed from {} to {}", section, key, before[section][key].dump(),
                                      value.dump()));
      }
    }
  }
  return changes;
}

// What the run is about to do, in a few lines: the model and where its
// weights come from, the data, the batch and the plan.
// The logging interval's partial sums, as a checkpoint keeps them.
struct LogWindow {
  double loss_sum = 0;
  int64_t steps = 0;
  std::vector<double> source_sums;  // per source: sum of token losses, tokens
};

nlohmann::json log_window_json(double loss_sum, int64_t steps, const std::vector<double>& source_sums) {
  return {{"loss_sum", loss_sum}, {"steps", steps}, {"source_sums", source_sums}};
}

// A window saved with another set of sources (a resume that changed the
// mix) starts its per-source sums afresh.
LogWindow parse_log_window(const nlohmann::json& json, size_t sources) {
  LogWindow window;
  try {
    window.loss_sum = json.at("loss_sum").get<double>();
    window.steps = json.at("steps").get<int64_t>();
    window.source_sums = json.at("source_sums").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("state.json: log_window is malformed: {}", e.what()));
  }
  if (window.source_sums.size() != 2 * sources) window.source_sums.assign(2 * sources, 0.0);
  return window;
}

void log_start_summary(const config::Config& c, const TrainerState& state, const std::optional<std::string>& resume_from,
                       int world_size) {
  const model::Shape& shape = c.model.shape;
  const std::string origin =
      resume_from ? fmt::format("resumed from {} at step {} ({} tokens trained)", *resume_from, state.step, state.tokens)
      : c.model.init_from.empty() ? fmt::format("initialised at random (seed {})", c.run.seed)
                                  : fmt::format("initialised from {}", c.model.init_from);
  spdlog::info("model: {} parameters ({}; {} layers, hidden {}, {} heads, {} KV heads, vocab {}), {}",
               human_count(static_cast<double>(model::parameter_count(shape))), model::describe(shape.arch),
               shape.num_hidden_layers, shape.hidden_size, shape.num_attention_heads, shape.num_key_value_heads,
               shape.vocab_size, origin);
  std::vector<std::string> eval_names;
  for (const auto& set : c.data.eval) eval_names.push_back(set.name);
  spdlog::info("data: {}; eval sets: {}", describe_sources(c.data), eval_names.empty() ? "none" : join(eval_names, ", "));
  const int64_t tokens_per_step = c.train.global_batch_size * c.data.seq_len;
  spdlog::info("plan: {} steps of {} tokens ({} sequences of {} over {} rank{}, micro-batch {}), {} tokens in "
               "all; lr {:.3g}, {} warmup steps, {} decay; checkpoints {} in {}",
               c.train.steps, tokens_per_step, c.train.global_batch_size, c.data.seq_len, world_size,
               world_size == 1 ? "" : "s", c.train.micro_batch_size,
               human_count(static_cast<double>(tokens_per_step * c.train.steps)), c.optimizer.lr, c.schedule.warmup_steps,
               c.schedule.decay,
               c.checkpoint.every_steps > 0 ? fmt::format("every {} steps", c.checkpoint.every_steps) : "at the end",
               (fs::path(c.run.output_dir) / "checkpoints").string());
}

}  // namespace

const char* StepPhases::name(Phase phase) {
  static constexpr const char* kNames[] = {"data", "forward", "backward", "communication", "optimizer"};
  return kNames[phase];
}

void StepPhases::start(Phase phase) {
  if (device_ == nullptr) return;
  stop();
  timers_.emplace_back(phase, device_->start_timer());
  running_ = true;
}

void StepPhases::stop() {
  if (!running_) return;
  timers_.back().second->stop();
  running_ = false;
}

std::array<double, StepPhases::kCount> StepPhases::take() {
  stop();
  std::array<double, kCount> seconds{};
  for (auto& [phase, timer] : timers_) seconds[phase] += timer->seconds();
  timers_.clear();
  return seconds;
}

StepResult train_step(model::Llama& model, AdamW& optimizer, DataParallel& replicas,
                      std::vector<data::TorchBatch>& micro_batches, const StepOptions& options) {
  StepPhases no_timing;
  StepPhases& phases = options.phases != nullptr ? *options.phases : no_timing;
  phases.start(StepPhases::kForward);
  replicas.zero_grad();
  int64_t total_tokens = 0;
  for (const auto& b : micro_batches) total_tokens += b.targets.numel();
  torch::Tensor local_loss;  // on the device: nothing is read back until the step is queued
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    const auto& b = micro_batches[m];
    phases.start(StepPhases::kForward);
    // The LM head runs inside the loss (fused_linear_cross_entropy): the
    // logits are never kept, only their gradient, until backward.
    const torch::Tensor loss = [&] {
      torch::Tensor hidden;
      if (options.document_mask) {
        // run_training finds the documents on the host; other callers' batches may not carry them.
        const model::DocumentSegments documents{b.document_segments.defined() ? b.document_segments
                                                                               : model::document_segments(b.positions.cpu())};
        hidden = model->hidden_states(b.tokens, b.positions, documents);
      } else {
        hidden = model->hidden_states(b.tokens, {}, model::DocumentSegments{});
      }
      hidden = hidden.view({-1, hidden.size(-1)});
      if (!options.source_loss.defined() || !b.source.defined()) {
        return model::fused_linear_cross_entropy(hidden, model->lm_head_weight(), b.targets.view({-1}));
      }
      torch::Tensor token_losses;
      auto mean =
          model::fused_linear_cross_entropy(hidden, model->lm_head_weight(), b.targets.view({-1}), &token_losses);
      // Per row, then per source: the mix's own loss curves.
      const auto rows = token_losses.view({b.targets.size(0), -1}).sum(1).to(torch::kDouble);
      options.source_loss.select(1, 0).index_add_(0, b.source, rows);
      options.source_loss.select(1, 1).index_add_(
          0, b.source, torch::full({b.targets.size(0)}, static_cast<double>(b.targets.size(1)), rows.options()));
      return mean;
    }();
    const double share = static_cast<double>(b.targets.numel()) / static_cast<double>(total_tokens);
    const auto weighted = loss.detach() * share;
    local_loss = local_loss.defined() ? local_loss + weighted : weighted;
    phases.start(StepPhases::kBackward);  // with DDP, the bucket all-reduces it overlaps
    if (m + 1 == micro_batches.size()) replicas.sync_during_next_backward();
    (loss * share).backward();
  }
  phases.start(StepPhases::kCommunication);
  replicas.finish_gradient_sync();
  // Every rank has as many tokens, so the global mean is the mean of the ranks'.
  const torch::Tensor stats = replicas.reduce_statistics(local_loss, options.stop, options.grad_clip);
  phases.start(StepPhases::kOptimizer);
  // A non-finite loss or norm makes the fused kernel skip the update on
  // every rank (they share the statistics); the weights stay the last
  // finite ones. The clipping factor scales the gradients as it reads them.
  optimizer.step(options.lr, stats[3].to(torch::kFloat), stats[4].to(torch::kFloat));
  phases.start(StepPhases::kCommunication);  // the cast into the parameters, and ZeRO-1's all-gather
  replicas.publish_parameters();
  phases.stop();
  const torch::Tensor host = stats.to(torch::kCPU);  // the step's one host sync
  const double* v = host.data_ptr<double>();
  StepResult result;
  result.loss = v[0];
  result.ranks_stopping = static_cast<int>(v[1]);
  result.grad_norm = v[2];
  result.finite = v[3] == 0.0;
  return result;
}

int run_training(const config::Loaded& loaded, const TrainOptions& options) {
  const config::Config& c = loaded.config;
  if (!loaded.warnings.empty()) throw InputError(loaded.source + ": " + loaded.warnings.front());
  const dist::LaunchEnv env = dist::launch_env_from_environment(static_cast<int>(c.distributed.master_port));
  dist::check_rendezvous(env);
  const bool leader = env.rank == 0;
  // One run per output_dir: taken before anything is written into it.
  std::optional<io::RunLock> lock;
  if (leader) lock.emplace(c.run.output_dir);
  const CheckpointPaths paths{(fs::path(c.run.output_dir) / "checkpoints").string()};
  const std::string metrics_path = (fs::path(c.run.output_dir) / "metrics.jsonl").string();

  if (!c.tokenizer.empty()) {
    const data::Tokenizer tokenizer(c.tokenizer);
    if (!tokenizer.fits_model_vocab(c.model.shape.vocab_size)) {
      throw InputError(fmt::format("{}: tokenizer '{}' has {} pieces but model.vocab_size is {}; they must match",
                                   loaded.source, c.tokenizer, tokenizer.vocab_size(), c.model.shape.vocab_size));
    }
  }

  const std::unique_ptr<backend::Backend> device = backend::select_backend(c.backend, env.local_rank);
  if (c.distributed.backend == "nccl" && device->process_group_backend() != "nccl") {
    throw InputError(fmt::format("{}: distributed.backend nccl needs the cuda backend, but this run is on {} ({})",
                                 loaded.source, device->name(), backend::describe_availability("cuda")));
  }
  const bool bf16 = c.train.precision == "bf16" && device->supports_bf16();
  if (c.train.precision == "bf16" && !bf16) {
    spdlog::warn("train.precision bf16: this {} has no fast bf16 (on a CPU: no AVX-512); training in fp32",
                 device->name());
  }
  model::Llama model(c.model.shape);
  model->set_activation_checkpointing(model::parse_recompute(c.train.activation_checkpointing));
  if (c.model.init_from.empty()) {
    model->init_weights(static_cast<uint64_t>(c.run.seed));
  } else {
    // A new CPT phase from a base (or from one of our checkpoints): weights
    // only; optimizer, schedule and data start fresh.
    io::load_hf_weights(*model, c.model.init_from);
  }
  model->to(device->device());
  NamedTensors parameters;
  for (auto& p : model->named_parameters()) parameters.emplace_back(p.key(), p.value());
  dist::Config process_group = c.distributed;
  if (process_group.backend == "auto") process_group.backend = device->process_group_backend();
  const std::unique_ptr<dist::ProcessGroup> group = dist::ProcessGroup::connect(env, process_group);
  DataParallel replicas(*group, parameters, c.distributed.zero1,
                        static_cast<int64_t>(c.distributed.bucket_mb * 1024 * 1024),
                        bf16 ? torch::kBFloat16 : torch::kFloat);
  AdamW optimizer(replicas.owned_slices(), c.optimizer);
  if (leader) {
    spdlog::info("device {}, {}, AdamW fused", device->device().str(),
                 bf16 ? "bf16 parameters, fp32 master weights and moments" : "fp32");
  }

  TrainerState state;
  state.config_hash = config_hash(c);
  state.resume_guard = resume_guard(c);
  std::optional<std::string> resume_from;
  if (options.resume == "auto") {
    resume_from = latest_checkpoint(paths);
  } else if (options.resume != "none") {
    resume_from = options.resume;
  } else if (latest_checkpoint(paths)) {
    // A new phase (init_from) cannot continue this run's checkpoints: the
    // only way forward is its own directory.
    throw InputError(c.model.init_from.empty()
                         ? fmt::format("{} already holds checkpoints; pass --resume auto to continue them, or set "
                                       "run.output_dir to a new directory to start again",
                                       paths.root)
                         : fmt::format("{} already holds checkpoints; a new phase from model.init_from {} needs its "
                                       "own directory: --set run.output_dir=<new directory>",
                                       paths.root, c.model.init_from));
  }
  const data::BlendState* data_state = nullptr;
  if (resume_from) {
    verify_resume_point(*resume_from, paths, options.resume == "auto");
    check_resume_guard(*resume_from, read_trainer_state(*resume_from).resume_guard, resume_guard(c));
    state = load_checkpoint(*resume_from, replicas, optimizer);
    state.resume_guard = resume_guard(c);
    // Checkpoints that keep their config get each change said in words below.
    if (state.config_hash != config_hash(c) && saved_config(*resume_from).is_null()) {
      spdlog::warn("resuming {} with a changed optimizer config", *resume_from);
    }
    state.config_hash = config_hash(c);
    data_state = &state.data;
  }

  const data::TrainingSources sources = data::open_training_sources(c.data, static_cast<uint64_t>(c.run.seed));
  const auto eval_sets = data::open_eval_sets(c.data);
  data::LoaderOptions loader_options;
  loader_options.global_batch_size = c.train.global_batch_size;
  loader_options.micro_batch_size = c.train.micro_batch_size;
  loader_options.rank = group->rank();
  loader_options.world_size = group->size();
  loader_options.vocab_size = c.model.shape.vocab_size;
  data::Loader loader(sources.sources, sources.weights, loader_options, data_state);

  // The run is accepted: only now is anything of it written. Each start
  // keeps its own record of the config; each checkpoint keeps the one it
  // was trained under.
  if (leader) {
    if (resume_from) {
      truncate_metrics(metrics_path, state.step);
      config::write_resolved(c, loaded.source,
                             fmt::format("config.resolved.resume-{}.yaml", fs::path(*resume_from).filename().string()));
    } else {
      config::write_resolved(c, loaded.source);
    }
    log_start_summary(c, state, resume_from, group->size());
    if (resume_from) {
      for (const std::string& change : describe_changes(saved_config(*resume_from), c, state.step)) {
        spdlog::info("changed since {}: {}", fs::path(*resume_from).filename().string(), change);
      }
    }
  }
  const std::string resolved_config = config::resolved_yaml(c, loaded.source);

  install_stop_signals();
  // Fault injection for the resume and fault tests: "13:KILL" raises
  // SIGKILL after step 13 (a kill -9), "13:TERM" SIGTERM (a preemption),
  // "13:STOP" SIGSTOP (a hung rank).
  int64_t raise_at = -1;
  int raise_signal = 0;
  if (const char* hook = std::getenv("CPT_TEST_RAISE_AT_STEP")) {
    const std::string text(hook);
    raise_at = std::atoll(text.c_str());
    raise_signal = text.find("TERM") != std::string::npos   ? SIGTERM
                   : text.find("STOP") != std::string::npos ? SIGSTOP
                                                            : SIGKILL;
  }

  const double flops_per_token = model::training_flops_per_token(c.model.shape, c.data.seq_len);
  const PeakFlops peak = resolve_peak_flops(c, *device, bf16, *group);
  // Every rank's device counts: tokens/s is the whole run's.
  const double run_peak_flops = peak.tflops * 1e12 * group->size();
  if (leader) {
    spdlog::info("MFU is against {:.4g} TFLOP/s per device × {} ({})", peak.tflops, group->size(), peak.source);
  }
  bool warned_mfu = false;
  device->reset_peak_memory();
  const int64_t tokens_per_step = c.train.global_batch_size * c.data.seq_len;
  std::optional<io::LineAppender> metrics;  // rank 0 writes the metrics
  if (leader) metrics.emplace(metrics_path);
  // The same rows for TensorBoard. A resume's events replace those of the
  // steps it runs again (a session START at the first of them).
  std::optional<io::EventFileWriter> events;
  if (leader && c.logging.tensorboard) {
    events.emplace((fs::path(c.run.output_dir) / "tensorboard").string(), resume_from ? state.step + 1 : 0);
  }
  auto write_row = [&](const nlohmann::ordered_json& row) {
    if (!leader) return;
    metrics->append(row.dump());
    if (!events) return;
    std::vector<std::pair<std::string, double>> scalars;
    for (const auto& [key, value] : row.items()) {
      if (key != "step" && value.is_number()) scalars.emplace_back(key, value.get<double>());
    }
    events->add_scalars(row["step"].get<int64_t>(), scalars);
  };
  // Elapsed time continues across resumes; the ETA is this process's pace.
  const auto start = Clock::now();
  const double elapsed_before = state.elapsed_s;
  const int64_t first_step = state.step;
  const auto elapsed_now = [&] { return elapsed_before + std::chrono::duration<double>(Clock::now() - start).count(); };
  std::unique_ptr<backend::DeviceTimer> window = device->start_timer();
  int64_t window_tokens = 0, window_steps = 0;
  double window_eval_s = 0;
  // The logging interval's losses: the mean of its finite steps, and each
  // source's token-weighted mean, from per-row sums kept on the device. A
  // checkpoint keeps the partial sums, so a resume logs the same means.
  torch::Tensor source_loss =
      torch::zeros({static_cast<int64_t>(sources.sources.size()), 2},
                   torch::TensorOptions().dtype(torch::kDouble).device(device->device()));
  double window_loss_sum = 0;
  int64_t window_loss_steps = 0;
  if (state.log_window.is_object()) {
    const LogWindow saved = parse_log_window(state.log_window, sources.sources.size());
    window_loss_sum = saved.loss_sum;
    window_loss_steps = saved.steps;
    // Rank 0 carries the ranks' sums; the others start from zero.
    if (leader) source_loss.copy_(torch::tensor(saved.source_sums, torch::kDouble).view({-1, 2}));
  }
  // Sums the ranks' partial sums into every rank's tensor.
  auto gather_source_loss = [&] { group->all_reduce_sum(source_loss).wait(); };
  StepPhases phases(device.get());

  auto save = [&] {
    SaveOptions save_options;
    save_options.tokenizer = c.tokenizer;
    save_options.base_model = c.model.init_from;
    save_options.max_shard_size = c.checkpoint.max_shard_size.value;
    save_options.keep_last = c.checkpoint.keep_last;
    save_options.sharded_optimizer = c.distributed.zero1 && group->size() > 1;
    save_options.bf16_weights = c.checkpoint.dtype == "bf16";
    save_options.resolved_config = resolved_config;
    state.elapsed_s = elapsed_now();
    gather_source_loss();
    const torch::Tensor sums = source_loss.cpu().contiguous().clone();
    state.log_window = log_window_json(window_loss_sum, window_loss_steps,
                                       std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel()));
    if (!leader) source_loss.zero_();
    const auto save_start = Clock::now();
    std::string dir;
    try {
      dir = save_checkpoint(paths, c.model.shape, replicas, optimizer, state, save_options);
    } catch (const InputError&) {
      throw;
    } catch (const std::exception& e) {
      // Say what is still safe: the failed save left nothing under a final name.
      const std::optional<std::string> last = latest_checkpoint(paths);
      throw std::runtime_error(fmt::format("the checkpoint of step {} was not saved: {}; {}", state.step, e.what(),
                                           last ? "the last complete one is " + *last + " (--resume auto continues from it)"
                                                : std::string("there is no earlier checkpoint")));
    }
    if (leader) {
      spdlog::info("saved {} in {:.4g} s", dir, std::chrono::duration<double>(Clock::now() - save_start).count());
    }
  };
  auto run_eval = [&](nlohmann::ordered_json& row) {
    for (const auto& set : eval_sets) {
      const int64_t max_batches = std::find_if(c.data.eval.begin(), c.data.eval.end(), [&](const auto& e) {
                                    return e.name == set->name();
                                  })->max_batches;
      const double loss = evaluate_windows(model, *set, c.train.micro_batch_size, max_batches, *group, *device).loss;
      row["eval/" + set->name() + "/loss"] = loss;
      row["eval/" + set->name() + "/ppl"] = std::exp(loss);
      if (leader) spdlog::info("eval {} step {}: loss {:.4f} ppl {:.2f}", set->name(), state.step, loss, std::exp(loss));
    }
  };

  // The base model's loss is the reference line of the forgetting curve;
  // eval.every_steps 0 means the end only.
  if (state.step == 0 && !eval_sets.empty() && c.eval.every_steps > 0) {
    nlohmann::ordered_json row = {{"step", 0}, {"tokens", 0}};
    run_eval(row);
    write_row(row);
  }
  while (state.step < c.train.steps) {
    phases.start(StepPhases::kData);
    std::vector<data::TorchBatch> micro_batches;
    data::BlendState after;
    for (int64_t m = 0; m < loader.micro_batches_per_step(); ++m) {
      data::MicroBatch batch = loader.next();
      if (batch.last_in_step) after = batch.state_after_step;
      data::TorchBatch host = data::to_torch(std::move(batch));
      host.tokens = device->to_device(host.tokens);
      host.targets = device->to_device(host.targets);
      if (c.train.document_mask && host.positions.defined()) host.document_segments = model::document_segments(host.positions);
      if (host.positions.defined()) host.positions = device->to_device(host.positions);
      host.source = device->to_device(host.source);
      micro_batches.push_back(std::move(host));
    }
    const double lr = learning_rate(c.optimizer, c.schedule, state.step + 1, c.train.steps);
    StepOptions step_options;
    step_options.lr = lr;
    step_options.grad_clip = c.optimizer.grad_clip;
    step_options.document_mask = c.train.document_mask;
    step_options.stop = g_stop_signal != 0;
    step_options.phases = &phases;
    step_options.source_loss = source_loss;
    const StepResult result = train_step(model, optimizer, replicas, micro_batches, step_options);
    ++state.step;
    // Shards rewritten or replaced under the run stop it before a checkpoint
    // records a data position in them (truncation is caught on the read).
    for (const auto& source : sources.sources) source->dataset().check_unchanged();
    for (const auto& set : eval_sets) set->dataset().check_unchanged();
    if (group->size() > 1 && state.step == 1) {
      if (replicas.sharded()) {
        spdlog::debug("gradient reduce-scatter: one over the flat buffer after backward (ZeRO-1)");
      } else {
        spdlog::debug("gradient all-reduce: {} of {} buckets started during backward",
                      replicas.buckets_started_during_backward(), replicas.buckets());
      }
    }
    state.tokens += tokens_per_step;
    state.data = after;
    window_tokens += tokens_per_step;
    ++window_steps;
    if (result.finite) {
      window_loss_sum += result.loss;
      ++window_loss_steps;
    }
    if (result.finite) {
      state.nonfinite_in_row = 0;
    } else {
      ++state.nonfinite_in_row;
      spdlog::warn("step {}: non-finite loss {} or gradient norm {}; update skipped ({} in a row)", state.step,
                   result.loss, result.grad_norm, state.nonfinite_in_row);
      if (state.nonfinite_in_row >= c.train.max_nonfinite_steps) {
        save();  // the weights are still the last finite ones: updates were skipped
        throw std::runtime_error(fmt::format("{} steps in a row had a non-finite loss or gradient; stopped after "
                                             "saving step {} (lower optimizer.lr, or check the data)",
                                             state.nonfinite_in_row, state.step));
      }
    }

    const bool log_now = state.step % c.logging.every_steps == 0 || state.step == c.train.steps;
    const bool eval_now = !eval_sets.empty() && ((c.eval.every_steps > 0 && state.step % c.eval.every_steps == 0) ||
                                                 state.step == c.train.steps);
    // Training rows follow logging.every_steps; an evaluation between them
    // is a row of its own, so the loss and throughput intervals stay even.
    nlohmann::ordered_json row = {{"step", state.step}, {"tokens", state.tokens}};
    if (log_now) {
      window->stop();
      // Evaluations inside the window are not training time.
      const double window_s = std::max(window->seconds() - window_eval_s, 1e-9);
      const backend::MemoryStats memory = device->memory();
      const double tokens_per_s = static_cast<double>(window_tokens) / window_s;
      const double elapsed = elapsed_now();
      // Every step of a training batch has the same number of tokens: the
      // interval's token-weighted mean is the mean of its steps.
      const double loss = window_loss_steps > 0 ? window_loss_sum / static_cast<double>(window_loss_steps) : result.loss;
      gather_source_loss();
      const torch::Tensor per_source = source_loss.cpu().clone();
      source_loss.zero_();
      window_loss_sum = 0;
      window_loss_steps = 0;
      std::vector<std::pair<std::string, double>> source_losses;
      for (size_t s = 0; s < sources.sources.size(); ++s) {
        const double tokens = per_source[static_cast<int64_t>(s)][1].item<double>();
        // The interval's tokens from each source: the realised mix.
        row["train/" + sources.sources[s]->name() + "/tokens"] = static_cast<int64_t>(tokens);
        if (tokens > 0) {
          source_losses.emplace_back(sources.sources[s]->name(),
                                     per_source[static_cast<int64_t>(s)][0].item<double>() / tokens);
        }
      }
      // The steps left at this process's pace: a resumed run's earlier steps
      // took their time in another process.
      const double eta = static_cast<double>(c.train.steps - state.step) * (elapsed - elapsed_before) /
                         static_cast<double>(std::max<int64_t>(1, state.step - first_step));
      const double mfu = tokens_per_s * flops_per_token / run_peak_flops;
      if (mfu > 1.0 && !warned_mfu && leader) {
        warned_mfu = true;
        spdlog::warn("MFU {:.0f}% is above 100%: the peak ({}) is too low for this machine; set "
                     "logging.peak_tflops to its real peak",
                     100 * mfu, peak.source);
      }
      row["loss"] = loss;
      row["lr"] = lr;
      row["grad_norm"] = result.grad_norm;
      row["tokens_per_s"] = tokens_per_s;
      row["mfu"] = mfu;
      row["peak_tflops"] = peak.tflops;
      row["elapsed_s"] = elapsed;
      row["eta_s"] = eta;
      row["peak_memory_bytes"] = memory.peak_bytes;
      for (const auto& [name, value] : source_losses) row["train/" + name + "/loss"] = value;
      // Mean seconds per step of each phase over the window, from the device timers.
      const auto seconds = phases.take();
      for (int p = 0; p < StepPhases::kCount; ++p) {
        row[fmt::format("time/{}_s", StepPhases::name(static_cast<StepPhases::Phase>(p)))] =
            seconds[p] / static_cast<double>(std::max<int64_t>(1, window_steps));
      }
      if (leader) {
        std::vector<std::string> parts;
        for (const auto& [name, value] : source_losses) parts.push_back(fmt::format("{} {:.4f}", name, value));
        spdlog::info("step {}/{} loss {:.4f} ({}) lr {:.3g} grad_norm {:.3f} {:.0f} tok/s MFU {:.1f}% mem {:.2f} GB "
                     "elapsed {:.0f}s ETA {:.0f}s",
                     state.step, c.train.steps, loss, join(parts, ", "), lr, result.grad_norm, tokens_per_s,
                     100.0 * mfu, static_cast<double>(memory.peak_bytes) / 1e9,
                     elapsed, eta);
      }
    }
    if (eval_now) {
      const auto eval_start = Clock::now();
      run_eval(row);
      if (!log_now) window_eval_s += std::chrono::duration<double>(Clock::now() - eval_start).count();
    }
    if (log_now || eval_now) write_row(row);
    if (log_now) {
      window = device->start_timer();
      window_tokens = 0;
      window_steps = 0;
      window_eval_s = 0;
    }
    if (state.step == raise_at) {
      std::raise(raise_signal);
      // A signal sent while the process was stopped goes to whichever of its
      // threads the kernel runs first once continued, so its handler may
      // still be running on another thread here; give it a moment, so a
      // Ctrl-C sent during the stop is seen after this step.
      for (int waited_ms = 0; raise_signal == SIGSTOP && g_stop_signal == 0 && waited_ms < 500; waited_ms += 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    const bool checkpoint_now = (c.checkpoint.every_steps > 0 && state.step % c.checkpoint.every_steps == 0) ||
                                state.step == c.train.steps;
    if (checkpoint_now) save();
    // A signal may reach one rank only (scancel to one task, a node's
    // SIGTERM): the ranks agree through the step's statistics collective,
    // so all save and stop together, after the step that follows the
    // signal. One rank needs no agreement and stops at once.
    const bool stop = group->size() == 1 ? g_stop_signal != 0 : result.ranks_stopping > 0;
    if (stop) {
      if (!checkpoint_now) save();
      if (g_stop_signal != 0) {
        spdlog::warn("stopped by signal {} after step {}; resume with --resume auto", g_stop_signal.load(), state.step);
      } else {
        spdlog::warn("stopped after step {}: another rank got a stop signal; resume with --resume auto", state.step);
      }
      return kExitPreempted;
    }
  }
  if (leader) spdlog::info("done: {} steps, {} tokens", state.step, state.tokens);
  return kExitOk;
}

}  // namespace cpt::train
