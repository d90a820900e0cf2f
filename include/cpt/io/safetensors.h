#pragma once
// The safetensors format (huggingface/safetensors): u64 header length, a
// JSON header, then the tensors' bytes. The reader maps the file and checks
// every rule the reference reader checks; the writer lays out the header
// first and then accepts the bytes of any tensor at any offset, so a large
// tensor can be produced piece by piece (and by several threads).

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <memory>

#include "cpt/common/mapped_file.h"
#include "cpt/io/checksummed_file.h"
#include "cpt/io/dtype.h"

namespace cpt::io {

struct TensorSpec {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;

  int64_t numel() const;
  size_t nbytes() const;
};

struct TensorInfo {
  TensorSpec spec;
  uint64_t begin = 0;  // byte offsets in the data buffer
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Throws InputError naming the file and the broken rule.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data order
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Zero-copy view of a tensor's bytes.
  const uint8_t* data(const TensorInfo& tensor) const { return data_ + tensor.begin; }

  // Lets the kernel drop the pages of [offset, offset + size) of `tensor`
  // from this process's resident set once they have been used.
  void release(const TensorInfo& tensor, size_t offset, size_t size) const;

  // Throws InputError naming the file if it was truncated while mapped
  // (MappedFile::check_intact): call after reading tensors' bytes.
  void check_intact() const { file_.check_intact(); }

 private:
  MappedFile file_;
  const uint8_t* data_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsWriter {
 public:
  // Lays out tensors as the reference writer does (larger element types
  // first, then by name) and creates `path` + ".tmp" at full size. Metadata
  // always carries {"format": "pt"}, which older transformers require.
  // The bytes bypass the page cache where the file system allows
  // (ChecksummedFile): these files are large and written once.
  SafetensorsWriter(std::string path, std::vector<TensorSpec> tensors, std::map<std::string, std::string> metadata = {},
                    ChecksummedFile::Cache cache = ChecksummedFile::Cache::kBypass);
  ~SafetensorsWriter();  // an unfinished file is removed
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Writes `size` bytes at byte `offset` of tensor `name`. Thread-safe.
  void write(const std::string& name, size_t offset, const void* bytes, size_t size);

  // Checks that every tensor was written in full, fsyncs and renames the
  // file to its final name. Returns its size and CRC-32C, computed as the
  // bytes were written.
  FileChecksum finish();

  // The tensors in file order. Writing them in this order lets an
  // O_DIRECT file gather them into large sequential writes
  // (ChecksummedFile); any other order is correct, and slower.
  const std::vector<TensorInfo>& layout() const { return layout_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, temp_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> layout_;
  std::map<std::string, size_t> by_name_;
  std::unique_ptr<ChecksummedFile> file_;
  std::mutex mutex_;
  std::vector<uint64_t> written_;  // bytes written per tensor
  bool finished_ = false;
};

}  // namespace cpt::io
