#pragma once
// Megatron-LM's MMapIndexedDataset format: <prefix>.bin holds the tokens,
// <prefix>.idx the sequence lengths, byte pointers and document boundaries.
// One document is one sequence when we write; the reader accepts documents of
// several sequences as Megatron writes them for sentence-split data.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cpt/common/mapped_file.h"

namespace cpt::data {

// Megatron's dtype codes.
enum class TokenDtype : uint8_t {
  kUint8 = 1, kInt8 = 2, kInt16 = 3, kInt32 = 4, kInt64 = 5, kFloat64 = 6, kFloat32 = 7, kUint16 = 8,
};

size_t dtype_size(TokenDtype dtype);
const char* dtype_name(TokenDtype dtype);

// uint16 when every id fits (vocab < 65,500, as Megatron chooses), else int32.
TokenDtype dtype_for_vocab(int64_t vocab_size);

// Streams documents into <prefix>.bin; finish() writes <prefix>.idx. Both are
// written under temporary names and renamed only when complete, so a crash
// never leaves a half-written dataset under the real name.
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(std::string prefix, TokenDtype dtype);
  ~IndexedDatasetWriter();  // an unfinished writer removes its temporary files
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // Throws InputError if a token does not fit the dtype.
  void add_document(const int32_t* tokens, size_t count);
  void finish();

  int64_t documents() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t tokens() const { return tokens_; }

 private:
  void write_bytes(const void* data, size_t size);

  std::string prefix_;
  TokenDtype dtype_;
  std::string bin_temp_, idx_temp_;
  int fd_ = -1;
  std::vector<uint8_t> buffer_;
  std::vector<uint16_t> narrow_;  // reused per document
  std::vector<int32_t> lengths_;
  int64_t tokens_ = 0;
  bool finished_ = false;
};

class IndexedDataset {
 public:
  // Maps both files and validates every rule of the layout; throws InputError
  // naming the file and what is wrong.
  explicit IndexedDataset(const std::string& prefix);

  const std::string& prefix() const { return prefix_; }
  TokenDtype dtype() const { return dtype_; }
  int64_t documents() const { return document_count_ - 1; }
  int64_t sequences() const { return sequence_count_; }
  int64_t tokens() const { return tokens_; }

  // Token offset (not bytes) of document d in .bin, and its length in tokens.
  int64_t document_offset(int64_t d) const;
  int64_t document_length(int64_t d) const;

  // Copies tokens [offset, offset + count) of .bin, widened to int64.
  // Throws InputError naming .bin if the file was truncated under the mapping.
  void read_tokens(int64_t offset, int64_t count, int64_t* out) const;

  // Throws InputError naming the file if .bin or .idx changed on disk since
  // they were opened (truncated, rewritten or replaced).
  void check_unchanged() const;

 private:
  int64_t sequence_length(int64_t s) const;
  int64_t sequence_pointer(int64_t s) const;
  int64_t document_index(int64_t d) const;

  std::string prefix_;
  MappedFile idx_;
  MappedFile bin_;
  TokenDtype dtype_ = TokenDtype::kUint16;
  int64_t sequence_count_ = 0;
  int64_t document_count_ = 0;
  int64_t tokens_ = 0;
  const uint8_t* lengths_ = nullptr;    // int32[sequence_count], unaligned
  const uint8_t* pointers_ = nullptr;   // int64[sequence_count], unaligned
  const uint8_t* doc_index_ = nullptr;  // int64[document_count], unaligned
};

}  // namespace cpt::data
