// fs/core/internal.h: DRAM index types shared by the files of fs/core.
// Not part of the core API.
#pragma once

#include <dirent.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "fs/base/clock.h"
#include "fs/core/filesystem.h"

namespace pkfs::core {

using region::copy_from_region;

// A directory's entries, rebuilt from the dirent table at open.
struct Filesystem::Directory {
  std::unordered_map<std::string, uint64_t> by_name;  // name -> dirent slot
  std::map<uint64_t, Ino> by_slot;                    // slot -> child, readdir order
  // Placement hint: the region block just past the last 4 KiB blocks given
  // to a file created in this directory (0: none yet). Small files of one
  // directory (vm1/iommu/*) then share split chunks.
  uint64_t small_goal = 0;
};

// DRAM state of an inode in use.
struct Filesystem::Node {
  uint32_t open_count = 0;
  uint64_t references = 0;  // kernel lookups; see add_references()
  uint32_t holds = 0;       // used hold slots naming it (rebuilt at open)
  // Opened by a daemon that took over a connection whose references it
  // does not know (Takeover::kUnknown): the kernel may reach this inode by
  // number, so it is never freed before the next ordinary mount.
  bool pinned = false;
  Ino directory = 0;               // non-directories: where it was created (placement hint)
  std::unique_ptr<Directory> dir;  // directories only

  // An unlinked inode may be freed only when nothing can reach it: no open
  // handle, no kernel reference, no process mapping it.
  bool unreferenced() const { return open_count == 0 && references == 0 && holds == 0 && !pinned; }
};

inline timespec to_timespec(int64_t ns) {
  timespec ts{};
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

inline int64_t from_timespec(const timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Checks a name for a new directory entry. Errors: EINVAL, ENAMETOOLONG.
Result<void> check_name(std::string_view name);

// A transaction must leave at least this much journal for the inode,
// superblock and extent-list updates that close it.
inline constexpr uint64_t kJournalReserveBytes = 64 * 1024;

}  // namespace pkfs::core
