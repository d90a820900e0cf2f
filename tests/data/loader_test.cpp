#include "cpt/data/loader.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "cpt/common/error.h"
#include "support/datasets.h"
#include "support/temp_dir.h"

namespace cpt::data {
namespace {

constexpr int64_t kSeqLen = 16;

struct Fixture {
  testing::TempDir dir;
  std::vector<std::shared_ptr<const SourceSamples>> sources;
  Fixture() {
    // Token values tell the source apart: medical 1000+, general 5000+, code 9000+.
    int index = 0;
    for (auto [name, base, docs] : {std::tuple{"medical", 1000, 300}, {"general", 5000, 40}, {"code", 9000, 1}}) {
      testing::write_dataset(dir.file(name), testing::numbered_documents(docs, base, [](int d) { return 5 + d % 13; }));
      sources.push_back(std::make_shared<const SourceSamples>(
          name, std::make_shared<const IndexedDataset>(dir.file(name)), kSeqLen, 77 + index++, true));
    }
  }
  std::vector<std::shared_ptr<const SourceSamples>> first(size_t n) const {
    return {sources.begin(), sources.begin() + static_cast<long>(n)};
  }
};

LoaderOptions options(int64_t global, int64_t micro, int rank = 0, int world = 1) {
  LoaderOptions o;
  o.global_batch_size = global;
  o.micro_batch_size = micro;
  o.rank = rank;
  o.world_size = world;
  o.vocab_size = 10'000;
  return o;
}

// The rows of `steps` global batches, in global order, gathered from all ranks.
std::vector<std::vector<int64_t>> global_rows(const Fixture& f, int world, int64_t micro, int steps) {
  std::vector<std::vector<std::vector<int64_t>>> per_rank(static_cast<size_t>(world));
  for (int rank = 0; rank < world; ++rank) {
    Loader loader(f.first(2), {0.8, 0.2}, options(8, micro, rank, world));
    for (int i = 0; i < steps * loader.micro_batches_per_step(); ++i) {
      const MicroBatch b = loader.next();
      for (int64_t r = 0; r < b.rows; ++r) {
        per_rank[static_cast<size_t>(rank)].emplace_back(b.tokens.begin() + r * kSeqLen,
                                                         b.tokens.begin() + (r + 1) * kSeqLen);
      }
    }
  }
  std::vector<std::vector<int64_t>> rows;
  const int64_t per_step = 8 / world;
  for (int s = 0; s < steps; ++s) {
    for (int rank = 0; rank < world; ++rank) {
      for (int64_t r = 0; r < per_step; ++r) rows.push_back(per_rank[static_cast<size_t>(rank)][static_cast<size_t>(s * per_step + r)]);
    }
  }
  return rows;
}

TEST(Loader, TheGlobalStreamIsTheSameForOneTwoAndFourRanks) {
  Fixture f;
  const auto one = global_rows(f, 1, 2, 5);
  EXPECT_EQ(one.size(), 40u);
  EXPECT_EQ(global_rows(f, 2, 2, 5), one);
  EXPECT_EQ(global_rows(f, 4, 1, 5), one);
  EXPECT_EQ(global_rows(f, 1, 8, 5), one);
}

TEST(Loader, TargetsAreTokensShiftedByOne) {
  Fixture f;
  Loader loader(f.first(2), {0.8, 0.2}, options(4, 2));
  const MicroBatch b = loader.next();
  ASSERT_EQ(b.tokens.size(), static_cast<size_t>(2 * kSeqLen));
  for (int64_t r = 0; r < 2; ++r) {
    std::vector<int64_t> window(kSeqLen + 1);
    f.sources[static_cast<size_t>(b.source[static_cast<size_t>(r)])]->read(b.source_sample[static_cast<size_t>(r)],
                                                                            window.data(), nullptr);
    for (int64_t i = 0; i < kSeqLen; ++i) {
      EXPECT_EQ(b.tokens[static_cast<size_t>(r * kSeqLen + i)], window[static_cast<size_t>(i)]);
      EXPECT_EQ(b.targets[static_cast<size_t>(r * kSeqLen + i)], window[static_cast<size_t>(i + 1)]);
    }
    // A document starts wherever the token value changes.
    std::vector<int32_t> changes;
    for (int64_t i = 1; i < kSeqLen; ++i) {
      if (window[static_cast<size_t>(i)] != window[static_cast<size_t>(i - 1)]) changes.push_back(static_cast<int32_t>(i));
    }
    std::vector<int32_t> starts = b.doc_starts[static_cast<size_t>(r)];
    starts.erase(std::remove(starts.begin(), starts.end(), 0), starts.end());
    EXPECT_EQ(starts, changes);
  }
}

TEST(Loader, ResumesExactlyAtAnyStep) {
  Fixture f;
  Loader full(f.first(3), {0.6, 0.3, 0.1}, options(6, 3));
  std::vector<MicroBatch> reference;
  for (int i = 0; i < 2 * 20; ++i) reference.push_back(full.next());
  for (int stop : {1, 7, 13}) {
    const BlendState saved = BlendState::from_json(reference[static_cast<size_t>(2 * stop - 1)].state_after_step.to_json());
    Loader resumed(f.first(3), {0.6, 0.3, 0.1}, options(6, 3), &saved);
    for (int i = 2 * stop; i < 40; ++i) {
      const MicroBatch b = resumed.next();
      ASSERT_EQ(b.tokens, reference[static_cast<size_t>(i)].tokens) << "stop " << stop << " batch " << i;
      ASSERT_EQ(b.source_sample, reference[static_cast<size_t>(i)].source_sample);
    }
  }
}

// Resuming with new weights and a new source: by sample identity (source,
// its sample number), every source's samples are 0, 1, 2, … with no repeat
// and no gap across the resume.
TEST(Loader, ChangedWeightsOnResumeRepeatAndSkipNothing) {
  Fixture f;
  std::map<int, std::vector<int64_t>> served;
  BlendState saved;
  {
    Loader before(f.first(2), {0.9, 0.1}, options(10, 5));
    for (int i = 0; i < 2 * 30; ++i) {
      const MicroBatch b = before.next();
      for (size_t r = 0; r < b.source.size(); ++r) served[b.source[r]].push_back(b.source_sample[r]);
      if (b.last_in_step) saved = b.state_after_step;
    }
  }
  std::map<int, int64_t> after_counts;
  Loader after(f.first(3), {0.2, 0.3, 0.5}, options(10, 5), &saved);
  for (int i = 0; i < 2 * 30; ++i) {
    const MicroBatch b = after.next();
    for (size_t r = 0; r < b.source.size(); ++r) {
      served[b.source[r]].push_back(b.source_sample[r]);
      ++after_counts[b.source[r]];
    }
  }
  for (const auto& [source, samples] : served) {
    for (size_t i = 0; i < samples.size(); ++i) ASSERT_EQ(samples[i], static_cast<int64_t>(i)) << "source " << source;
  }
  EXPECT_EQ(after_counts[0], 60);   // 0.2 of 300
  EXPECT_EQ(after_counts[1], 90);   // 0.3
  EXPECT_EQ(after_counts[2], 150);  // 0.5: the single-document source cycles its epochs
}

TEST(Loader, ATokenOutsideTheVocabularyIsReportedNotClamped) {
  Fixture f;
  LoaderOptions o = options(2, 1);
  o.vocab_size = 5000;  // general (5000+) and code (9000+) do not fit
  Loader loader(f.first(2), {0.5, 0.5}, o);
  try {
    for (int i = 0; i < 10; ++i) loader.next();
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("source 'general'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("outside the model's vocabulary of 5000"), std::string::npos) << e.what();
  }
}

TEST(Loader, RejectsBatchesThatDoNotSplitOverRanks) {
  Fixture f;
  EXPECT_THROW(Loader(f.first(1), {1.0}, options(6, 4)), InputError);
  EXPECT_THROW(Loader(f.first(1), {1.0}, options(6, 1, 0, 4)), InputError);
}

}  // namespace
}  // namespace cpt::data
