// tests/unit/support/memory_view.h: a Region over memory the test owns.
//
// core::Filesystem::open takes ownership of its Region; a test that wants to
// drop a filesystem (cleanly or as a crash) and open the same bytes again
// hands it a MemoryView and keeps the backing (a MemoryRegion, a vector)
// itself. Destroying the view releases nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "fs/region/region.h"

namespace pkfs::testing {

class MemoryView : public region::Region {
 public:
  MemoryView(std::byte* base, uint64_t size_bytes, bool read_only = false) {
    m_base = base;
    m_info.path = "(memory view)";
    m_info.kind = region::Kind::kMemory;
    m_info.size_bytes = size_bytes;
    m_info.page_size = 4096;
    m_info.survives_kexec = false;
    m_read_only = read_only;
    m_created = false;
  }

  // Reports a hugetlbfs backing with pages of `page_size` bytes (2 MiB, 1
  // GiB), so core takes the paths a direct mapping of such a region needs;
  // 4096 reports memory again. The bytes stay ordinary memory.
  void test_report_page_size(uint64_t page_size) {
    m_info.page_size = page_size;
    m_info.kind = page_size > 4096 ? region::Kind::kHugetlbfs : region::Kind::kMemory;
  }

  // A view of bytes in a vector the caller keeps alive.
  explicit MemoryView(std::vector<std::byte>& bytes, bool read_only = false)
      : MemoryView(bytes.data(), bytes.size(), read_only) {}

  // A view of everything `backing` maps.
  static std::unique_ptr<MemoryView> of(const region::Region& backing, bool read_only = false) {
    return std::make_unique<MemoryView>(backing.base(), backing.size(), read_only);
  }
};

}  // namespace pkfs::testing
