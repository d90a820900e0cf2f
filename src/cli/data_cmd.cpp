// cpt-train data inspect --prefix PREFIX [--json]
// cpt-train data preview --config FILE.yaml [--set KEY=VALUE]... [--samples N]

#include <cstdio>
#include <fmt/format.h>
#include <memory>

#include "commands.h"
#include "cpt/common/error.h"
#include "cpt/config/config.h"
#include "cpt/data/inspect.h"
#include "cpt/data/loader.h"
#include "cpt/data/sources.h"
#include "cpt/data/tokenizer.h"

namespace cpt::cli {

namespace {

struct DataArgs {
  std::string prefix;
  bool json = false;
  std::string config;
  std::vector<std::string> overrides;
  int samples = 1000;
  int show = 3;
};

int run_inspect(const DataArgs& args) {
  const data::IndexedDataset dataset(args.prefix);
  const data::ShardStats stats = data::shard_stats(dataset);
  if (args.json) {
    std::printf("%s\n", data::to_json(stats).dump(2).c_str());
  } else {
    std::printf("%s", data::describe(stats).c_str());
  }
  return kExitOk;
}

std::string excerpt(std::string text, size_t limit) {
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  if (text.size() > limit) {
    size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // keep UTF-8 whole
    text = text.substr(0, cut) + " …";
  }
  return text;
}

int run_preview(const DataArgs& args) {
  config::LoadOptions options;
  options.overrides = args.overrides;
  const config::Loaded loaded = config::load_file(args.config, options);
  const config::Config& c = loaded.config;
  const data::TrainingSources opened = data::open_training_sources(c.data, static_cast<uint64_t>(c.run.seed));
  data::LoaderOptions loader_options;
  loader_options.global_batch_size = 1;
  loader_options.micro_batch_size = 1;
  loader_options.vocab_size = c.model.shape.vocab_size;
  data::Loader loader(opened.sources, opened.weights, loader_options);

  std::unique_ptr<data::Tokenizer> tokenizer;
  if (!c.tokenizer.empty()) tokenizer = std::make_unique<data::Tokenizer>(c.tokenizer);

  std::vector<int64_t> counts(opened.sources.size(), 0);
  double weight_total = 0;
  for (double w : opened.weights) weight_total += w;
  std::printf("first %d samples of %lld tokens:\n", args.samples, static_cast<long long>(c.data.seq_len));
  for (int i = 0; i < args.samples; ++i) {
    const data::MicroBatch batch = loader.next();
    ++counts[static_cast<size_t>(batch.source[0])];
    if (i < args.show) {
      std::string text;
      if (tokenizer) {
        std::vector<int> ids(batch.tokens.begin(), batch.tokens.end());
        text = excerpt(tokenizer->decode(ids), 240);
      } else {
        text = "(no tokenizer in the config to decode with)";
      }
      std::printf("  sample %d from %s (its sample %lld): %s\n", i,
                  opened.sources[static_cast<size_t>(batch.source[0])]->name().c_str(),
                  static_cast<long long>(batch.source_sample[0]), text.c_str());
    }
  }
  std::printf("realised mix over %d samples:\n", args.samples);
  std::printf("  %-16s %10s %10s %10s %10s\n", "source", "samples", "share", "weight", "expected");
  for (size_t s = 0; s < opened.sources.size(); ++s) {
    const double weight = opened.weights[s] / weight_total;
    std::printf("  %-16s %10lld %10.4f %10.4f %10.1f\n", opened.sources[s]->name().c_str(),
                static_cast<long long>(counts[s]), static_cast<double>(counts[s]) / args.samples, weight,
                weight * args.samples);
  }
  return kExitOk;
}

}  // namespace

Command add_data_command(CLI::App& parent) {
  auto args = std::make_shared<DataArgs>();
  CLI::App* app = parent.add_subcommand("data", "look at token shards and at the blended training stream");
  app->require_subcommand(1);

  add_examples(*app, {{"cpt-train data inspect --prefix data/pubmed", "documents, tokens and lengths of a shard"},
                      {"cpt-train data preview --config configs/medical.yaml --show 2",
                       "the realised mix of the run's sources, and two decoded samples"}});
  CLI::App* inspect = app->add_subcommand("inspect", "validate a .bin/.idx shard and print its statistics");
  add_examples(*inspect, {{"cpt-train data inspect --prefix data/pubmed", "documents, tokens and lengths of a shard"},
                          {"cpt-train data inspect --prefix data/pubmed --json", "the same as one JSON object"}});
  inspect->add_option("--prefix", args->prefix, "shard path without .bin/.idx")->required();
  inspect->add_flag("--json", args->json, "print one JSON object");

  CLI::App* preview = app->add_subcommand("preview", "the realised source mix and decoded text of the blended stream");
  add_examples(*preview, {{"cpt-train data preview --config configs/medical.yaml",
                           "the mix over the first 1,000 samples against the configured weights"},
                          {"cpt-train data preview --config configs/medical.yaml --set data.sources.1.weight=0.5 --show 3",
                           "another weight, and three samples decoded"}});
  preview->add_option("--config", args->config, "run configuration (YAML)")->required()->check(CLI::ExistingFile);
  preview->add_option("--set", args->overrides, "override a config key (repeatable)")->type_name("KEY=VALUE");
  preview->add_option("--samples", args->samples, "samples to count the mix over")->check(at_least(1))
      ->capture_default_str();
  preview->add_option("--show", args->show, "samples to decode and print")->check(at_least(0))
      ->capture_default_str();

  return {app, [args, inspect]() -> int { return inspect->parsed() ? run_inspect(*args) : run_preview(*args); }};
}

}  // namespace cpt::cli
