#pragma once
// TensorBoard's event files, written without TensorFlow or protobuf: TFRecord
// framing (length, masked CRC-32C of the length, the record, masked CRC-32C
// of the record) around hand-encoded `Event` protos holding scalar
// summaries. Pure C++.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cpt/io/atomic_file.h"

namespace cpt::io {

// TFRecord's checksum: CRC-32C rotated right by 15 bits plus a constant.
uint32_t masked_crc32c(const void* data, size_t size);

// One TFRecord around `record`.
std::string tfrecord(const std::string& record);

// An Event proto with `wall_time`, `step` and one simple_value per scalar.
std::string scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& scalars);

class EventFileWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix time>.<host>.<pid> and writes the
  // file-version event. `purge_from_step` > 0 also writes a session START
  // at that step: TensorBoard then drops the events of earlier files from
  // that step on, which a resumed run writes again.
  explicit EventFileWriter(const std::string& dir, int64_t purge_from_step = 0);

  // One event of scalars at `step`, appended in one write.
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars);

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  LineAppender file_;
};

}  // namespace cpt::io
