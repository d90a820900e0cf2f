#include "cpt/merge/methods.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "cpt/common/vector_clones.h"
#include "cpt/common/error.h"
#include "cpt/common/strings.h"

namespace cpt::merge {

namespace {

constexpr int64_t kChunk = kMergeChunk;  // elements a worker takes at a time
// Elements each pass converts and combines at a time within a chunk: one
// block of every buffer a pass uses stays in the core's cache. With whole
// chunks (4 MB of fp32 per buffer) every loop of a pass streamed its
// buffers through memory, and converting the inputs was 30% of a TIES merge.
constexpr int64_t kBlock = 8192;

enum class Sparsify { kNone, kMagnitude, kRandom, kMagnitudeOutliers };
enum class Consensus { kNone, kSum, kCount };

struct TaskArithmeticKind {
  Consensus consensus;
  Sparsify sparsify;
};

TaskArithmeticKind kind_of(const std::string& method) {
  if (method == "task_arithmetic") return {Consensus::kNone, Sparsify::kNone};
  if (method == "ties") return {Consensus::kSum, Sparsify::kMagnitude};
  if (method == "dare_ties") return {Consensus::kSum, Sparsify::kRandom};
  if (method == "dare_linear") return {Consensus::kNone, Sparsify::kRandom};
  if (method == "breadcrumbs") return {Consensus::kNone, Sparsify::kMagnitudeOutliers};
  return {Consensus::kSum, Sparsify::kMagnitudeOutliers};  // breadcrumbs_ties
}

// Runs fn(scratch, chunk, offset, count) over every chunk of [0, numel) on
// `threads` threads. Per-chunk results go into per-chunk slots, so sums are
// added in chunk order and do not depend on the thread count.
struct Scratch {
  std::deque<std::vector<float>> buffers;  // a deque: growing it keeps references to earlier buffers valid
  std::vector<int64_t> counts;             // per-thread histogram
  std::vector<uint32_t> bits;              // a block's |x − base| bit patterns, and indices
  std::vector<float>& buffer(size_t i, int64_t size) {
    if (buffers.size() <= i) buffers.resize(i + 1);
    if (buffers[i].size() < static_cast<size_t>(size)) buffers[i].resize(static_cast<size_t>(size));
    return buffers[i];
  }
};

// Scratch buffers outlive a single pass: allocating and zero-filling
// fresh 4 MB buffers for every pass of every tensor cost more than the merge.
class ScratchPool {
 public:
  std::unique_ptr<Scratch> acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) return std::make_unique<Scratch>();
    auto scratch = std::move(free_.back());
    free_.pop_back();
    return scratch;
  }
  void release(std::unique_ptr<Scratch> scratch) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(scratch));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Scratch>> free_;
};

ScratchPool& scratch_pool() {
  static ScratchPool pool;
  return pool;
}

struct NoFinish {
  void operator()(Scratch&) const {}
};

// Runs worker(claim) on up to min(threads, count) threads, the caller's
// among them. Each call of claim() hands out the next index of [0, count),
// each once; at count or above none is left. The first exception stops the
// claims and is rethrown here.
template <class Worker>
void share_indices(int64_t count, int threads, Worker worker) {
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto claim = [&next] { return next++; };
  auto work = [&] {
    try {
      worker(claim);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = count;
    }
  };
  const int n = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, count)));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// `finish(scratch)` runs once per worker thread after its last chunk, for
// per-thread accumulators such as histograms.
template <class F, class Finish = NoFinish>
void for_chunks(int64_t numel, int threads, F fn, Finish finish = {}) {
  const int64_t chunks = (numel + kChunk - 1) / kChunk;
  share_indices(chunks, threads, [&](auto& claim) {
    std::unique_ptr<Scratch> scratch = scratch_pool().acquire();
    for (int64_t c; (c = claim()) < chunks;) {
      const int64_t offset = c * kChunk;
      fn(*scratch, c, offset, std::min(kChunk, numel - offset));
    }
    finish(*scratch);
    scratch_pool().release(std::move(scratch));
  });
}

// fn(i) for every i in [0, count), on up to `threads` threads: for the few
// large independent selections a pass ends with (one per input or cut),
// which on one thread left the other cores idle.
template <class F>
void for_each_index(size_t count, int threads, F fn) {
  const auto n = static_cast<int64_t>(count);
  share_indices(n, threads, [&](auto& claim) {
    for (int64_t i; (i = claim()) < n;) fn(static_cast<size_t>(i));
  });
}

double param(const MergeTask& task, const std::string& name) { return task.params.at(name); }

void linear(const MergeTask& task, const ChunkSink& sink, int threads) {
  double total = 0;
  for (const auto& in : task.inputs) total += in.params.at("weight");
  const bool normalize = param(task, "normalize") != 0;
  const float scale = normalize && std::fabs(total) > 0 ? static_cast<float>(1.0 / total) : 1.0f;
  for_chunks(task.numel, threads, [&](Scratch& s, int64_t, int64_t offset, int64_t count) {
    float* out = s.buffer(0, count).data();
    float* x = s.buffer(1, kBlock).data();
    for (int64_t block = 0; block < count; block += kBlock) {
      const int64_t len = std::min(kBlock, count - block);
      float* o = out + block;
      std::fill(o, o + len, 0.0f);
      for (const auto& in : task.inputs) {
        in.read(offset + block, len, x);
        const auto w = static_cast<float>(in.params.at("weight"));
        for (int64_t i = 0; i < len; ++i) o[i] += w * x[i];
      }
      for (int64_t i = 0; i < len; ++i) o[i] *= scale;
    }
    sink(offset, out, count);
  });
}

