#pragma once
// CRC-32C (Castagnoli), the checksum of iSCSI, ext4 metadata and TFRecord:
// SSE4.2's crc32 instruction where the CPU has it, a table otherwise.

#include <cstddef>
#include <cstdint>
#include <string>

namespace cpt {

// Extends `crc` (0 to start) over `size` bytes.
uint32_t crc32c(uint32_t crc, const void* data, size_t size);

// The CRC-32C of A followed by B, from crc32c(A), crc32c(B) and B's length:
// pieces checksummed apart (by several threads, or as they are written in
// any order) combine into the checksum of the whole.
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t size_b);

// The CRC-32C of a whole file. Throws InputError naming
// the path when it cannot be read.
uint32_t file_crc32c(const std::string& path);

// The CRC-32C of bytes [offset, offset + size) of a file; throws
// InputError naming the path when it cannot be read or ends before them.
uint32_t file_range_crc32c(const std::string& path, uint64_t offset, uint64_t size);

}  // namespace cpt
