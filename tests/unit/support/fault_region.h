// tests/unit/support/fault_region.h: a region that simulates a crash.
//
// Owns: FaultRegion, a Region over heap memory whose persist() counts its
// calls and, at call number N, copies the whole region aside: the image a
// crash right after that persist would leave (every store before it is in
// the image, none after). The operation itself keeps running. The counters
// and the image live in a FaultState shared with the test, because the
// Filesystem owns (and destroys) the region.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "support/test_region.h"

namespace pkfs::test {

struct FaultState {
  uint64_t persists = 0;                 // persist() calls so far
  uint64_t crash_at = 0;                 // take the crash image at this call; 0: never
  std::optional<Bytes> crash_image;      // set at call crash_at
  uint64_t watched_offset = UINT64_MAX;  // persists of exactly this offset are counted apart
  uint64_t watched_persists = 0;
};

class FaultRegion : public region::Region {
 public:
  FaultRegion(Bytes bytes, std::shared_ptr<FaultState> state)
      : m_bytes(std::move(bytes)), m_state(std::move(state)) {
    m_base = m_bytes.data();
    m_info.path = "(fault-injecting test region)";
    m_info.kind = region::Kind::kMemory;
    m_info.size_bytes = m_bytes.size();
  }

  void persist(uint64_t offset, uint64_t length) override {
    region::Region::persist(offset, length);
    FaultState& state = *m_state;
    ++state.persists;
    if (offset == state.watched_offset) ++state.watched_persists;
    if (state.persists == state.crash_at) state.crash_image = m_bytes;
  }

  Bytes& bytes() { return m_bytes; }

  // As MemoryView::test_report_page_size.
  void test_report_page_size(uint64_t page_size) {
    m_info.page_size = page_size;
    m_info.kind = page_size > 4096 ? region::Kind::kHugetlbfs : region::Kind::kMemory;
  }

 private:
  Bytes m_bytes;
  std::shared_ptr<FaultState> m_state;
};

}  // namespace pkfs::test