// aa += Σx², bb += Σy², ab += Σxy, in index order: one sum per chain
// here, as lanes made SLERP no faster (its passes wait on memory). Not
// inlined: inside the chunk's loop GCC kept the sums in memory (they live
// across the reads' calls), and the loop ran at half speed.
[[gnu::noinline]] void add_products(const float* x, const float* y, int64_t count, double& aa, double& bb, double& ab) {
  double sum_aa = aa, sum_bb = bb, sum_ab = ab;
  for (int64_t i = 0; i < count; ++i) {
    const double p = x[i], q = y[i];
    sum_aa += p * p;
    sum_bb += q * q;
    sum_ab += p * q;
  }
  aa = sum_aa;
  bb = sum_bb;
  ab = sum_ab;
}

void slerp(const MergeTask& task, const ChunkSink& sink, int threads) {
  const TensorInput& a = task.inputs[static_cast<size_t>(task.base)];
  const TensorInput& b = task.inputs[static_cast<size_t>(1 - task.base)];
  const double t = param(task, "t");
  const int64_t chunks = (task.numel + kChunk - 1) / kChunk;
  std::vector<double> aa(static_cast<size_t>(chunks)), bb(static_cast<size_t>(chunks)), ab(static_cast<size_t>(chunks));
  for_chunks(task.numel, threads, [&](Scratch& s, int64_t c, int64_t offset, int64_t count) {
    float* x = s.buffer(0, kBlock).data();
    float* y = s.buffer(1, kBlock).data();
    double sa = 0, sb = 0, sab = 0;
    for (int64_t block = 0; block < count; block += kBlock) {
      const int64_t len = std::min(kBlock, count - block);
      a.read(offset + block, len, x);
      b.read(offset + block, len, y);
      add_products(x, y, len, sa, sb, sab);
    }
    aa[static_cast<size_t>(c)] = sa;
    bb[static_cast<size_t>(c)] = sb;
    ab[static_cast<size_t>(c)] = sab;
  });
  double na = 0, nb = 0, dot = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    na += aa[static_cast<size_t>(c)];
    nb += bb[static_cast<size_t>(c)];
    dot += ab[static_cast<size_t>(c)];
  }
  na = std::sqrt(na);
  nb = std::sqrt(nb);
  // The copies are normalised only when their norm is above 1e-8, as mergekit does.
  dot /= (na > 1e-8 ? na : 1.0) * (nb > 1e-8 ? nb : 1.0);
  double s0, s1;
  if (std::fabs(dot) > 0.9995) {
    s0 = 1 - t;  // nearly parallel: plain interpolation
    s1 = t;
  } else {
    const double theta = std::acos(dot);
    const double sin_theta = std::sin(theta);
    s0 = std::sin((1 - t) * theta) / sin_theta;
    s1 = std::sin(t * theta) / sin_theta;
  }
  const auto f0 = static_cast<float>(s0), f1 = static_cast<float>(s1);
  for_chunks(task.numel, threads, [&](Scratch& s, int64_t, int64_t offset, int64_t count) {
    float* out = s.buffer(0, count).data();
    float* y = s.buffer(1, kBlock).data();
    for (int64_t block = 0; block < count; block += kBlock) {
      const int64_t len = std::min(kBlock, count - block);
      float* x = out + block;
      a.read(offset + block, len, x);
      b.read(offset + block, len, y);
      for (int64_t i = 0; i < len; ++i) x[i] = f0 * x[i] + f1 * y[i];
    }
    sink(offset, out, count);
  });
}

// Membership in the lowest r ranks of |delta| in ascending order: value <
// cut, or value == cut at an index in [first_equal, last_equal]. Equal values
// rank by index, lowest first (a prefix of the equal ones falls below the
// cut), or highest first (a suffix falls below) — see CutRequest.
struct RankCut {
  float value = std::numeric_limits<float>::infinity();
  int64_t first_equal = 0, last_equal = -1;
  bool below(float v, int64_t index) const {
    return v < value || (v == value && index >= first_equal && index <= last_equal);
  }
};

// Cuts at ascending ranks of |x − base|, for several inputs in the same
// passes, found exactly without sorting or a tensor-sized buffer:
// non-negative floats order like their bit patterns, so one histogram of the
// high 16 bits and one of the low 16 bits under the chosen high half give the
// value; an ordered pass runs only when ties straddle a cut.
struct CutRequest {
  size_t input;   // index into task.inputs
  int64_t rank;   // r: the cut lies below the element of ascending rank r
  RankCut* cut;
  // Equal values rank highest index first. mergekit's TIES pruning keeps the
  // first k of a descending argsort (stable: lower index first among equals),
  // so it drops the highest indices of a tie first; breadcrumbs cuts an
  // ascending sort, where the lowest indices rank first.
  bool ties_from_end = false;
};

// The distinct inputs the cut requests need, each read once per pass.
std::vector<size_t> inputs_of(const std::vector<CutRequest>& requests) {
  std::vector<size_t> inputs;
  for (const auto& q : requests) {
    if (std::find(inputs.begin(), inputs.end(), q.input) == inputs.end()) inputs.push_back(q.input);
  }
  return inputs;
}

// For every `stride`-th block of the chunk [offset, offset + count): reads
// the base into b, then each of `inputs` into x and calls
// fn(j, block, len) with j its index in `inputs` and block the offset in
// the chunk.
template <class F>
void for_input_blocks(const MergeTask& task, const std::vector<size_t>& inputs, Scratch& s, int64_t offset, int64_t count,
                      int64_t stride, float*& b, float*& x, F fn) {
  const TensorInput& base = task.inputs[static_cast<size_t>(task.base)];
  b = s.buffer(0, kBlock).data();
  x = s.buffer(1, kBlock).data();
  for (int64_t block = 0; block < count; block += kBlock * stride) {
    const int64_t len = std::min(kBlock, count - block);
    base.read(offset + block, len, b);
    for (size_t j = 0; j < inputs.size(); ++j) {
      task.inputs[inputs[j]].read(offset + block, len, x);
      fn(j, block, len);
    }
  }
}

