// fs/base/bytes.h: questions about plain bytes.
//
// Owns: all_zero, the one test whether a range (or a whole value) is all
// zero bytes. Must not depend on anything in pkfs; every layer may include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace pkfs {

// Whether `length` bytes at `data` are all zero, ORed together 8 at a time:
// mount checks every free inode slot and the padding of every name this
// way, and a loop over single bytes cost it several ms per 100,000 files.
inline bool all_zero(const void* data, size_t length) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  uint64_t any = 0;
  size_t i = 0;
  for (; i + sizeof any <= length; i += sizeof any) {
    uint64_t word;
    std::memcpy(&word, bytes + i, sizeof word);
    any |= word;
  }
  for (; i < length; ++i) any |= bytes[i];
  return any == 0;
}

// Whether every byte of `value` is zero.
template <typename T>
bool all_zero(const T& value) {
  static_assert(std::is_trivially_copyable_v<T>);
  return all_zero(&value, sizeof value);
}

}  // namespace pkfs
