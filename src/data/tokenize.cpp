#include "cpt/data/tokenize.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <map>
#include <mutex>
#include <thread>

#include "cpt/common/bounded_queue.h"
#include "cpt/common/error.h"
#include "cpt/data/text_input.h"
#include "cpt/data/tokenizer.h"

namespace fs = std::filesystem;

namespace cpt::data {

namespace {

constexpr size_t kChunkBytes = 256 << 10;
constexpr size_t kChunkRecords = 1024;

// Records travel in one buffer per chunk, and tokens come back in one
// vector per chunk: per-document allocations cost more than the JSON parse.
struct Chunk {
  int64_t sequence = 0;  // position in input order
  size_t file = 0;
  std::string data;           // the records, back to back
  std::vector<size_t> ends;   // end offset of each record in data
  std::vector<int64_t> lines;
  uint64_t bytes_through = 0;  // input bytes read up to the end of this chunk
};

struct Encoded {
  size_t file = 0;
  std::vector<int32_t> tokens;     // every document's tokens, back to back
  std::vector<size_t> ends;        // end offset of each document in tokens
  std::vector<std::string> bad;    // "line N: reason", in order
  uint64_t bytes_through = 0;
};

// Encoded chunks wait here until every chunk before them is written.
class Reorder {
 public:
  explicit Reorder(size_t capacity) : capacity_(capacity) {}

  void put(int64_t sequence, Encoded encoded) {
    std::unique_lock<std::mutex> lock(mutex_);
    room_.wait(lock, [&] { return stopped_ || sequence < next_ + static_cast<int64_t>(capacity_); });
    ready_.emplace(sequence, std::move(encoded));
    arrived_.notify_all();
  }

  // Empty when stopped, or when `sequence` will never come (end of input).
  bool take(int64_t sequence, Encoded& out, const std::function<bool()>& input_done_before) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      auto it = ready_.find(sequence);
      if (it != ready_.end()) {
        out = std::move(it->second);
        ready_.erase(it);
        next_ = sequence + 1;
        room_.notify_all();
        return true;
      }
      if (stopped_ || input_done_before()) return false;
      arrived_.wait_for(lock, std::chrono::milliseconds(200));
    }
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    room_.notify_all();
    arrived_.notify_all();
  }

  void wake() { arrived_.notify_all(); }

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable room_, arrived_;
  std::map<int64_t, Encoded> ready_;
  int64_t next_ = 0;
  bool stopped_ = false;
};

}  // namespace

