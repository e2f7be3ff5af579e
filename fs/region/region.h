// fs/region/region.h: the memory a pkfs filesystem lives in.
//
// Owns: opening (or creating) the backing of a region, detecting its kind
// (hugetlbfs file, device-dax character device, file on tmpfs), mapping it
// MAP_SHARED at an address aligned to 2 MiB, the single-user lock, and the
// persist(range) barrier. Knows nothing of the on-region format but its
// minimum size (format::kMinRegionBytes), below which open() refuses a
// backing and creates none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "fs/base/result.h"

namespace pkfs::region {

enum class Kind {
  kHugetlbfs,  // file on a hugetlbfs mount; survives the daemon and the VMM
  kDevdax,     // device-dax char device (memmap= carve-out); survives kexec
  kTmpfs,      // file on tmpfs or /dev/shm; survives the daemon and the VMM
  kMemory,     // anonymous memory owned by the process (tests only)
};

const char* kind_name(Kind kind);

// Whether a region of this kind keeps its contents across a kexec into a new
// kernel: only device-dax on a memmap= carve-out does (hugetlbfs and tmpfs
// pages belong to the old kernel's page allocator).
bool survives_kexec(Kind kind);

struct Info {
  std::string path;
  Kind kind = Kind::kMemory;
  uint64_t size_bytes = 0;      // bytes mapped; fixed for the region's life
  uint64_t page_size = 4096;    // backing page size: 4 KiB, 2 MiB or 1 GiB
  bool survives_kexec = false;  // true only for device-dax
};

enum class Access { kReadOnly, kReadWrite };

// Whether open() takes the region's lock. A read-write open always locks; a
// read-only open may look at a region another process holds (fsck -n, the
// control tool), and reports the holder instead of refusing.
enum class Locking { kExclusive, kNone };

struct OpenOptions {
  Access access = Access::kReadWrite;
  Locking locking = Locking::kExclusive;
  // When set and the path does not exist, create a hugetlbfs/tmpfs file of
  // this many bytes (a multiple of the filesystem's page size). Never applied
  // to devices, and never used to resize an existing file.
  std::optional<uint64_t> create_size_bytes;
  // Fault in and reserve every page at open (MAP_POPULATE). Off by default:
  // a sparse tmpfs region stays sparse.
  bool populate = false;
};

// A private copy of a value of the region. The region is MAP_SHARED, and a
// process that may write it (a VMM given a read-write region descriptor)
// can change any byte at any time: every layer copies a structure out once,
// validates the copy, and uses only the copy afterwards. The compiler
// barrier keeps the compiler from reading the region again in place of the
// copy.
template <typename T>
T copy_from_region(const std::byte* at) {
  static_assert(std::is_trivially_copyable_v<T>);
  T value;
  std::memcpy(&value, at, sizeof value);
  asm volatile("" ::: "memory");
  return value;
}

// Base class so tests can provide heap-backed and fault-injecting regions.
class Region {
 public:
  virtual ~Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  std::byte* base() const { return m_base; }
  uint64_t size() const { return m_info.size_bytes; }
  const Info& info() const { return m_info; }
  bool read_only() const { return m_read_only; }
  // The backing file descriptor (for direct mapping by clients), or -1.
  virtual int fd() const { return -1; }
  // A descriptor of the backing opened with `access`, to pass to a client
  // that maps files directly (SCM_RIGHTS), or -1 (memory regions, or
  // kReadWrite on a read-only region). Owned by the region and open for its
  // whole life: see the lock rule in region.cpp, closing any descriptor of
  // a locked region would drop the lock, so never close what this returns.
  virtual int shared_fd(Access access) const {
    (void)access;
    return -1;
  }
  // True when open() created the backing file: its contents are known zero.
  bool created() const { return m_created; }

  // persist(range): everything stored to [offset, offset+length) before this
  // call is durable before anything stored after it. On hugetlbfs, tmpfs and
  // device-dax memory a process kill or a kexec loses no completed store, so
  // this is an ordering fence; fault-injecting test regions count calls.
  virtual void persist(uint64_t offset, uint64_t length);

  // Makes [offset, offset+length) read as zeros, by the cheapest means the
  // backing has; the caller persists the range (as after its own stores). On tmpfs: a hole
  // punched in the file (the memory goes back to the system, and the kernel
  // hands out a zeroed page at the next fault, as in a fresh sparse region).
  // Elsewhere: zero_memory's streaming stores. A hole in a hugetlbfs file
  // would return its pages to the pool, where another user's reservation
  // could take them and turn the next fault into a SIGBUS, so hugetlbfs
  // keeps its pages; device-dax has only stores. `threads` as for
  // zero_memory (0: one per CPU).
  virtual void zero(uint64_t offset, uint64_t length, unsigned threads = 0);

  // Flushes the whole mapping to its backing (msync MS_SYNC) before a kexec
  // or a power cut the region is meant to outlive. Memory-only regions have
  // nothing to flush.
  virtual Result<void> sync() { return success(); }

 protected:
  Region() = default;
  std::byte* m_base = nullptr;
  Info m_info;
  bool m_read_only = false;
  bool m_created = false;
};

// Opens the region at `path`. Errors name the path and what to do, e.g.
// "/dev/hugepages/r: needs 128 free 2048 kB hugepages, 12 are free; run:
//  echo 140 > /proc/sys/vm/nr_hugepages".
// A read-write open locks the region (F_WRLCK; Locking is ignored); a
// read-only kExclusive open takes a shared lock that keeps writers out; a
// read-only kNone open takes none. A process cannot open a region again while
// it holds it locked (EBUSY): closing the second descriptor would silently
// release the POSIX lock. Hand the existing Region around instead.
Result<std::unique_ptr<Region>> open(const std::string& path, const OpenOptions& options);

// Who holds the lock on the region at `path`, e.g. "pid 1234 (pkfs)", or an
// empty string if nobody does (or it cannot be told).
std::string lock_holder(const std::string& path);

// Probes the kind, size and page size of `path` without mapping or locking.
Result<Info> probe(const std::string& path);

// A region in anonymous memory (MAP_SHARED|MAP_ANONYMOUS), zero-filled, for
// unit tests. `size_bytes` must be a multiple of 4096.
class MemoryRegion : public Region {
 public:
  explicit MemoryRegion(uint64_t size_bytes);
  ~MemoryRegion() override;
};

}  // namespace pkfs::region
