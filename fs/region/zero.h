// fs/region/zero.h: zeroing large ranges of region memory at memory speed.
//
// Space is zeroed before a file gets it again (DESIGN: no tenant sees
// another's old memory). For a guest's RAM that is gigabytes at once, on
// the path of a VM's start, so it is done with non-temporal stores (no
// read-for-ownership, no eviction of the caches other work needs) split
// across threads, one per CPU the process may run on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pkfs::region {

// Below this a range is zeroed on the calling thread: starting threads
// costs more than they save.
inline constexpr uint64_t kParallelZeroBytes = uint64_t{32} << 20;

// Zeroes [begin, begin + length) and makes the stores globally visible
// (sfence) before returning. `threads` caps the threads used; 0 means one
// per CPU in the process's affinity mask. Pieces handed to threads start on
// 2 MiB boundaries of the address, so no two threads touch one hugepage.
// Never fails: if a thread cannot be started its piece is zeroed on the
// calling thread.
void zero_memory(std::byte* begin, uint64_t length, unsigned threads = 0);

}  // namespace pkfs::region