// The bits of |x − b|: non-negative floats order like them.
inline uint32_t abs_delta_bits(float x, float b) {
  const float v = std::fabs(x - b);
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

// Finds most cuts in one pass over the tensor instead of two. A sample of
// its blocks brackets each cut's value between two bounds, with room for
// the sample's error; one pass then counts the values below the lower bound
// and gathers those between the bounds with their indices (a few percent of
// the tensor), and the cut is taken from them exactly as find_cuts' own
// passes would take it. Returns the requests whose rank fell outside their
// bracket (an unrepresentative sample), for those passes.
std::vector<CutRequest> find_cuts_from_sample(const MergeTask& task, const std::vector<CutRequest>& open, int threads) {
  const int64_t n = task.numel;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  // Every 64th block of a tensor of a chunk or more (two in every chunk),
  // else all of it. Sorting a larger sample (every 16th block) took longer,
  // on one core, than it saved in gathering fewer values.
  const int64_t every = n >= kChunk ? 64 : 1;
  const std::vector<size_t> inputs = inputs_of(open);
  std::vector<std::vector<std::vector<uint32_t>>> sampled(inputs.size(), std::vector<std::vector<uint32_t>>(static_cast<size_t>(chunks)));
  for_chunks(n, threads, [&](Scratch& s, int64_t c, int64_t offset, int64_t count) {
    float *b, *x;
    for_input_blocks(task, inputs, s, offset, count, every, b, x, [&](size_t j, int64_t, int64_t len) {
      auto& out = sampled[j][static_cast<size_t>(c)];
      for (int64_t i = 0; i < len; ++i) out.push_back(abs_delta_bits(x[i], b[i]));
    });
  });
  // Each cut's bracket [lower, upper]: the sample's values at its rank's
  // fraction p ± (0.005 + six standard errors of a sampled fraction).
  struct Bracket {
    uint32_t lower = 0, upper = 0;
  };
  std::vector<Bracket> brackets(open.size());
  for_each_index(inputs.size(), threads, [&](size_t j) {
    std::vector<uint32_t> values;
    for (auto& piece : sampled[j]) values.insert(values.end(), piece.begin(), piece.end());
    sampled[j].clear();
    const auto m = static_cast<double>(values.size());
    for (size_t q = 0; q < open.size(); ++q) {
      if (open[q].input != inputs[j]) continue;
      const double p = static_cast<double>(open[q].rank) / static_cast<double>(n);
      const double margin = 0.005 + 6 * std::sqrt(p * (1 - p) / m);
      auto value_at = [&](double fraction, uint32_t beyond) {
        if (fraction < 0 || fraction >= 1) return beyond;
        const auto at = values.begin() + static_cast<int64_t>(fraction * m);
        std::nth_element(values.begin(), at, values.end());
        return *at;
      };
      brackets[q] = {value_at(p - margin, 0), value_at(p + margin, std::numeric_limits<uint32_t>::max())};
    }
  });
  // The pass: per cut and chunk, the count below the bracket and the values
  // inside it with their offsets in the chunk (index order).
  struct Gathered {
    uint32_t bits, at;
  };
  std::vector<std::vector<int64_t>> below(open.size(), std::vector<int64_t>(static_cast<size_t>(chunks), 0));
  std::vector<std::vector<std::vector<Gathered>>> inside(open.size(),
                                                         std::vector<std::vector<Gathered>>(static_cast<size_t>(chunks)));
  for_chunks(n, threads, [&](Scratch& s, int64_t c, int64_t offset, int64_t count) {
    float *b, *x;
    s.bits.resize(static_cast<size_t>(2 * kBlock));
    uint32_t* u = s.bits.data();
    uint32_t* at = u + kBlock;
    for_input_blocks(task, inputs, s, offset, count, 1, b, x, [&](size_t j, int64_t block, int64_t len) {
      for (int64_t i = 0; i < len; ++i) u[i] = abs_delta_bits(x[i], b[i]);
      for (size_t q = 0; q < open.size(); ++q) {
        if (open[q].input != inputs[j]) continue;
        const uint32_t lower = brackets[q].lower, span = brackets[q].upper - brackets[q].lower;
        // Counted in a flat loop that vectorises; the values inside the
        // bracket (2-5% of them, scattered) are found by a branch-free
        // compaction of their indices, then gathered.
        uint32_t under = 0;
        for (int64_t i = 0; i < len; ++i) under += u[i] < lower;
        below[q][static_cast<size_t>(c)] += under;
        size_t found = 0;
        for (int64_t i = 0; i < len; ++i) {
          at[found] = static_cast<uint32_t>(i);
          found += u[i] - lower <= span;
        }
        auto& kept = inside[q][static_cast<size_t>(c)];
        for (size_t k = 0; k < found; ++k) kept.push_back({u[at[k]], static_cast<uint32_t>(block) + at[k]});
      }
    });
  });
  std::vector<char> resolved(open.size(), 0);
  for_each_index(open.size(), threads, [&](size_t q) {
    int64_t under = 0, in_bracket = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      under += below[q][static_cast<size_t>(c)];
      in_bracket += static_cast<int64_t>(inside[q][static_cast<size_t>(c)].size());
    }
    const int64_t rank = open[q].rank - under;  // among the bracket's values
    if (rank < 0 || rank >= in_bracket) return;
    std::vector<uint32_t> values;
    values.reserve(static_cast<size_t>(in_bracket));
    for (const auto& piece : inside[q]) {
      for (const Gathered& g : piece) values.push_back(g.bits);
    }
    std::nth_element(values.begin(), values.begin() + rank, values.end());
    const uint32_t value = values[static_cast<size_t>(rank)];
    int64_t needed = rank;  // equal values that rank below the cut, in index order
    for (const uint32_t v : values) needed -= v < value;
    RankCut& cut = *open[q].cut;
    std::memcpy(&cut.value, &value, 4);
    const bool from_end = open[q].ties_from_end;
    cut.first_equal = from_end ? std::numeric_limits<int64_t>::max() : 0;
    cut.last_equal = from_end ? std::numeric_limits<int64_t>::max() : -1;
    for (int64_t k = 0; k < chunks && needed > 0; ++k) {
      const int64_t c = from_end ? chunks - 1 - k : k;
      const auto& piece = inside[q][static_cast<size_t>(c)];
      for (size_t e = 0; e < piece.size() && needed > 0; ++e) {
        const Gathered& g = piece[from_end ? piece.size() - 1 - e : e];
        if (g.bits != value) continue;
        (from_end ? cut.first_equal : cut.last_equal) = c * kChunk + g.at;
        --needed;
      }
    }
    resolved[q] = 1;
  });
  std::vector<CutRequest> unresolved;
  for (size_t q = 0; q < open.size(); ++q) {
    if (resolved[q] == 0) unresolved.push_back(open[q]);
  }
  return unresolved;
}

