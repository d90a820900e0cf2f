#include "cpt/config/config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "binder.h"
#include "cpt/backend/config.h"
#include "cpt/common/error.h"
#include "overrides.h"

namespace fs = std::filesystem;

namespace cpt::config {

namespace {

void validate_run(const RunConfig& run) {
  if (run.name.empty()) throw ConfigValueError("run.name", "is empty; give the run a name");
  if (run.output_dir.empty()) throw ConfigValueError("run.output_dir", "is empty; give a directory for the run's files");
  if (run.seed < 0) throw ConfigValueError("run.seed", fmt::format("{} is invalid; it must be >= 0", run.seed));
}

// Rules that span two modules' settings.
void validate_together(Config& c, const Binder& binder, int world_size) {
  if (c.data.seq_len > c.model.shape.max_position_embeddings) {
    throw ConfigValueError("data.seq_len", fmt::format("{} exceeds the model's max_position_embeddings {}; use a "
                                                       "seq_len <= {}",
                                                       c.data.seq_len, c.model.shape.max_position_embeddings,
                                                       c.model.shape.max_position_embeddings),
                           {"model.max_position_embeddings", "model.preset", "model.init_from"});
  }
  const int64_t per_step = c.train.micro_batch_size * world_size;
  if (c.train.global_batch_size % per_step != 0) {
    throw ConfigValueError(
        "train.micro_batch_size",
        fmt::format("{} x {} rank(s) = {} sequences per micro-step does not divide train.global_batch_size {}; the "
                    "global batch must be a whole number of micro-batches on every rank",
                    c.train.micro_batch_size, world_size, per_step, c.train.global_batch_size),
        {"train.global_batch_size"});
  }
  if (c.train.tokens > 0) {
    const int64_t tokens_per_step = c.train.global_batch_size * c.data.seq_len;
    const int64_t steps = (c.train.tokens + tokens_per_step - 1) / tokens_per_step;
    if (binder.present("train.steps") && c.train.steps != steps) {
      throw ConfigValueError("train.steps",
                             fmt::format("{} disagrees with train.tokens {}, which takes {} steps of {} tokens; set "
                                         "only one of them",
                                         c.train.steps, c.train.tokens, steps, tokens_per_step),
                             {"train.tokens", "train.global_batch_size", "data.seq_len"});
    }
    c.train.steps = steps;
  }
  if (c.schedule.warmup_steps > c.train.steps) {
    throw ConfigValueError("schedule.warmup_steps",
                           fmt::format("{} is more than train.steps {}; warmup must end before training does",
                                       c.schedule.warmup_steps, c.train.steps),
                           {"train.steps", "train.tokens"});
  }
}

}  // namespace

Loaded load_text(const std::string& yaml, const std::string& source, const LoadOptions& options) {
  if (options.world_size < 1) throw InputError(fmt::format("world size {} is invalid; it must be >= 1", options.world_size));
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw InputError(fmt::format("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (!root.IsMap() && !root.IsNull()) {
    throw InputError(fmt::format("{}: the top level must be a mapping of sections (run, model, data, …)", source));
  }

  OverrideOrigins origins = apply_overrides(root, options.overrides);
  Binder binder(source, std::move(origins));
  Loaded loaded;
  loaded.source = source;
  Config& c = loaded.config;
  Section top(binder, root, "");
  c.fields(top);
  top.finish();

  try {
    validate_run(c.run);
    model::resolve_shape(c.model, loaded.warnings);
    data::validate(c.data);
    train::validate(c.train);
    train::validate(c.optimizer);
    train::validate(c.schedule);
    io::validate(c.checkpoint);
    train::validate(c.eval);
    dist::validate(c.distributed);
    backend::validate_name(c.backend);
    train::validate(c.logging);
    validate_together(c, binder, options.world_size);
  } catch (const ConfigValueError& e) {
    binder.fail(e.key(), e.what(), e.related());
  } catch (const InputError& e) {
    // Errors about other files (an init_from config.json) already name them.
    throw InputError(fmt::format("{}: {}", source, e.what()));
  }
  return loaded;
}

Loaded load_file(const std::string& path, const LoadOptions& options) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("cannot read config file '{}': {}", path, std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  Loaded loaded = load_text(text.str(), path, options);
  for (const auto& missing : missing_inputs(loaded.config)) loaded.warnings.push_back(missing);
  return loaded;
}

std::vector<std::string> missing_inputs(const Config& c) {
  std::vector<std::string> missing;
  if (!c.tokenizer.empty() && !fs::exists(c.tokenizer)) {
    missing.push_back(fmt::format("tokenizer '{}' does not exist yet", c.tokenizer));
  }
  auto check_shard = [&](const std::string& key, const std::string& prefix) {
    for (const char* ext : {".bin", ".idx"}) {
      if (!fs::exists(prefix + ext)) {
        missing.push_back(fmt::format("{}: {}{} does not exist yet (make it with cpt-train tokenize)", key, prefix,
                                      ext));
        return;
      }
    }
  };
  for (size_t i = 0; i < c.data.sources.size(); ++i) {
    check_shard(fmt::format("data.sources[{}].prefix", i), c.data.sources[i].prefix);
  }
  for (size_t i = 0; i < c.data.eval.size(); ++i) {
    check_shard(fmt::format("data.eval[{}].prefix", i), c.data.eval[i].prefix);
  }
  return missing;
}

}  // namespace cpt::config
