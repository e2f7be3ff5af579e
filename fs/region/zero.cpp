// fs/region/zero.cpp: see zero.h.
#include "fs/region/zero.h"

#include <emmintrin.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace pkfs::region {
namespace {

constexpr uint64_t kPiece = uint64_t{2} << 20;

// One thread's share: streaming stores for the 64-byte-aligned middle,
// memset for the unaligned head and tail. SSE2 is in the x86-64 baseline, so
// no CPU dispatch is needed; wider stores do not raise the bandwidth of
// stores that bypass the cache.
void zero_serial(std::byte* begin, uint64_t length) {
  auto address = reinterpret_cast<uintptr_t>(begin);
  uint64_t head = std::min<uint64_t>(length, (64 - address % 64) % 64);
  std::memset(begin, 0, head);
  begin += head;
  length -= head;
  const __m128i zero = _mm_setzero_si128();
  auto* line = reinterpret_cast<__m128i*>(begin);
  uint64_t lines = length / 64;
  for (uint64_t i = 0; i < lines; ++i, line += 4) {
    _mm_stream_si128(line, zero);
    _mm_stream_si128(line + 1, zero);
    _mm_stream_si128(line + 2, zero);
    _mm_stream_si128(line + 3, zero);
  }
  std::memset(begin + lines * 64, 0, length - lines * 64);
  _mm_sfence();
}

unsigned usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

void zero_memory(std::byte* begin, uint64_t length, unsigned threads) {
  if (threads == 0) threads = usable_cpus();
  if (length < kParallelZeroBytes || threads <= 1) {
    zero_serial(begin, length);
    return;
  }
  // Cut at 2 MiB boundaries of the address into `threads` nearly equal
  // shares; the calling thread takes the first.
  auto address = reinterpret_cast<uintptr_t>(begin);
  uint64_t end = address + length;
  uint64_t pieces = (end + kPiece - 1) / kPiece - address / kPiece;
  uint64_t per_thread = (pieces + threads - 1) / threads;
  std::vector<std::thread> workers;
  std::vector<std::pair<uint64_t, uint64_t>> shares;
  for (uint64_t from = address; from < end;) {
    uint64_t to = std::min<uint64_t>(end, (from / kPiece + per_thread) * kPiece);
    shares.emplace_back(from, to - from);
    from = to;
  }
  std::vector<std::pair<uint64_t, uint64_t>> unstarted;
  for (size_t i = 1; i < shares.size(); ++i) {
    // Copied out, not a structured binding: clang 14 (the fuzz build)
    // cannot capture those.
    std::pair<uint64_t, uint64_t> share = shares[i];
    try {
      workers.emplace_back([share] { zero_serial(reinterpret_cast<std::byte*>(share.first), share.second); });
    } catch (const std::system_error&) {
      unstarted.push_back(shares[i]);
    }
  }
  zero_serial(reinterpret_cast<std::byte*>(shares[0].first), shares[0].second);
  for (auto [from, size] : unstarted) zero_serial(reinterpret_cast<std::byte*>(from), size);
  for (auto& worker : workers) worker.join();
}

}  // namespace pkfs::region