TokenizeReport tokenize(const TokenizeOptions& options,
                        const std::function<void(const TokenizeProgress&)>& on_progress) {
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tokenizer(options.tokenizer);
  bool add_bos = options.add_bos;
  if (add_bos && tokenizer.bos_id() < 0) {
    if (!tokenizer.is_bpe()) throw InputError(fmt::format("tokenizer '{}' has no BOS token; pass --no-bos", options.tokenizer));
    // A tokenizer.json whose config names no BOS (Qwen2's): its documents
    // start without one, as HF encodes them.
    spdlog::info("{} names no BOS token: documents start without one, as HF tokenizers encodes them", tokenizer.path());
    add_bos = false;
  }
  if (options.add_eos && tokenizer.eos_id() < 0) {
    throw InputError(fmt::format("tokenizer '{}' has no EOS token; pass --no-eos", options.tokenizer));
  }
  if (options.inputs.empty()) throw InputError("tokenize needs at least one --input");
  std::vector<InputFile> files;
  TokenizeReport report;
  report.dtype = dtype_for_vocab(tokenizer.vocab_size());
  uint64_t bytes_total = 0;
  for (const auto& path : options.inputs) {
    files.push_back(classify_input(path));
    std::error_code error;
    const auto size = fs::file_size(path, error);
    if (error) throw InputError(fmt::format("cannot read input '{}': {}", path, error.message()));
    bytes_total += size;
    report.files.push_back(FileReport{path, 0, 0, "", {}});
  }
  const fs::path out_dir = fs::path(options.output_prefix).parent_path();
  if (!out_dir.empty() && !fs::is_directory(out_dir)) {
    throw InputError(fmt::format("--output-prefix '{}': directory '{}' does not exist", options.output_prefix,
                                 out_dir.string()));
  }

  const int workers =
      options.workers > 0 ? options.workers : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  BoundedQueue<Chunk> work(static_cast<size_t>(workers) * 2);
  Reorder reorder(static_cast<size_t>(workers) * 4);
  std::atomic<bool> failed{false};
  std::atomic<int64_t> chunks_read{-1};  // total once the reader is done
  std::exception_ptr error;
  std::mutex error_mutex;
  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = e;
    failed = true;
    work.close();
    reorder.stop();
  };

  std::thread reader([&] {
    try {
      int64_t sequence = 0;
      uint64_t finished_files_bytes = 0;
      for (size_t f = 0; f < files.size() && !failed; ++f) {
        RecordReader records(files[f]);
        Chunk chunk;
        chunk.file = f;
        std::string record;
        int64_t line = 0;
        auto flush = [&] {
          chunk.sequence = sequence++;
          chunk.bytes_through = finished_files_bytes + records.bytes_consumed();
          work.push(std::move(chunk));
          chunk = Chunk{};
          chunk.file = f;
          chunk.data.reserve(kChunkBytes + (kChunkBytes >> 2));
        };
        while (!failed && records.next(record, line)) {
          chunk.data += record;
          chunk.ends.push_back(chunk.data.size());
          chunk.lines.push_back(line);
          if (chunk.data.size() >= kChunkBytes || chunk.ends.size() >= kChunkRecords) flush();
        }
        finished_files_bytes += fs::file_size(files[f].path);
        if (!chunk.ends.empty()) {
          chunk.sequence = sequence++;
          chunk.bytes_through = finished_files_bytes;
          work.push(std::move(chunk));
        }
      }
      chunks_read = sequence;
      work.close();
      reorder.wake();
    } catch (...) {
      fail(std::current_exception());
    }
  });

  std::vector<std::thread> encoders;
  for (int w = 0; w < workers; ++w) {
    encoders.emplace_back([&] {
      try {
        std::vector<int> ids;
        std::string text, reason;
        while (auto chunk = work.pop()) {
          Encoded encoded;
          encoded.file = chunk->file;
          encoded.bytes_through = chunk->bytes_through;
          encoded.tokens.reserve(chunk->data.size() / 3);
          const InputFile& file = files[chunk->file];
          size_t begin = 0;
          for (size_t r = 0; r < chunk->ends.size(); ++r) {
            const std::string_view record(chunk->data.data() + begin, chunk->ends[r] - begin);
            begin = chunk->ends[r];
            // A blank line between JSON records is layout, not a bad record.
            if (file.format == InputFormat::kJsonl &&
                record.find_first_not_of(" \t\r\f\v") == std::string_view::npos) {
              continue;
            }
            if (!document_text(record, file.format, options.text_key, text, reason)) {
              encoded.bad.push_back(fmt::format("line {}: {}", chunk->lines[r], reason));
              continue;
            }
            tokenizer.encode(text, ids);
            if (add_bos) encoded.tokens.push_back(tokenizer.bos_id());
            encoded.tokens.insert(encoded.tokens.end(), ids.begin(), ids.end());
            if (options.add_eos) encoded.tokens.push_back(tokenizer.eos_id());
            encoded.ends.push_back(encoded.tokens.size());
          }
          reorder.put(chunk->sequence, std::move(encoded));
        }
      } catch (...) {
        fail(std::current_exception());
      }
    });
  }

  bool joined = false;
  auto join_all = [&] {
    if (joined) return;
    joined = true;
    work.close();
    reorder.stop();
    reader.join();
    for (auto& t : encoders) t.join();
  };

  try {
    IndexedDatasetWriter writer(options.output_prefix, report.dtype);
    auto last_progress = std::chrono::steady_clock::now();
    uint64_t bytes_written = 0;
    Encoded encoded;
    for (int64_t sequence = 0;; ++sequence) {
      const bool got = reorder.take(sequence, encoded, [&] {
        const int64_t total = chunks_read.load();
        return total >= 0 && sequence >= total;
      });
      if (!got) break;
      FileReport& file = report.files[encoded.file];
      if (!encoded.bad.empty()) {
        if (options.strict) {
          throw InputError(fmt::format("{}:{} (--strict stops at the first bad record)", file.path,
                                       encoded.bad.front().substr(5)));
        }
        if (file.bad_records == 0) file.first_bad = encoded.bad.front();
        for (const auto& bad : encoded.bad) {
          if (file.examples.size() >= 3) break;
          file.examples.push_back(bad);
        }
        file.bad_records += static_cast<int64_t>(encoded.bad.size());
      }
      size_t begin = 0;
      for (size_t end : encoded.ends) {
        writer.add_document(encoded.tokens.data() + begin, end - begin);
        begin = end;
      }
      file.documents += static_cast<int64_t>(encoded.ends.size());
      // Progress counts input whose documents are written, not input read:
      // the reader runs ahead of the encoders by the queues' length.
      bytes_written = encoded.bytes_through;
      const auto now = std::chrono::steady_clock::now();
      if (on_progress && now - last_progress > std::chrono::milliseconds(500)) {
        last_progress = now;
        on_progress(TokenizeProgress{writer.documents(), writer.tokens(), bytes_written, bytes_total,
                                     std::chrono::duration<double>(now - start).count()});
      }
    }
    if (failed) std::rethrow_exception(error);
    join_all();
    if (error) std::rethrow_exception(error);
    // An empty shard would only fail later, in a training run: say why now,
    // and leave nothing under the output name (the writer removes its files).
    if (writer.documents() == 0) {
      std::string cause = "the input holds no records";
      for (const auto& file : report.files) {
        if (file.bad_records > 0) {
          cause = fmt::format("every record was skipped ({}: {} bad, the first at {})", file.path, file.bad_records,
                              file.first_bad);
          break;
        }
      }
      throw InputError(fmt::format("no usable document for {}: {}", options.output_prefix, cause));
    }
    writer.finish();
    report.documents = writer.documents();
    report.tokens = writer.tokens();
  } catch (...) {
    failed = true;
    join_all();
    if (error) std::rethrow_exception(error);
    throw;
  }
  report.input_bytes = bytes_total;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace cpt::data
