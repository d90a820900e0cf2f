#include "cpt/io/event_file.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>

#include "cpt/common/crc32c.h"

namespace fs = std::filesystem;

namespace cpt::io {

namespace {

// Protobuf wire format: a key is (field << 3) | wire type.
void varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

void key(std::string& out, int field, int wire_type) { varint(out, static_cast<uint64_t>(field << 3 | wire_type)); }

template <class T>
void little_endian(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // x86-64 and aarch64 are little-endian
  out.append(bytes, sizeof(T));
}

void length_delimited(std::string& out, int field, const std::string& bytes) {
  key(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event fields (tensorflow/core/util/event.proto).
constexpr int kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 7;
// Summary.value = 1; Value.tag = 1, Value.simple_value = 2; SessionLog.status = 1 (START = 1).
constexpr int kSummaryValue = 1, kValueTag = 1, kValueSimple = 2, kSessionStatus = 1, kSessionStart = 1;

std::string event_header(double wall_time, int64_t step) {
  std::string event;
  key(event, kWallTime, 1);
  little_endian(event, wall_time);
  if (step != 0) {
    key(event, kStep, 0);
    varint(event, static_cast<uint64_t>(step));
  }
  return event;
}

}  // namespace

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(0, data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& record) {
  std::string out;
  const uint64_t length = record.size();
  little_endian(out, length);
  little_endian(out, masked_crc32c(out.data(), sizeof(length)));
  out += record;
  little_endian(out, masked_crc32c(record.data(), record.size()));
  return out;
}

std::string scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string entry;
    length_delimited(entry, kValueTag, tag);
    key(entry, kValueSimple, 5);
    little_endian(entry, static_cast<float>(value));
    length_delimited(summary, kSummaryValue, entry);
  }
  std::string event = event_header(wall_time, step);
  length_delimited(event, kSummary, summary);
  return event;
}

EventFileWriter::EventFileWriter(const std::string& dir, int64_t purge_from_step)
    : path_([&] {
        fs::create_directories(dir);
        char host[256] = "localhost";
        ::gethostname(host, sizeof(host) - 1);
        return (fs::path(dir) / fmt::format("events.out.tfevents.{}.{}.{}", static_cast<int64_t>(now()), host,
                                            ::getpid()))
            .string();
      }()),
      file_(path_) {
  std::string version = event_header(now(), 0);
  length_delimited(version, kFileVersion, "brain.Event:2");
  std::string records = tfrecord(version);
  if (purge_from_step > 0) {
    std::string status;
    key(status, kSessionStatus, 0);
    varint(status, kSessionStart);
    std::string start = event_header(now(), purge_from_step);
    length_delimited(start, kSessionLog, status);
    records += tfrecord(start);
  }
  file_.append_bytes(records);
}

void EventFileWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  file_.append_bytes(tfrecord(scalar_event(now(), step, scalars)));
}

}  // namespace cpt::io
