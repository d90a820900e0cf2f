#include "cpt/data/samples.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "cpt/common/error.h"
#include "support/datasets.h"
#include "support/temp_dir.h"

namespace cpt::data {
namespace {

std::shared_ptr<const IndexedDataset> make(const testing::TempDir& dir, const std::string& name,
                                           const std::vector<std::vector<int32_t>>& docs) {
  testing::write_dataset(dir.file(name), docs);
  return std::make_shared<const IndexedDataset>(dir.file(name));
}

std::vector<int64_t> window(const SourceSamples& s, int64_t k, std::vector<int32_t>* starts = nullptr) {
  std::vector<int64_t> w(static_cast<size_t>(s.seq_len() + 1));
  s.read(k, w.data(), starts);
  return w;
}

// The stream is the concatenation of shuffled epochs; windows overlap by
// one token (the last target is the next window's first input).
TEST(SourceSamples, WindowsTileTheShuffledStreamWithoutGapsOrPadding) {
  testing::TempDir dir;
  auto data = make(dir, "d", testing::numbered_documents(20, 100, [](int d) { return 3 + d % 5; }));
  const SourceSamples samples("d", data, 8, 42, true);
  std::vector<int64_t> stream;
  for (int64_t k = 0; k < 40; ++k) {
    const auto w = window(samples, k);
    if (k > 0) {
      EXPECT_EQ(w.front(), stream.back()) << "windows share one token";
    }
    stream.insert(stream.end(), w.begin() + (k > 0 ? 1 : 0), w.end());
  }
  // Cut the stream into epochs: each is a permutation of all 20 documents,
  // and consecutive epochs are shuffled differently.
  const int64_t epoch_tokens = data->tokens();
  std::vector<std::vector<int64_t>> orders;
  for (int64_t e = 0; (e + 1) * epoch_tokens <= static_cast<int64_t>(stream.size()); ++e) {
    std::vector<int64_t> order;
    for (int64_t i = e * epoch_tokens; i < (e + 1) * epoch_tokens; ++i) {
      if (order.empty() || order.back() != stream[static_cast<size_t>(i)]) order.push_back(stream[static_cast<size_t>(i)]);
    }
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all;
    for (int d = 0; d < 20; ++d) all.push_back(100 + d);
    EXPECT_EQ(sorted, all) << "epoch " << e << " holds every document once";
    orders.push_back(order);
  }
  ASSERT_GE(orders.size(), 2u);
  EXPECT_NE(orders[0], orders[1]);
}

TEST(SourceSamples, TheSameSeedGivesTheSameStreamAndAnotherSeedAnother) {
  testing::TempDir dir;
  auto data = make(dir, "d", testing::numbered_documents(50, 0, [](int) { return 4; }));
  const SourceSamples a("d", data, 16, 7, true), b("d", data, 16, 7, true), c("d", data, 16, 8, true);
  EXPECT_EQ(window(a, 5), window(b, 5));
  EXPECT_NE(window(a, 0), window(c, 0));
}

TEST(SourceSamples, ASingleShortDocumentServesWindowsAcrossEpochs) {
  testing::TempDir dir;
  auto data = make(dir, "one", {{1, 5, 6, 2}});
  const SourceSamples samples("one", data, 10, 1, true);
  std::vector<int32_t> starts;
  EXPECT_EQ(window(samples, 0, &starts), (std::vector<int64_t>{1, 5, 6, 2, 1, 5, 6, 2, 1, 5, 6}));
  EXPECT_EQ(starts, (std::vector<int32_t>{0, 4, 8}));
  // Sample 3 starts at stream token 30, two tokens into the eighth epoch.
  EXPECT_EQ(window(samples, 3, &starts), (std::vector<int64_t>{6, 2, 1, 5, 6, 2, 1, 5, 6, 2, 1}));
  EXPECT_EQ(starts, (std::vector<int32_t>{2, 6}));
  EXPECT_EQ(window(samples, 1'000'000).size(), 11u);
}

TEST(SourceSamples, EvalSetsAreServedInFileOrderEveryTime) {
  testing::TempDir dir;
  auto data = make(dir, "held", testing::numbered_documents(10, 0, [](int) { return 5; }));
  const SourceSamples eval("held", data, 9, 0, false);
  EXPECT_EQ(eval.samples_per_epoch(), (50 - 1) / 9);
  EXPECT_EQ(window(eval, 0), (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(window(eval, 1), (std::vector<int64_t>{1, 2, 2, 2, 2, 2, 3, 3, 3, 3}));
  EXPECT_EQ(window(eval, 1), window(SourceSamples("held", data, 9, 99, false), 1));
}

TEST(SourceSamples, EmptyDocumentsAreSkippedAndAnEmptySourceIsAnError) {
  testing::TempDir dir;
  auto data = make(dir, "gaps", {{}, {7, 7}, {}, {8}});
  const SourceSamples samples("gaps", data, 2, 0, false);
  EXPECT_EQ(window(samples, 0), (std::vector<int64_t>{7, 7, 8}));
  auto empty = make(dir, "empty", {{}, {}});
  try {
    SourceSamples bad("empty", empty, 4, 0, true);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "source 'empty' ('" + dir.file("empty") + "') has no tokens");
  }
}

TEST(SourceSamples, SeedsDependOnlyOnRunSeedAndSourceName) {
  EXPECT_EQ(source_seed(1234, "medical"), source_seed(1234, "medical"));
  EXPECT_NE(source_seed(1234, "medical"), source_seed(1234, "general"));
  EXPECT_NE(source_seed(1234, "medical"), source_seed(1235, "medical"));
}

}  // namespace
}  // namespace cpt::data