void find_cuts(const MergeTask& task, std::vector<CutRequest> requests, int threads) {
  std::vector<CutRequest> open;
  for (const auto& q : requests) {
    if (q.rank >= task.numel) {
      *q.cut = RankCut{};  // everything is below
    } else if (q.rank <= 0) {
      q.cut->value = -std::numeric_limits<float>::infinity();
    } else {
      open.push_back(q);
    }
  }
  if (open.empty()) return;
  open = find_cuts_from_sample(task, open, threads);
  if (open.empty()) return;
  const std::vector<size_t> inputs = inputs_of(open);
  const TensorInput& base = task.inputs[static_cast<size_t>(task.base)];
  const size_t buckets = 65536;
  // Pass 1 has a histogram per input, pass 2 one per cut.
  std::vector<int64_t> histogram(std::max(inputs.size(), open.size()) * buckets);
  std::vector<uint32_t> high(open.size());
  std::vector<int64_t> less(open.size(), 0);
  std::mutex merge_mutex;
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(histogram.begin(), histogram.end(), 0);
    for_chunks(
        task.numel, threads,
        [&](Scratch& s, int64_t, int64_t offset, int64_t count) {
          if (s.counts.empty()) s.counts.assign(histogram.size(), 0);
          float *b, *x;
          for_input_blocks(task, inputs, s, offset, count, 1, b, x, [&](size_t j, int64_t, int64_t len) {
            if (pass == 0) {
              int64_t* h = s.counts.data() + j * buckets;
              for (int64_t i = 0; i < len; ++i) ++h[abs_delta_bits(x[i], b[i]) >> 16];
              return;
            }
            for (size_t q = 0; q < open.size(); ++q) {
              if (open[q].input != inputs[j]) continue;
              // Only the high half this cut fell in is resolved further.
              int64_t* h = s.counts.data() + q * buckets;
              const uint32_t want = high[q];
              for (int64_t i = 0; i < len; ++i) {
                const uint32_t u = abs_delta_bits(x[i], b[i]);
                if ((u >> 16) == want) ++h[u & 0xFFFFu];
              }
            }
          });
        },
        [&](Scratch& s) {
          if (s.counts.empty()) return;
          std::lock_guard<std::mutex> lock(merge_mutex);
          for (size_t i = 0; i < histogram.size(); ++i) histogram[i] += s.counts[i];
          s.counts.clear();
        });
    for (size_t q = 0; q < open.size(); ++q) {
      const size_t j = static_cast<size_t>(std::find(inputs.begin(), inputs.end(), open[q].input) - inputs.begin());
      const int64_t* h = histogram.data() + (pass == 0 ? j : q) * buckets;
      uint32_t bucket = 0;
      while (less[q] + h[bucket] <= open[q].rank) less[q] += h[bucket++];
      if (pass == 0) {
        high[q] = bucket;
        continue;
      }
      RankCut& cut = *open[q].cut;
      const uint32_t u = (high[q] << 16) | bucket;
      std::memcpy(&cut.value, &u, 4);
      int64_t needed = open[q].rank - less[q];  // equal values that still rank below, in index order
      const bool from_end = open[q].ties_from_end;
      cut.first_equal = from_end ? std::numeric_limits<int64_t>::max() : 0;
      cut.last_equal = from_end ? std::numeric_limits<int64_t>::max() : -1;
      if (needed == h[bucket]) {
        cut.first_equal = 0;
        cut.last_equal = std::numeric_limits<int64_t>::max();
        continue;
      }
      // Ties straddle the cut: count the equal values of every chunk in
      // parallel, then walk only the chunk where the needed ones run out.
      const TensorInput& in = task.inputs[open[q].input];
      const int64_t chunks = (task.numel + kChunk - 1) / kChunk;
      std::vector<int64_t> equal_in_chunk(static_cast<size_t>(chunks), 0);
      const float value = cut.value;
      for_chunks(task.numel, threads, [&](Scratch& s, int64_t c, int64_t offset, int64_t count) {
        float* x = s.buffer(0, kBlock).data();
        float* b = s.buffer(1, kBlock).data();
        int64_t equal = 0;
        for (int64_t block = 0; block < count; block += kBlock) {
          const int64_t len = std::min(kBlock, count - block);
          in.read(offset + block, len, x);
          base.read(offset + block, len, b);
          int64_t block_equal = 0;  // a local: see slerp
          for (int64_t i = 0; i < len; ++i) block_equal += std::fabs(x[i] - b[i]) == value;
          equal += block_equal;
        }
        equal_in_chunk[static_cast<size_t>(c)] = equal;
      });
      int64_t chunk = from_end ? chunks - 1 : 0;
      while (needed > equal_in_chunk[static_cast<size_t>(chunk)]) {
        needed -= equal_in_chunk[static_cast<size_t>(chunk)];
        chunk += from_end ? -1 : 1;
      }
      const int64_t offset = chunk * kChunk;
      const int64_t count = std::min(kChunk, task.numel - offset);
      std::vector<float> x(static_cast<size_t>(count)), b(static_cast<size_t>(count));
      in.read(offset, count, x.data());
      base.read(offset, count, b.data());
      for (int64_t k = 0; k < count && needed > 0; ++k) {
        const int64_t i = from_end ? count - 1 - k : k;
        if (std::fabs(x[static_cast<size_t>(i)] - b[static_cast<size_t>(i)]) == value) {
          (from_end ? cut.first_equal : cut.last_equal) = offset + i;
          --needed;
        }
      }
    }
  }
}

