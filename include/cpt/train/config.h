#pragma once
// The optimisation recipe: batch, length, precision, optimizer, schedule,
// evaluation and logging cadence.

#include <array>
#include <cstdint>
#include <string>

namespace cpt::train {

inline constexpr const char* kPrecisions[] = {"fp32", "bf16"};
inline constexpr const char* kDecays[] = {"cosine", "linear", "constant", "wsd"};
// What backward recomputes instead of keeping: nothing; each whole block
// (only block inputs kept); or Megatron's selective set (norms, RoPE,
// attention's softmax side, SwiGLU; the matmul outputs are kept).
inline constexpr const char* kActivationCheckpointing[] = {"none", "full", "selective"};

struct Config {
  int64_t global_batch_size = 256;     // sequences per optimizer step, all ranks together
  int64_t micro_batch_size = 1;        // sequences per forward/backward on one rank
  int64_t steps = 1000;                // optimizer steps; derived from `tokens` when that is set
  int64_t tokens = 0;                  // token budget instead of steps (0 = use steps)
  std::string precision = "bf16";      // autocast dtype over fp32 master weights
  std::string activation_checkpointing = "none";  // none | full | selective (kActivationCheckpointing)
  int64_t max_nonfinite_steps = 5;     // consecutive NaN/Inf steps skipped before aborting
  bool document_mask = false;          // attend only within a document; positions restart at each

  template <class V>
  void fields(V& v) {
    v("global_batch_size", global_batch_size);
    v("micro_batch_size", micro_batch_size);
    v("steps", steps);
    v("tokens", tokens);
    v("precision", precision);
    v("activation_checkpointing", activation_checkpointing);
    v("max_nonfinite_steps", max_nonfinite_steps);
    v("document_mask", document_mask);
  }
};

struct OptimizerConfig {
  double lr = 3e-5;                           // peak learning rate; CPT uses ~1/10 of pre-training's
  std::array<double, 2> betas = {0.9, 0.95};  // AdamW moment decay rates
  double eps = 1e-8;
  double weight_decay = 0.1;                  // decoupled; applied to 2-D weights only
  double grad_clip = 1.0;                     // global L2 norm; 0 disables clipping

  template <class V>
  void fields(V& v) {
    v("lr", lr);
    v("betas", betas);
    v("eps", eps);
    v("weight_decay", weight_decay);
    v("grad_clip", grad_clip);
  }
};

struct ScheduleConfig {
  int64_t warmup_steps = 100;     // linear ramp from 0 to optimizer.lr
  std::string decay = "cosine";   // cosine | linear | constant | wsd
  double min_lr_ratio = 0.1;      // final lr = min_lr_ratio * optimizer.lr
  double wsd_decay_ratio = 0.2;   // wsd only: the last fraction of steps that decays

  template <class V>
  void fields(V& v) {
    v("warmup_steps", warmup_steps);
    v("decay", decay);
    v("min_lr_ratio", min_lr_ratio);
    v("wsd_decay_ratio", wsd_decay_ratio);
  }
};

struct EvalConfig {
  int64_t every_steps = 250;  // 0 = evaluate only at the end

  template <class V>
  void fields(V& v) {
    v("every_steps", every_steps);
  }
};

struct LoggingConfig {
  int64_t every_steps = 10;  // console line and metrics.jsonl row
  double peak_tflops = 0;    // one device's peak for MFU, in the training precision; 0: from the device table, or measured on CPUs
  bool tensorboard = true;   // <output_dir>/tensorboard/ event files with every metrics.jsonl value

  template <class V>
  void fields(V& v) {
    v("every_steps", every_steps);
    v("peak_tflops", peak_tflops);
    v("tensorboard", tensorboard);
  }
};

void validate(const Config& config);
void validate(const OptimizerConfig& config);
void validate(const ScheduleConfig& config);
void validate(const EvalConfig& config);
void validate(const LoggingConfig& config);

}  // namespace cpt::train
