// fs/core/zeroing.h: the background zeroer's thread (core internal; the
// public calls are Filesystem::start_background_zeroing and friends).
//
// One thread per filesystem. Its stores run at the lowest CPU priority a
// process can set (SCHED_IDLE, else nice 19), so they use CPU time nothing
// else wants; it takes core's lock (to claim and to record) at normal
// priority, so no request waits behind a starved lock holder. It calls Filesystem::zero_free_space a claim at
// a time while free space is dirty, and otherwise sleeps for kIdleWait (new dirty space appears only when
// files shrink or go, which nothing waits on).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace pkfs::core {

class Filesystem;

class BackgroundZeroer {
 public:
  // Bytes zeroed per claim: the most an allocation waits for is one 2 MiB
  // chunk of it (see alloc::Allocator::zero_claim), and the lock is taken
  // twice per claim.
  static constexpr uint64_t kClaimBytes = uint64_t{32} << 20;
  static constexpr std::chrono::milliseconds kIdleWait{1000};

  explicit BackgroundZeroer(Filesystem& fs);
  ~BackgroundZeroer();  // stop()
  BackgroundZeroer(const BackgroundZeroer&) = delete;
  BackgroundZeroer& operator=(const BackgroundZeroer&) = delete;

  void stop();
  uint64_t zeroed_bytes() const { return m_zeroed.load(std::memory_order_relaxed); }
  uint64_t bytes_per_second() const { return m_rate.load(std::memory_order_relaxed); }

 private:
  void run();

  Filesystem& m_fs;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_stop = false;
  std::atomic<uint64_t> m_zeroed{0};
  std::atomic<uint64_t> m_rate{0};
  std::thread m_thread;  // last: started once everything above exists
};

}  // namespace pkfs::core