// Counter-based randomness: element i of input m of this tensor always gets
// the same draw, whatever the chunking or thread count.
// 53 random bits for element `index` of a stream (splitmix64's finaliser).
inline uint64_t random_bits(uint64_t stream, int64_t index) {
  uint64_t z = stream + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z >> 11;
}

double uniform(uint64_t stream, int64_t index) { return static_cast<double>(random_bits(stream, index)) * 0x1.0p-53; }

// uniform() < density, compared as integers: bits·2⁻⁵³ < density exactly
// when bits < ceil(density·2⁵³) (both sides exact in a double).
uint64_t random_keep_threshold(double density) { return static_cast<uint64_t>(std::ceil(std::ldexp(density, 53))); }

// DARE's rescale sums are kept in kLanes interleaved partial sums (element
// i in lane i % kLanes) and the lanes added in order at the end of each
// call: one double sum in index order is a chain of dependent additions
// that ran at one element per add latency, and that loop was a fifth of a
// DARE merge. The order is fixed by the element indices alone (every block
// starts at a multiple of kLanes), so results do not depend on threads.
constexpr int64_t kLanes = 8;

// The loops below are cloned for AVX2 and AVX-512 (x86-64-v3, -v4) and
// picked at load time (GCC; the fuzz build's clang takes the portable
// loop). The lanes add in the same order in every clone, and the products
// by the 0/1 mask are exact, so every clone gives the same sums.

// mask[i] = 1 where DARE keeps element offset+i, else 0. The hash's 64-bit
// multiplies vectorise only with AVX2 or AVX-512, hence the clones.
CPT_VECTOR_CLONES void random_keep_mask(uint64_t stream, int64_t offset, size_t count, uint64_t threshold, float* mask) {
  for (size_t i = 0; i < count; ++i) {
    mask[i] = random_bits(stream, offset + static_cast<int64_t>(i)) < threshold ? 1.0f : 0.0f;
  }
}

uint64_t stream_for(const MergeTask& task, size_t input) {
  uint64_t h = 1469598103934665603ULL ^ task.seed;
  for (unsigned char c : task.name) h = (h ^ c) * 1099511628211ULL;
  return h ^ (0xD1B54A32D192ED03ULL * (input + 1));
}

// sum += Σ|x − b|, kept += Σ|x − b|·mask (mask 0 or 1), in kLanes lanes.
// A product, not a branch on the mask: the draws are random, and a branch
// was mispredicted at every other element. Not inlined, so that the sums
// stay in registers.
[[gnu::noinline]] CPT_VECTOR_CLONES void add_abs_deltas(const float* x, const float* b, const float* mask,
                                                        int64_t count, double& sum, double& kept) {
  double all[kLanes] = {}, masked[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) {
      const float d = std::fabs(x[i + k] - b[i + k]);
      all[k] += d;
      masked[k] += d * mask[i + k];
    }
  }
  for (int64_t k = 0; i + k < count; ++k) {
    const float d = std::fabs(x[i + k] - b[i + k]);
    all[k] += d;
    masked[k] += d * mask[i + k];
  }
  for (int64_t k = 0; k < kLanes; ++k) {
    sum += all[k];
    kept += masked[k];
  }
}

// d[i] = factor·(d[i] − b[i]) where |d[i] − b[i]| lies between the cuts,
// else 0. Multiplying by the 0/1 mask instead of branching lets it vectorise.
template <bool LowerInclusive, bool UpperInclusive>
void keep_between(float* d, const float* b, size_t begin, size_t end, float lo, float hi, float factor) {
  for (size_t i = begin; i < end; ++i) {
    const float delta = d[i] - b[i];
    const float a = std::fabs(delta);
    const bool above = LowerInclusive ? a >= lo : a > lo;
    const bool below = UpperInclusive ? a <= hi : a < hi;
    d[i] = factor * delta * static_cast<float>(above & below);
  }
}

struct DeltaPlan {
  size_t input = 0;
  float weight = 0;
  Sparsify sparsify = Sparsify::kNone;
  double density = 1;
  RankCut lower, upper;  // keep when not below `lower` and below `upper`
  int64_t lower_rank = 0, upper_rank = 0;
  uint64_t stream = 0;
  float scale = 1;       // rescale factor
  bool keep(float abs_delta, int64_t index) const {
    switch (sparsify) {
      case Sparsify::kNone: return true;
      case Sparsify::kRandom: return uniform(stream, index) < density;
      case Sparsify::kMagnitude:
      case Sparsify::kMagnitudeOutliers: return !lower.below(abs_delta, index) && upper.below(abs_delta, index);
    }
    return true;
  }
};

