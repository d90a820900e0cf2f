#pragma once
// Per-file checksums of a checkpoint (trainer_state/checksums.json): the
// size and CRC-32C of every file, recorded when the checkpoint is written,
// so a flipped byte or a truncated shard is found before it is trained on,
// evaluated or merged.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace cpt::io {

inline constexpr const char* kChecksumsFile = "trainer_state/checksums.json";

struct FileChecksum {
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

// Relative path (with '/') -> checksum.
using ChecksumManifest = std::map<std::string, FileChecksum>;

// Checksums every regular file under `dir` (recursively) but the manifest,
// and writes the manifest atomically. Files in `known` (by relative path)
// were checksummed as they were written and are not read again.
void write_checksums(const std::string& dir, const ChecksumManifest& known = {});

// Parses a manifest's text; throws InputError naming `source` when it is malformed.
ChecksumManifest parse_checksums(const std::string& text, const std::string& source);

bool has_checksums(const std::string& dir);

// Checks the files of `dir`'s manifest that `which` selects (all when
// empty): each must exist, have its recorded size and CRC-32C. Throws
// InputError naming the file and what is wrong.
void verify_checksums(const std::string& dir, const std::function<bool(const std::string&)>& which = {});

// The model files of a checkpoint: everything outside trainer_state/.
bool is_model_file(const std::string& relative_path);

}  // namespace cpt::io
