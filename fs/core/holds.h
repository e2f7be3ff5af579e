// fs/core/holds.h: who holds a directly mapped file (see FORMAT.md, "Holds").
//
// Owns: the types of Filesystem::acquire_hold and friends (a holder, the
// limits on its holds, a hold as listed) and the liveness check of a
// holder that mount and release_stale_holds use (holds.cpp).
#pragma once

#include <array>
#include <cstdint>

#include "fs/base/result.h"
#include "fs/core/ino.h"
#include "fs/format/format.h"

namespace pkfs::core {

// A process that maps a file of the region directly (fs/client); see
// FORMAT.md, "Holds". `start_ticks` (/proc/PID/stat field 22) tells a
// recycled pid from the holder.
struct Holder {
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint64_t start_ticks = 0;
};

// How many holds one holder may have (acquire_hold). 0 means no limit.
// A process is a pid with its start time (Holder::start_ticks); uid 0 is
// exempt from the per-uid limit, not from the per-process one.
struct HoldLimits {
  uint32_t per_process = 0;
  uint32_t per_uid = 0;
};

struct HoldInfo {
  uint64_t id = 0;  // hold table slot
  Ino ino = 0;
  uint64_t generation = 0;
  Holder holder;
};

// The start time of process `pid` in clock ticks after boot (field 22 of
// /proc/PID/stat), what Holder::start_ticks records. Errors: ESRCH when
// there is no such process (or it is a zombie), EIO when stat is unreadable.
Result<uint64_t> process_start_ticks(uint32_t pid);

// This boot's id (/proc/sys/kernel/random/boot_id as 16 bytes); all zero
// when it cannot be read.
std::array<uint8_t, 16> current_boot_id();

// The default liveness check of a hold: taken in this boot, and its pid runs
// a process (not a zombie) that started at `start_ticks`.
bool holder_alive(const format::Hold& hold);

}  // namespace pkfs::core