void task_arithmetic(const MethodInfo& method, const MergeTask& task, const ChunkSink& sink, int threads) {
  TaskArithmeticKind kind = kind_of(method.name);
  if (auto it = task.texts.find("consensus_method"); it != task.texts.end() && kind.consensus != Consensus::kNone) {
    kind.consensus = it->second == "count" ? Consensus::kCount : Consensus::kSum;
  }
  const bool normalize = param(task, "normalize") != 0;
  const bool rescale = param(task, "rescale") != 0;
  const auto lambda = static_cast<float>(param(task, "lambda"));
  const TensorInput& base = task.inputs[static_cast<size_t>(task.base)];
  const int64_t n = task.numel;

  std::vector<DeltaPlan> plans;
  for (size_t m = 0; m < task.inputs.size(); ++m) {
    if (static_cast<int>(m) == task.base) continue;
    DeltaPlan p;
    p.input = m;
    p.weight = static_cast<float>(task.inputs[m].params.at("weight"));
    p.density = task.inputs[m].params.at("density");
    p.sparsify = p.density >= 1 ? Sparsify::kNone : kind.sparsify;
    p.stream = stream_for(task, m);
    if (p.sparsify == Sparsify::kMagnitude || p.sparsify == Sparsify::kMagnitudeOutliers) {
      int64_t keep = static_cast<int64_t>(p.density * static_cast<double>(n));
      if (keep <= 0) {
        throw InputError(fmt::format("density {} keeps no element of '{}' ({} elements); raise it", p.density,
                                     task.name, n));
      }
      int64_t top = 0, bottom = n - keep;
      if (p.sparsify == Sparsify::kMagnitudeOutliers) {
        top = static_cast<int64_t>(task.inputs[m].params.at("gamma") * static_cast<double>(n));
        bottom = n - keep - top;
        if (bottom < 0) {  // not enough room: drop fewer of the largest
          top = n - keep;
          bottom = 0;
        }
      }
      p.lower_rank = bottom;
      p.upper_rank = n - top;
    }
    plans.push_back(p);
  }
  std::vector<CutRequest> requests;
  for (auto& p : plans) {
    if (p.sparsify != Sparsify::kMagnitude && p.sparsify != Sparsify::kMagnitudeOutliers) continue;
    const bool ties_from_end = p.sparsify == Sparsify::kMagnitude;
    requests.push_back({p.input, p.lower_rank, &p.lower, ties_from_end});
    requests.push_back({p.input, p.upper_rank, &p.upper, ties_from_end});
  }
  find_cuts(task, requests, threads);

  if (rescale) {
    // Keep each delta's L1 norm, as current mergekit does (not 1/density):
    // the norms before and after the drop, for every sparse delta in one
    // pass that reads the base once (per chunk, in index order).
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<size_t> sparse;
    for (size_t k = 0; k < plans.size(); ++k) {
      if (plans[k].sparsify != Sparsify::kNone) sparse.push_back(k);
    }
    std::vector<std::vector<double>> before(sparse.size(), std::vector<double>(static_cast<size_t>(chunks)));
    std::vector<std::vector<double>> after = before;
    if (!sparse.empty()) {
      for_chunks(n, threads, [&](Scratch& s, int64_t c, int64_t offset, int64_t count) {
        float* x = s.buffer(0, kBlock).data();
        float* b = s.buffer(1, kBlock).data();
        float* mask = s.buffer(2, kBlock).data();
        std::vector<double> sum(sparse.size(), 0.0), kept(sparse.size(), 0.0);
        for (int64_t block = 0; block < count; block += kBlock) {
          const int64_t len = std::min(kBlock, count - block);
          base.read(offset + block, len, b);
          for (size_t j = 0; j < sparse.size(); ++j) {
            const DeltaPlan& p = plans[sparse[j]];
            task.inputs[p.input].read(offset + block, len, x);
            double block_sum = sum[j], block_kept = kept[j];  // locals: see slerp
            if (p.sparsify == Sparsify::kRandom) {
              random_keep_mask(p.stream, offset + block, static_cast<size_t>(len), random_keep_threshold(p.density), mask);
              add_abs_deltas(x, b, mask, len, block_sum, block_kept);
            } else {
              for (int64_t i = 0; i < len; ++i) {
                const float d = std::fabs(x[i] - b[i]);
                block_sum += d;
                if (p.keep(d, offset + block + i)) block_kept += d;
              }
            }
            sum[j] = block_sum;
            kept[j] = block_kept;
          }
        }
        for (size_t j = 0; j < sparse.size(); ++j) {
          before[j][static_cast<size_t>(c)] = sum[j];
          after[j][static_cast<size_t>(c)] = kept[j];
        }
      });
    }
    for (size_t j = 0; j < sparse.size(); ++j) {
      double sum = 0, kept = 0;
      for (int64_t c = 0; c < chunks; ++c) {
        sum += before[j][static_cast<size_t>(c)];
        kept += after[j][static_cast<size_t>(c)];
      }
      DeltaPlan& p = plans[sparse[j]];
      if (sum >= 1e-8 && kept >= 1e-8) p.scale = static_cast<float>(sum / kept);
    }
  }

  // The final pass, written as flat loops over each block so they vectorise.
  const bool consensus = kind.consensus != Consensus::kNone;
  float total_weight = 0;
  for (const auto& p : plans) total_weight += p.weight;
  if (!consensus && std::fabs(total_weight) < 1e-8f) total_weight = 1;
  for_chunks(n, threads, [&](Scratch& s, int64_t, int64_t offset, int64_t count) {
    float* out = s.buffer(0, count).data();
    float* b = s.buffer(1, kBlock).data();
    float* divisor = s.buffer(2, kBlock).data();
    float* majority = s.buffer(3, kBlock).data();
    float* kept = s.buffer(4, kBlock).data();
    std::vector<float*> weighted;
    for (size_t k = 0; k < plans.size(); ++k) weighted.push_back(s.buffer(5 + k, kBlock).data());
    // Equal values count as below a cut on one side of one index of the
    // chunk (a prefix or a suffix of it). In index ranges that do not
    // contain that index, each comparison is either inclusive or exclusive
    // throughout, so the loops stay branch-free and vectorise even when ties
    // are common (bf16 deltas). Per plan: the chunk's ranges [bounds[r],
    // bounds[r + 1]) and whether each keeps equal values at the lower and
    // upper cut.
    struct Ranges {
      size_t bounds[4] = {0, 0, 0, 0};
      bool lo_inclusive[3] = {}, hi_inclusive[3] = {};
    };
    std::vector<Ranges> ranges(plans.size());
    for (size_t k = 0; k < plans.size(); ++k) {
      const DeltaPlan& p = plans[k];
      if (p.sparsify != Sparsify::kMagnitude && p.sparsify != Sparsify::kMagnitudeOutliers) continue;
      // Where the chunk's equal values switch sides of the cut, and whether
      // those before that index are below it.
      auto split = [&](const RankCut& cut) -> std::pair<size_t, bool> {
        if (cut.first_equal <= offset) {  // a prefix of the chunk, maybe empty or all of it
          if (cut.last_equal < offset) return {0, true};
          return {static_cast<size_t>(std::min<int64_t>(cut.last_equal - offset + 1, count)), true};
        }
        return {static_cast<size_t>(std::min<int64_t>(cut.first_equal - offset, count)), false};
      };
      const auto [lo_split, lo_below_before] = split(p.lower);
      const auto [hi_split, hi_below_before] = split(p.upper);
      Ranges& r = ranges[k];
      r.bounds[1] = std::min(lo_split, hi_split);
      r.bounds[2] = std::max(lo_split, hi_split);
      r.bounds[3] = static_cast<size_t>(count);
      for (int i = 0; i < 3; ++i) {
        // Equal values kept at the lower cut: those not below it; at the
        // upper cut: those below it.
        r.lo_inclusive[i] = r.bounds[i] < lo_split ? !lo_below_before : lo_below_before;
        r.hi_inclusive[i] = r.bounds[i] < hi_split ? hi_below_before : !hi_below_before;
      }
    }
    for (int64_t start = 0; start < count; start += kBlock) {
      const auto block = static_cast<size_t>(start);
      const auto size = static_cast<size_t>(std::min(kBlock, count - start));
      float* mixed = out + block;
      base.read(offset + start, static_cast<int64_t>(size), b);
      for (size_t k = 0; k < plans.size(); ++k) {
        const DeltaPlan& p = plans[k];
        float* d = weighted[k];
        task.inputs[p.input].read(offset + start, static_cast<int64_t>(size), d);
        const float factor = p.weight * p.scale;
        switch (p.sparsify) {
          case Sparsify::kNone:
            for (size_t i = 0; i < size; ++i) d[i] = factor * (d[i] - b[i]);
            break;
          case Sparsify::kRandom:
            random_keep_mask(p.stream, offset + start, size, random_keep_threshold(p.density), kept);
            // The value is computed for every element and then selected,
            // so that the loop vectorises (as a branch on the random draws
            // it was mispredicted at every other element).
            for (size_t i = 0; i < size; ++i) {
              const float value = factor * (d[i] - b[i]);
              d[i] = kept[i] != 0.0f ? value : 0.0f;
            }
            break;
          default: {
            const Ranges& r = ranges[k];
            const float lo = p.lower.value, hi = p.upper.value;
            for (int i = 0; i < 3; ++i) {
              // This range's part of the block, in the block's indices.
              const size_t begin = std::max(r.bounds[i], block) - block;
              const size_t end = std::min(r.bounds[i + 1], block + size);
              if (block + begin >= end) continue;
              const size_t stop = end - block;
              if (r.lo_inclusive[i] && r.hi_inclusive[i]) {
                keep_between<true, true>(d, b, begin, stop, lo, hi, factor);
              } else if (r.lo_inclusive[i]) {
                keep_between<true, false>(d, b, begin, stop, lo, hi, factor);
              } else if (r.hi_inclusive[i]) {
                keep_between<false, true>(d, b, begin, stop, lo, hi, factor);
              } else {
                keep_between<false, false>(d, b, begin, stop, lo, hi, factor);
              }
            }
          }
        }
      }
      std::fill(mixed, mixed + size, 0.0f);
      if (consensus) std::fill(divisor, divisor + size, 0.0f);
      if (kind.consensus == Consensus::kSum) {
        for (const float* d : weighted) {
          for (size_t i = 0; i < size; ++i) mixed[i] += d[i];
        }
        for (size_t i = 0; i < size; ++i) majority[i] = 2.0f * static_cast<float>(mixed[i] >= 0) - 1.0f;
        std::fill(mixed, mixed + size, 0.0f);
      } else if (kind.consensus == Consensus::kCount) {
        for (const float* d : weighted) {
          for (size_t i = 0; i < size; ++i) mixed[i] += static_cast<float>(d[i] > 0) - static_cast<float>(d[i] < 0);
        }
        for (size_t i = 0; i < size; ++i) majority[i] = 2.0f * static_cast<float>(mixed[i] >= 0) - 1.0f;
        std::fill(mixed, mixed + size, 0.0f);
      }
      for (size_t k = 0; k < weighted.size(); ++k) {
        const float* d = weighted[k];
        const float w = plans[k].weight;
        if (consensus) {
          for (size_t i = 0; i < size; ++i) {
            // A zero has no sign and never agrees with the elected one.
            const auto agrees = static_cast<float>((d[i] * majority[i]) > 0.0f);
            mixed[i] += d[i] * agrees;
            divisor[i] += w * agrees;
          }
        } else {
          for (size_t i = 0; i < size; ++i) mixed[i] += d[i];
        }
      }
      if (normalize && consensus) {
        for (size_t i = 0; i < size; ++i) {
          const float div = divisor[i] + static_cast<float>(divisor[i] == 0);  // 0 → 1
          mixed[i] = b[i] + (mixed[i] / div) * lambda;
        }
      } else {
        const float scale = (normalize ? 1.0f / total_weight : 1.0f) * lambda;
        for (size_t i = 0; i < size; ++i) mixed[i] = b[i] + mixed[i] * scale;
      }
    }
    sink(offset, out, count);
  });
}

