// fs/core/zeroing.cpp: zeroing free space ahead of allocation (see
// filesystem.h, "Zeroing of free space", and zeroing.h).
//
// Crash safety: a claim's chunks are recorded known zero in a journal
// transaction only after zero_claim's stores are persisted; a crash before
// the commit leaves them dirty, and a rollback of that transaction turns
// them dirty again. Nothing is ever recorded zero that is not.
#include "fs/core/zeroing.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "fs/core/filesystem.h"

namespace pkfs::core {

Result<std::optional<uint64_t>> Filesystem::zero_free_space(uint64_t max_bytes,
                                                            const std::function<void(bool)>& around_stores) {
  uint64_t max_chunks = std::max<uint64_t>(1, max_bytes / format::kChunkSize);
  {
    std::unique_lock lock(m_mutex);
    if (m_closed) return Error(EIO, "filesystem already closed");
    if (m_read_only) return Error(EROFS, "read-only filesystem");
    if (!m_allocator->claim_dirty(max_chunks)) return std::optional<uint64_t>{};
  }
  if (around_stores) around_stores(true);
  m_allocator->zero_claim();
  if (around_stores) around_stores(false);
  std::unique_lock lock(m_mutex);
  // close() stops the zeroer before it marks the region clean, so the
  // filesystem is still open here; the claim is finished either way.
  auto txn = m_journal->begin();
  TRY_ASSIGN(uint64_t chunks, note(m_allocator->finish_claim(*txn), 0, "zeroing"));
  txn->commit();
  return std::optional<uint64_t>{chunks * format::kChunkSize};
}

void Filesystem::start_background_zeroing() {
  if (m_read_only || m_zeroer) return;
  m_zeroer = std::make_unique<BackgroundZeroer>(*this);
}

void Filesystem::stop_background_zeroing() {
  if (!m_zeroer) return;
  // The claim in progress stops after its current chunk (its chunks stay
  // dirty), so close and freeze wait for one chunk's stores at most.
  m_allocator->cancel_claim();
  m_zeroer->stop();
}

ZeroingStatus Filesystem::zeroing_status() {
  ZeroingStatus status;
  {
    std::shared_lock lock(m_mutex);
    uint64_t zero_chunks = m_allocator->free_zero_chunks();
    uint64_t free_chunks = m_allocator->usage().free_chunks;
    status.free_zero_bytes = zero_chunks * format::kChunkSize;
    status.free_dirty_bytes = (free_chunks - std::min(free_chunks, zero_chunks)) * format::kChunkSize;
  }
  if (m_zeroer) {
    status.background = true;
    status.zeroed_bytes = m_zeroer->zeroed_bytes();
    status.bytes_per_second = m_zeroer->bytes_per_second();
  }
  return status;
}

WholePages Filesystem::whole_pages() {
  WholePages pages;
  if (m_layout.page_bytes <= format::kChunkSize) return pages;
  pages.page_bytes = m_layout.page_bytes;
  pages.total = m_layout.guest_pages;
  std::shared_lock lock(m_mutex);
  pages.free = m_allocator->page_usage(m_layout.page_bytes / format::kChunkSize).free_pages;
  return pages;
}

BackgroundZeroer::BackgroundZeroer(Filesystem& fs) : m_fs(fs), m_thread([this] { run(); }) {}

BackgroundZeroer::~BackgroundZeroer() { stop(); }

void BackgroundZeroer::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_wake.notify_all();
  if (!m_thread.joinable()) return;
  // Whoever stops the zeroer waits for it: at normal priority it finishes
  // its current chunk without waiting for idle CPU time.
  sched_param param{};
  pthread_setschedparam(m_thread.native_handle(), SCHED_OTHER, &param);
  m_thread.join();
}

namespace {
// Lowest priority for the stores: SCHED_IDLE runs only on otherwise idle
// CPUs; where a policy forbids it, nice 19 is the next best. Neither needs
// privileges. Normal priority while the zeroer takes core's lock: a lock
// holder at idle priority on a busy machine would make every request that
// needs the lock wait for idle CPU time (measured: p99 of creates 4 ms
// instead of 0.3 ms while the zeroer worked, before this).
void set_priority(bool idle) {
  sched_param param{};
  if (idle) {
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0)
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
  } else {
    sched_setscheduler(0, SCHED_OTHER, &param);
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 0);
  }
}

// Whether this process may go back from idle to normal priority: an
// unprivileged one may enter SCHED_IDLE (or nice 19) but, with RLIMIT_NICE
// at its default, never leave it. Tried on a throwaway thread.
bool priority_revertible() {
  bool revertible = false;
  std::thread probe([&revertible] {
    sched_param param{};
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) return;
    revertible = sched_setscheduler(0, SCHED_OTHER, &param) == 0 &&
                 setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 0) == 0;
  });
  probe.join();
  return revertible;
}
}  // namespace

void BackgroundZeroer::run() {
  pthread_setname_np(pthread_self(), "pkfs-zeroer");  // for top -H and ps -L
  // Idle priority for the stores only where the thread can come back to
  // normal priority to take the lock; else it stays at normal priority (a
  // daemon without CAP_SYS_NICE), which costs requests some memory
  // bandwidth but never a starved lock holder.
  const std::function<void(bool)> around_stores =
      priority_revertible() ? std::function<void(bool)>(set_priority) : std::function<void(bool)>();
  using Clock = std::chrono::steady_clock;
  Clock::time_point window_start = Clock::now();
  uint64_t window_bytes = 0;
  for (;;) {
    {
      std::lock_guard lock(m_mutex);
      if (m_stop) return;
    }
    auto step = m_fs.zero_free_space(kClaimBytes, around_stores);
    bool idle = !step || !step.value().has_value();
    if (!idle) {
      m_zeroed.fetch_add(*step.value(), std::memory_order_relaxed);
      window_bytes += *step.value();
      auto elapsed = Clock::now() - window_start;
      if (elapsed >= std::chrono::seconds(1)) {
        double seconds = std::chrono::duration<double>(elapsed).count();
        m_rate.store(static_cast<uint64_t>(static_cast<double>(window_bytes) / seconds),
                     std::memory_order_relaxed);
        window_start = Clock::now();
        window_bytes = 0;
      }
      continue;
    }
    // Nothing dirty (or an error, which the filesystem has logged and
    // recorded): wait, and start a new rate window when work comes back.
    std::unique_lock lock(m_mutex);
    m_wake.wait_for(lock, kIdleWait, [this] { return m_stop; });
    window_start = Clock::now();
    window_bytes = 0;
  }
}

}  // namespace pkfs::core
