#include "cpt/common/crc32c.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <nmmintrin.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <vector>

#include "cpt/common/error.h"

namespace cpt {

namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // reflected Castagnoli

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = make_table();

uint32_t crc32c_table(uint32_t crc, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");

// Polynomials over GF(2) modulo the CRC polynomial, in the reflected bit
// order of the CRC itself (bit 31 is x^0). Appending n zero bytes to a
// message multiplies its CRC register by x^(8n); combining is that shift
// of A's CRC, added to B's.
uint32_t multiply_mod_p(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
    if (a & bit) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPolynomial : b >> 1;
  }
  return product;
}

// x^(2^k) mod p for k = 0..63.
std::array<uint32_t, 64> make_powers() {
  std::array<uint32_t, 64> powers{};
  uint32_t p = 1u << 30;  // x^1
  for (uint32_t& power : powers) {
    power = p;
    p = multiply_mod_p(p, p);
  }
  return powers;
}

// x^(8 * bytes) mod p.
uint32_t shift_for_bytes(uint64_t bytes) {
  static const std::array<uint32_t, 64> kPowers = make_powers();
  uint32_t result = 1u << 31;  // x^0
  for (unsigned k = 3; bytes != 0 && k < 64; bytes >>= 1, ++k) {
    if (bytes & 1) result = multiply_mod_p(kPowers[k], result);
  }
  return result;
}

// Bytes per lane of crc32c_sse42's three.
constexpr size_t kLane = 8192;

// Moves a CRC register over kLane zero bytes: multiplying by x^(8·kLane) is
// linear, so it is four table lookups, one per byte of the register.
struct LaneShift {
  std::array<std::array<uint32_t, 256>, 4> table{};
  LaneShift() {
    const uint32_t factor = shift_for_bytes(kLane);
    for (uint32_t j = 0; j < 4; ++j) {
      for (uint32_t v = 0; v < 256; ++v) table[j][v] = multiply_mod_p(factor, v << (8 * j));
    }
  }
  uint32_t operator()(uint32_t crc) const {
    return table[0][crc & 0xFF] ^ table[1][(crc >> 8) & 0xFF] ^ table[2][(crc >> 16) & 0xFF] ^ table[3][crc >> 24];
  }
};

// Built on first use (a thousand polynomial products), not at every
// process start: most runs of cpt-train never checksum a long buffer.
const LaneShift& lane_shift() {
  static const LaneShift shift;
  return shift;
}

// The crc32 instruction takes three cycles and can start one every cycle:
// one chain over the bytes ran at a third of its speed (8 GB/s, the
// bottleneck of a checkpoint's save and verification). Three lanes of
// kLane bytes run side by side, and their CRCs are joined as
// crc32c_combine joins pieces (the register is linear in its start and
// the bytes): the first moved over the second's length, XOR the second,
// and so on.
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const uint8_t* p, size_t n) {
  auto word = [](const uint8_t* at) {
    uint64_t w;
    std::memcpy(&w, at, 8);
    return w;
  };
  uint64_t c = crc;
  const LaneShift* shift = n >= 3 * kLane ? &lane_shift() : nullptr;
  for (; n >= 3 * kLane; n -= 3 * kLane, p += 3 * kLane) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < kLane; i += 8) {
      c = _mm_crc32_u64(c, word(p + i));
      c1 = _mm_crc32_u64(c1, word(p + kLane + i));
      c2 = _mm_crc32_u64(c2, word(p + 2 * kLane + i));
    }
    c = (*shift)((*shift)(static_cast<uint32_t>(c)) ^ static_cast<uint32_t>(c1)) ^ static_cast<uint32_t>(c2);
  }
  for (; n >= 8; n -= 8, p += 8) c = _mm_crc32_u64(c, word(p));
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}

}  // namespace

uint32_t crc32c(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  crc = kHaveSse42 ? crc32c_sse42(crc, p, size) : crc32c_table(crc, p, size);
  return ~crc;
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t size_b) {
  return multiply_mod_p(shift_for_bytes(size_b), crc_a) ^ crc_b;
}

uint32_t file_crc32c(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw InputError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  return file_range_crc32c(path, 0, static_cast<uint64_t>(info.st_size));
}

uint32_t file_range_crc32c(const std::string& path, uint64_t offset, uint64_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(size), POSIX_FADV_SEQUENTIAL);
  std::vector<uint8_t> buffer(static_cast<size_t>(std::min<uint64_t>(size, uint64_t{4} << 20)));
  uint32_t crc = 0;
  for (uint64_t at = offset, end = offset + size; at < end;) {
    const ssize_t n = ::pread(fd, buffer.data(), static_cast<size_t>(std::min<uint64_t>(buffer.size(), end - at)),
                              static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      if (n == 0) throw InputError(fmt::format("'{}' ended at byte {} while it was read", path, at));
      throw InputError(fmt::format("cannot read '{}': {}", path, std::strerror(error)));
    }
    crc = crc32c(crc, buffer.data(), static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return crc;
}

}  // namespace cpt