void model_stock(const MergeTask& task, const ChunkSink& sink, int threads) {
  std::vector<size_t> others;
  for (size_t m = 0; m < task.inputs.size(); ++m) {
    if (static_cast<int>(m) != task.base) others.push_back(m);
  }
  const size_t k = others.size();
  const TensorInput& base = task.inputs[static_cast<size_t>(task.base)];
  const int64_t chunks = (task.numel + kChunk - 1) / kChunk;
  // Per chunk: the Gram matrix of the offsets w_i − w_0.
  std::vector<std::vector<double>> grams(static_cast<size_t>(chunks), std::vector<double>(k * k, 0.0));
  for_chunks(task.numel, threads, [&](Scratch& s, int64_t c, int64_t offset, int64_t count) {
    auto& b = s.buffer(0, count);
    base.read(offset, count, b.data());
    for (size_t i = 0; i < k; ++i) {
      auto& d = s.buffer(1 + i, count);
      task.inputs[others[i]].read(offset, count, d.data());
      for (int64_t e = 0; e < count; ++e) d[static_cast<size_t>(e)] -= b[static_cast<size_t>(e)];
    }
    auto& gram = grams[static_cast<size_t>(c)];
    for (size_t i = 0; i < k; ++i) {
      for (size_t j = i; j < k; ++j) {
        const auto& x = s.buffers[1 + i];
        const auto& y = s.buffers[1 + j];
        double dot = 0;
        for (int64_t e = 0; e < count; ++e) dot += static_cast<double>(x[static_cast<size_t>(e)]) * y[static_cast<size_t>(e)];
        gram[i * k + j] += dot;
      }
    }
  });
  std::vector<double> gram(k * k, 0.0);
  for (const auto& g : grams) {
    for (size_t i = 0; i < k * k; ++i) gram[i] += g[i];
  }
  double cos_sum = 0;
  size_t pairs = 0;
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = i + 1; j < k; ++j) {
      const double norms = std::sqrt(gram[i * k + i]) * std::sqrt(gram[j * k + j]);
      cos_sum += gram[i * k + j] / std::max(norms, 1e-8);
      ++pairs;
    }
  }
  const double cos = cos_sum / static_cast<double>(pairs);
  const double count = static_cast<double>(k);
  const double t = count * cos / (1 + (count - 1) * cos);
  const auto fmean = static_cast<float>(t / count), fbase = static_cast<float>(1 - t);
  for_chunks(task.numel, threads, [&](Scratch& s, int64_t, int64_t offset, int64_t count_here) {
    auto& b = s.buffer(0, count_here);
    auto& out = s.buffer(1, count_here);
    auto& x = s.buffer(2, count_here);
    base.read(offset, count_here, b.data());
    std::fill(out.begin(), out.begin() + count_here, 0.0f);
    for (size_t i = 0; i < k; ++i) {
      task.inputs[others[i]].read(offset, count_here, x.data());
      for (int64_t e = 0; e < count_here; ++e) out[static_cast<size_t>(e)] += x[static_cast<size_t>(e)];
    }
    for (int64_t e = 0; e < count_here; ++e) {
      out[static_cast<size_t>(e)] = fmean * out[static_cast<size_t>(e)] + fbase * b[static_cast<size_t>(e)];
    }
    sink(offset, out.data(), count_here);
  });
}

}  // namespace

