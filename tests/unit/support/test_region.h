// tests/unit/support/test_region.h: regions over memory the test owns.
//
// Owns: BufferRegion (the MemoryView of memory_view.h), a Region view over caller-owned bytes (so the bytes
// of a region outlive the Filesystem that took ownership of its Region, and can be inspected, damaged and
// reopened), HeapRegion, a Region that owns its bytes, and helpers to snapshot region contents and edit
// on-region structs in such a snapshot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "fs/format/format.h"
#include "fs/region/region.h"
#include "support/memory_view.h"

namespace pkfs::test {

// The bytes of a whole region. Heap memory is at least 16-byte aligned,
// enough for every on-region struct and the journal's 8-byte atomics.
using Bytes = std::vector<std::byte>;

// A Region over bytes someone else owns; they must outlive it.
using BufferRegion = testing::MemoryView;

// A Region that owns its bytes (a copy of a snapshot, usually).
class HeapRegion : public region::Region {
 public:
  explicit HeapRegion(Bytes bytes) : m_bytes(std::move(bytes)) {
    m_base = m_bytes.data();
    m_info.path = "(test heap)";
    m_info.kind = region::Kind::kMemory;
    m_info.size_bytes = m_bytes.size();
  }
  Bytes& bytes() { return m_bytes; }

 private:
  Bytes m_bytes;
};

// A copy of every byte of `region`.
inline Bytes snapshot(const region::Region& region) {
  return Bytes(region.base(), region.base() + region.size());
}

// A Region the Filesystem can own, viewing `bytes` in place.
inline std::unique_ptr<region::Region> view(Bytes& bytes, bool read_only = false) {
  return std::make_unique<BufferRegion>(bytes, read_only);
}

// A Region the Filesystem can own, over a private copy of `bytes`.
inline std::unique_ptr<region::Region> copy_of(const Bytes& bytes) {
  return std::make_unique<HeapRegion>(bytes);
}

// Reads the struct at `offset` of an image.
template <typename T>
T get(const Bytes& bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

// Writes `value` at `offset`, sealing its checksum first: damage a test
// builds this way passes every checksum and exercises the deeper checks.
template <typename T>
void put_sealed(Bytes& bytes, uint64_t offset, T value) {
  format::seal(value);
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

// Writes `value` at `offset` as it is.
template <typename T>
void put_raw(Bytes& bytes, uint64_t offset, const T& value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

}  // namespace pkfs::test
