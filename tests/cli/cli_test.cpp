// The binary as users and scripts call it: flags, exit codes, one-line errors.

#include <gtest/gtest.h>

#include <thread>

#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/hf_models.h"
#include "support/run_command.h"
#include "support/temp_dir.h"
#include "support/test_tokenizer.h"

namespace cpt {
namespace {

using testing::CommandResult;
using testing::run_command;

const std::string kBinary = CPT_BINARY;
const std::string kConfigs = std::string(CPT_SOURCE_DIR) + "/configs/";

CommandResult cpt_train(const std::string& args) { return run_command(kBinary + " " + args); }

std::string squeeze_spaces(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c != ' ' || out.empty() || out.back() != ' ') out += c;
  }
  return out;
}

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

TEST(Cli, MedicalDryRunReportsTheSevenBillionPlan) {
  const CommandResult r = cpt_train("--config " + kConfigs + "medical.yaml --dry-run --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["plan"]["parameters"], 6'738'415'616);
  EXPECT_EQ(json["plan"]["tokens_per_step"], 8'388'608);
  EXPECT_EQ(json["config"]["optimizer"]["lr"], 1.5e-5);
  // Neither the base model nor the shards exist here: listed, not fatal.
  EXPECT_FALSE(json["warnings"].empty());
  EXPECT_NE(r.err.find("[warning]"), std::string::npos);
}

TEST(Cli, TrainSubcommandIsTheSameAsTheDefault) {
  const CommandResult a = cpt_train("--config " + kConfigs + "tiny.yaml --dry-run --json");
  const CommandResult b = cpt_train("train --config " + kConfigs + "tiny.yaml --dry-run --json");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(Cli, DryRunTextShowsResolvedConfigAndPlan) {
  const CommandResult r = cpt_train("--config " + kConfigs + "tiny.yaml --dry-run --set optimizer.lr=2e-3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lr: 0.002"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokens per step"), std::string::npos);
  EXPECT_NE(r.out.find("memory per rank"), std::string::npos);
}

TEST(Cli, WorldSizeFlagAndEnvironmentPlanPerRank) {
  const CommandResult flag =
      cpt_train("--config " + kConfigs + "medical.yaml --dry-run --json --world-size 64 --log-level error");
  ASSERT_EQ(flag.exit_code, 0) << flag.err;
  EXPECT_EQ(nlohmann::json::parse(flag.out)["plan"]["micro_batches_per_rank"], 32);
  const CommandResult env =
      run_command("WORLD_SIZE=64 RANK=0 " + kBinary + " --config " + kConfigs + "medical.yaml --dry-run --json");
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(nlohmann::json::parse(env.out)["plan"]["world_size"], 64);
}

TEST(Cli, MisspeltKeyExitsTwoWithOneLine) {
  testing::TempDir dir;
  const std::string path = dir.write("bad.yaml", "data:\n  sources: [{name: a, prefix: p}]\noptimizer:\n  lrr: 1e-5\n");
  const CommandResult r = cpt_train("--config " + path + " --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(path + ":4: unknown key 'optimizer.lrr'; did you mean 'lr'?"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(Cli, BadValueThroughSetExitsTwo) {
  const CommandResult r = cpt_train("--config " + kConfigs + "tiny.yaml --dry-run --set data.sources.0.weight=-1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--set data.sources.0.weight=-1: data.sources[0].weight: -1 is invalid"), std::string::npos)
      << r.err;
}

TEST(Cli, RealRunRejectsEmptyShardsAndWritesNoConfig) {
  testing::TempDir dir;
  dir.write("shards/a.bin", "");
  dir.write("shards/a.idx", "");
  const std::string path = dir.write("run.yaml", "run: {output_dir: " + dir.file("out") + "}\ndata:\n  sources: [{name: a, prefix: " +
                                                     dir.file("shards/a") + "}]\n");
  const CommandResult r = cpt_train("--config " + path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("data.sources[0] 'a': '" + dir.file("shards/a") + ".idx': 0 bytes is too short"), std::string::npos) << r.err;
  // A refused run leaves no record of a config it never trained with.
  EXPECT_FALSE(std::filesystem::exists(dir.file("out/config.resolved.yaml")));
}

TEST(Cli, RealRunRefusesMissingInputs) {
  const CommandResult r = cpt_train("--config " + kConfigs + "medical.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("model.init_from '/models/Llama-2-7b-hf' does not exist yet"), std::string::npos) << r.err;
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* sub : {"", "train", "tokenize", "data", "data inspect", "data preview", "eval", "generate", "merge", "report",
                          "version"}) {
    const CommandResult r = cpt_train(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
    // Ends with real command lines: at least two, each of this subcommand.
    const size_t examples = r.out.find("\nExamples:\n");
    ASSERT_NE(examples, std::string::npos) << sub << ":\n" << r.out;
    int count = 0;
    for (size_t at = r.out.find("cpt-train " + std::string(sub), examples); at != std::string::npos;
         at = r.out.find("cpt-train " + std::string(sub), at + 1)) {
      ++count;
    }
    EXPECT_GE(count, 2) << sub << ":\n" << r.out;
  }
}

TEST(Cli, DataParallelLaunchWithoutRendezvousSaysWhatIsMissing) {
  testing::TempDir dir;
  const std::string path = dir.write("run.yaml", "run: {output_dir: " + dir.file("out") + "}\ndata:\n  sources: [{name: a, prefix: " +
                                                     dir.file("a") + "}]\n");
  dir.write("a.bin", "");
  dir.write("a.idx", "");
  const CommandResult r = run_command("WORLD_SIZE=2 RANK=0 " + kBinary + " --config " + path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("MASTER_ADDR is not set; a multi-process torchrun-style launch needs MASTER_ADDR and MASTER_PORT"),
            std::string::npos)
      << r.err;
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(cpt_train("").exit_code, 2);
  EXPECT_EQ(cpt_train("frobnicate").exit_code, 2);
  // A misspelt subcommand is named, with a guess, whether or not --help follows.
  for (const char* args : {"tokenise --help", "tokenise --input a b"}) {
    const CommandResult typo = cpt_train(args);
    EXPECT_EQ(typo.exit_code, 2) << args;
    EXPECT_NE(typo.err.find("'tokenise' is not a cpt-train subcommand (they are train, tokenize,"), std::string::npos)
        << typo.err;
    EXPECT_NE(typo.err.find("; did you mean 'tokenize'?"), std::string::npos) << typo.err;
    EXPECT_EQ(count_lines(typo.err), 1) << typo.err;
  }
  EXPECT_EQ(cpt_train("--config /nonexistent.yaml").exit_code, 2);
  EXPECT_EQ(cpt_train("tokenize --input x").exit_code, 2);
  const CommandResult level = cpt_train("version --log-level loud");
  EXPECT_EQ(level.exit_code, 2);
  EXPECT_NE(level.err.find("--log-level 'loud' is not a level"), std::string::npos) << level.err;
  // A count out of range names the bound, not the largest double in 309 digits.
  for (const std::string& args : {"data preview --config " + kConfigs + "tiny.yaml --samples 0",
                                 "--config " + kConfigs + "tiny.yaml --dry-run --world-size 0"}) {
    const CommandResult zero = cpt_train(args);
    EXPECT_EQ(zero.exit_code, 2) << args;
    EXPECT_NE(zero.err.find("must be at least 1, not 0"), std::string::npos) << zero.err;
    EXPECT_LT(zero.err.size(), 200u) << zero.err;
  }
  const CommandResult words = cpt_train("eval --checkpoint x --prefix y --batch four");
  EXPECT_EQ(words.exit_code, 2);
  EXPECT_NE(words.err.find("'four' is not a whole number"), std::string::npos) << words.err;
}

// tokenize → data inspect → data preview, as a user would run them.
TEST(Cli, TokenizeInspectAndPreviewADomainAndGeneralMix) {
  testing::TempDir dir;
  const auto& texts = testing::test_tokenizer().documents;
  std::string domain, general;
  for (size_t i = 0; i < texts.size(); ++i) {
    (i % 4 == 0 ? general : domain) += nlohmann::json{{"text", texts[i]}}.dump() + "\n";
  }
  const std::string model = testing::test_tokenizer().model;
  for (const auto& [name, body] : {std::pair{"domain", domain}, {"general", general}}) {
    const std::string input = dir.write(std::string(name) + ".jsonl", body);
    const CommandResult r = cpt_train("tokenize --tokenizer " + model + " --input " + input + " --output-prefix " +
                                      dir.file(name) + " --workers 2");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("wrote " + dir.file(name) + ".bin/.idx"), std::string::npos) << r.err;
  }

  const CommandResult inspect = cpt_train("data inspect --json --prefix " + dir.file("general"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  const auto stats = nlohmann::json::parse(inspect.out);
  EXPECT_EQ(stats["documents"], (texts.size() + 3) / 4);
  EXPECT_EQ(stats["dtype"], "uint16");
  EXPECT_LE(stats["document_tokens"]["min"], stats["document_tokens"]["p50"]);

  const std::string config = dir.write(
      "mix.yaml", "model: {preset: tiny, vocab_size: 2000}\ntokenizer: " + model + "\ndata:\n  seq_len: 64\n"
                  "  sources:\n    - {name: domain, prefix: " + dir.file("domain") + ", weight: 0.9}\n"
                  "    - {name: general, prefix: " + dir.file("general") + ", weight: 0.1}\n");
  const CommandResult preview = cpt_train("data preview --config " + config + " --samples 1000 --show 1");
  ASSERT_EQ(preview.exit_code, 0) << preview.err;
  const std::string table = squeeze_spaces(preview.out);
  EXPECT_NE(table.find("domain 900 0.9000 0.9000 900.0"), std::string::npos) << preview.out;
  EXPECT_NE(table.find("general 100 0.1000 0.1000 100.0"), std::string::npos) << preview.out;
  EXPECT_NE(preview.out.find("sample 0 from domain"), std::string::npos) << preview.out;
}

TEST(Cli, BadShardsAndBadRecordsExitTwo) {
  testing::TempDir dir;
  const CommandResult missing = cpt_train("data inspect --prefix " + dir.file("nothing"));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("cannot open '" + dir.file("nothing") + ".idx'"), std::string::npos) << missing.err;
  const std::string input = dir.write("bad.jsonl", "{\"text\": \"fine\"}\n{oops\n");
  const CommandResult strict = cpt_train("tokenize --strict --tokenizer " + testing::test_tokenizer().model +
                                         " --input " + input + " --output-prefix " + dir.file("out"));
  EXPECT_EQ(strict.exit_code, 2);
  EXPECT_NE(strict.err.find(input + ":2: invalid JSON"), std::string::npos) << strict.err;
  const CommandResult lenient = cpt_train("tokenize --tokenizer " + testing::test_tokenizer().model + " --input " +
                                          input + " --output-prefix " + dir.file("out"));
  EXPECT_EQ(lenient.exit_code, 0) << lenient.err;
  EXPECT_NE(lenient.err.find("skipped 1 of 2 records (50.0%); e.g. line 2: invalid JSON"), std::string::npos)
      << lenient.err;
  // Most records skipped: the counts, examples, and the likely causes.
  const std::string mostly_bad = dir.write("mostly-bad.jsonl", "{\"text\": \"fine\"}\n{\"body\": \"a\"}\n{\"body\": \"b\"}\n");
  const CommandResult most = cpt_train("tokenize --tokenizer " + testing::test_tokenizer().model + " --input " +
                                       mostly_bad + " --output-prefix " + dir.file("most"));
  EXPECT_EQ(most.exit_code, 0) << most.err;
  EXPECT_NE(most.err.find("skipped 2 of 3 records (66.7%), most of the file: check --text-key and that the file is "
                          "UTF-8 JSON lines; e.g. line 2: no \"text\" key; line 3: no \"text\" key"),
            std::string::npos)
      << most.err;
  // No usable document: exit 2 with the cause, and no empty shard left behind.
  const std::string model = testing::test_tokenizer().model;
  const std::string empty = dir.write("empty.jsonl", "");
  const CommandResult nothing = cpt_train("tokenize --tokenizer " + model + " --input " + empty + " --output-prefix " +
                                          dir.file("empty-out"));
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("no usable document for " + dir.file("empty-out") + ": the input holds no records"),
            std::string::npos)
      << nothing.err;
  const CommandResult wrong_key = cpt_train("tokenize --tokenizer " + model + " --input " + input +
                                            " --text-key body --output-prefix " + dir.file("key-out"));
  EXPECT_EQ(wrong_key.exit_code, 2);
  EXPECT_NE(wrong_key.err.find("every record was skipped (" + input + ": 2 bad"), std::string::npos) << wrong_key.err;
  for (const char* prefix : {"empty-out", "key-out"}) {
    EXPECT_FALSE(std::filesystem::exists(dir.file(std::string(prefix) + ".bin"))) << prefix;
    EXPECT_FALSE(std::filesystem::exists(dir.file(std::string(prefix) + ".idx"))) << prefix;
  }
}

TEST(Cli, MergeWritesAModelAndRejectsBadConfigsWithExitTwo) {
  testing::TempDir dir;
  testing::write_model(dir.file("base"), {}, 1, 0.0f);
  testing::write_model(dir.file("chat"), {}, 2, 0.5f);
  const std::string good = dir.write("slerp.yaml", "models:\n  - model: " + dir.file("base") + "\n  - model: " +
                                                       dir.file("chat") + "\nmerge_method: slerp\nbase_model: " +
                                                       dir.file("base") + "\nparameters: {t: [0, 1]}\n");
  const CommandResult ok = cpt_train("merge --config " + good + " --output " + dir.file("merged"));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.err.find("wrote " + dir.file("merged") + ": 30 tensors"), std::string::npos) << ok.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("merged/model.safetensors")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("merged/tokenizer.model")));

  const std::string bad = dir.write("bad.yaml", "models:\n  - model: " + dir.file("base") + "\nmerge_method: frankenmerge\n");
  const CommandResult r = cpt_train("merge --config " + bad + " --output " + dir.file("bad-out"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("merge_method 'frankenmerge' is not supported; supported: linear, slerp"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad-out")));

  // Weights that cancel leave normalize nothing to divide by: merged as the
  // plain weighted sum, and said.
  const std::string cancel = dir.write("cancel.yaml", "models:\n  - model: " + dir.file("chat") +
                                                          "\n    parameters: {weight: 1}\n  - model: " + dir.file("base") +
                                                          "\n    parameters: {weight: -1}\nmerge_method: linear\n");
  const CommandResult difference = cpt_train("merge --config " + cancel + " --output " + dir.file("difference"));
  EXPECT_EQ(difference.exit_code, 0) << difference.err;
  EXPECT_NE(difference.err.find("sum to 0, so normalize cannot divide by their sum"), std::string::npos)
      << difference.err;
}

TEST(Cli, VersionNamesLibTorch) {
  const CommandResult r = cpt_train("version --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto json = nlohmann::json::parse(r.out);
  EXPECT_EQ(json["version"], "0.1.0");
  EXPECT_FALSE(json["libtorch"].get<std::string>().empty());
  // The threads a run would use, said in words: one core allowed, one thread.
  const CommandResult one = run_command("env -u OMP_NUM_THREADS taskset -c 0 " + kBinary + " version");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find(fmt::format("1 CPU thread for a run (1 of this machine's {} cores allowed by CPU affinity)",
                                     std::thread::hardware_concurrency())),
            std::string::npos)
      << one.out;
}

// cpt-train runs the commands that need no model without LibTorch, and
// hands the others to cpt-train-torch (cpt/cli/app.h); the dynamic loader's
// own log says which libraries each command line loaded.
TEST(Cli, OnlyTheCommandsThatNeedLibTorchLoadIt) {
  testing::TempDir dir;
  const std::string run_dir = dir.file("no-run");
  const std::vector<std::pair<std::string, bool>> cases = {
      {"tokenize --help", false},
      {"data --help", false},
      {"--log-level warn merge --help", false},
      {"merge --help --log-level=warn", false},
      {"report " + run_dir, false},  // exits 2: no such run, said without LibTorch
      {"merge --help --sweep", true},
      {"version", true},
      {"--help", true},
      {"eval --help", true},
      {"--config " + kConfigs + "tiny.yaml --dry-run", true},
      {"tokenise", true},  // the full list of commands, for "did you mean"
  };
  for (const auto& [args, loads_torch] : cases) {
    const CommandResult r = run_command("LD_DEBUG=files " + kBinary + " " + args);
    EXPECT_EQ(r.exit_code, args.rfind("report", 0) == 0 || args == "tokenise" ? 2 : 0) << args << ":\n" << r.err;
    EXPECT_EQ(r.err.find("file=libtorch_cpu.so") != std::string::npos, loads_torch) << args;
  }
}

TEST(Cli, WithoutItsLibTorchHalfCptTrainSaysWhereItLookedAndStillMerges) {
  testing::TempDir dir;
  const std::string alone = dir.file("cpt-train");
  std::filesystem::copy_file(kBinary, alone);
  const CommandResult r = run_command(alone + " version");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("cannot run '" + dir.file("cpt-train-torch") + "' (No such file or directory)"), std::string::npos)
      << r.err;
  const CommandResult help = run_command(alone + " merge --help");
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--random-seed"), std::string::npos);
}

TEST(Cli, TheTorchHalfStartsWithMallocAskingForHugePagesUnlessTheUserSaidOtherwise) {
  // A stand-in for cpt-train-torch beside a copy of cpt-train prints the
  // environment it was started with.
  testing::TempDir dir;
  const std::string front = dir.file("cpt-train");
  std::filesystem::copy_file(kBinary, front);
  testing::TempDir::write_to(dir.file("cpt-train-torch"), "#!/bin/sh\necho \"tunables=$GLIBC_TUNABLES\"\n");
  std::filesystem::permissions(dir.file("cpt-train-torch"), std::filesystem::perms::owner_all);
  const auto tunables_seen = [&](const std::string& environment) {
    const CommandResult r = run_command(environment + " " + front + " version");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  EXPECT_EQ(tunables_seen("env -u GLIBC_TUNABLES"), "tunables=glibc.malloc.hugetlb=1\n");
  EXPECT_EQ(tunables_seen("GLIBC_TUNABLES=glibc.malloc.arena_max=2"),
            "tunables=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1\n");
  EXPECT_EQ(tunables_seen("GLIBC_TUNABLES=glibc.malloc.hugetlb=0"), "tunables=glibc.malloc.hugetlb=0\n");
  // The commands cpt-train runs itself leave the environment as it was.
  const CommandResult merge_help = run_command("env -u GLIBC_TUNABLES " + front + " merge --help");
  EXPECT_EQ(merge_help.exit_code, 0) << merge_help.err;
}

TEST(Cli, LogLinesCarryTheRank) {
  // The shards do not exist, so the dry run logs warnings.
  const CommandResult r = run_command("RANK=1 WORLD_SIZE=2 " + kBinary + " --config " + kConfigs +
                                      "tiny.yaml --dry-run --set data.sources.0.prefix=/nonexistent/shard");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[rank 1]"), std::string::npos) << r.err;
}

// A model saved by transformers' own save_pretrained, sharded, in fp32 and
// bf16: `eval` gives transformers' loss on the same text, and it is a valid
// model.init_from whose trained checkpoint transformers loads back.
TEST(Transformers, SavePretrainedModelsEvaluateAsInTransformersAndAreAnInitFrom) {
  testing::TempDir dir;
  const auto& tokenizer = testing::test_tokenizer();
  std::string text;
  for (size_t i = 0; i < 40; ++i) text += nlohmann::json{{"text", tokenizer.documents[i]}}.dump() + "\n";
  const std::string input = dir.write("text.jsonl", text);
  const std::string script = std::string(CPT_PYTHON) + " " + CPT_SOURCE_DIR + "/tests/model/transformers_saved.py";
  ASSERT_EQ(cpt_train("tokenize --tokenizer " + tokenizer.model + " --input " + input + " --output-prefix " +
                      dir.file("text")).exit_code, 0);
  for (const std::string dtype : {"float32", "bfloat16"}) {
    const std::string hf = dir.file("hf-" + dtype);
    const CommandResult saved = run_command(fmt::format("{} save {} {} 2000", script, hf, dtype));
    ASSERT_EQ(saved.exit_code, 0) << saved.err;
    std::filesystem::copy_file(tokenizer.model, hf + "/tokenizer.model");

    const CommandResult ours = cpt_train("eval --checkpoint " + hf + " --input " + input + " --seq-len 32 --json");
    ASSERT_EQ(ours.exit_code, 0) << ours.err;
    const CommandResult theirs = run_command(fmt::format("{} loss {} {} {} 32", script, hf, input, tokenizer.model));
    ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
    const auto a = nlohmann::json::parse(ours.out), b = nlohmann::json::parse(theirs.out);
    EXPECT_EQ(a["tokens"], b["tokens"]) << dtype;
    EXPECT_GT(a["tokens"].get<int64_t>(), 1000) << dtype;
    EXPECT_NEAR(a["loss"].get<double>(), b["loss"].get<double>(), 1e-5 * b["loss"].get<double>()) << dtype;

    const std::string out = dir.file("phase-" + dtype);
    const std::string config = dir.write("phase-" + dtype + ".yaml", fmt::format(R"(run: {{name: phase, output_dir: {0}}}
model: {{init_from: {1}}}
data:
  seq_len: 32
  sources: [{{name: text, prefix: {2}}}]
  eval: [{{name: text, prefix: {2}, max_batches: 1}}]
train: {{global_batch_size: 2, micro_batch_size: 1, steps: 2, precision: fp32}}
schedule: {{warmup_steps: 1}}
checkpoint: {{every_steps: 2}}
eval: {{every_steps: 2}}
)", out, hf, dir.file("text")));
    const CommandResult phase = cpt_train("--config " + config);
    ASSERT_EQ(phase.exit_code, 0) << phase.err;
    const CommandResult reloaded = run_command(fmt::format("{} {}/tests/model/transformers_llama.py {} '[[1, 5, 9, 33]]' {}",
                                                           CPT_PYTHON, CPT_SOURCE_DIR, out + "/checkpoints/step-00000002",
                                                           dir.file("logits-" + dtype)));
    EXPECT_EQ(reloaded.exit_code, 0) << reloaded.err;
  }
}

}  // namespace
}  // namespace cpt
