// fs/base/clock.h: the time pkfs records.
//
// Owns: now_ns, the one reading of the clock that every timestamp pkfs
// stores comes from (inode and superblock times, freeze records). Must not
// depend on anything in pkfs; every layer may include it.
#pragma once

#include <time.h>

#include <cstdint>

namespace pkfs {

// CLOCK_REALTIME in nanoseconds since the epoch, as stat's times count.
inline int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace pkfs