const std::vector<MethodInfo>& methods() {
  auto task_arithmetic_info = [](const char* name, bool normalize, bool rescale, bool gamma) {
    MethodInfo m;
    m.name = name;
    m.needs_base = true;
    m.min_models = 2;
    m.global_params = {{"normalize", normalize ? 1.0 : 0.0}, {"rescale", rescale ? 1.0 : 0.0}, {"lambda", 1.0},
                       {"int8_mask", 0.0}};
    m.tensor_params = {{"weight", std::nullopt}, {"density", 1.0}};
    if (gamma) m.tensor_params.push_back({"gamma", 0.01});
    m.text_params = {"consensus_method"};
    return m;
  };
  static const std::vector<MethodInfo> table = [&] {
    std::vector<MethodInfo> t;
    MethodInfo linear_info;
    linear_info.name = "linear";
    linear_info.global_params = {{"normalize", 1.0}};
    linear_info.tensor_params = {{"weight", std::nullopt}};
    t.push_back(linear_info);
    MethodInfo slerp_info;
    slerp_info.name = "slerp";
    slerp_info.needs_base = true;
    slerp_info.min_models = 2;
    slerp_info.max_models = 2;
    slerp_info.global_params = {{"t", std::nullopt}};
    t.push_back(slerp_info);
    t.push_back(task_arithmetic_info("task_arithmetic", false, false, false));
    t.push_back(task_arithmetic_info("ties", true, false, false));
    t.push_back(task_arithmetic_info("dare_ties", false, true, false));
    t.push_back(task_arithmetic_info("dare_linear", false, true, false));
    t.push_back(task_arithmetic_info("breadcrumbs", false, false, true));
    t.push_back(task_arithmetic_info("breadcrumbs_ties", false, false, true));
    MethodInfo stock;
    stock.name = "model_stock";
    stock.needs_base = true;
    stock.min_models = 3;
    t.push_back(stock);
    return t;
  }();
  return table;
}

const MethodInfo& find_method(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& m : methods()) {
    if (m.name == name) return m;
    names.push_back(m.name);
  }
  std::string message = fmt::format("merge_method '{}' is not supported; supported: {}", name, join(names, ", "));
  if (auto guess = closest_match(name, names)) message += fmt::format(" (did you mean '{}'?)", *guess);
  throw InputError(message);
}

void run_merge(const MethodInfo& method, const MergeTask& task, const ChunkSink& sink, int threads) {
  if (method.name == "linear") return linear(task, sink, threads);
  if (method.name == "slerp") return slerp(task, sink, threads);
  if (method.name == "model_stock") return model_stock(task, sink, threads);
  task_arithmetic(method, task, sink, threads);
}

}  // namespace cpt::merge
