// fs/alloc/allocator.cpp: chunk map, split chunks and the DRAM free index.
#include "fs/alloc/allocator.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <boost/intrusive/set.hpp>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace pkfs::alloc {

namespace bi = boost::intrusive;
using format::ChunkMapBlock;
using format::kBlockSize;
using format::kBlocksPerChunk;
using format::kChunkSize;
using format::kChunksPerMapBlock;
using format::SplitHeader;

// A run of free whole chunks, in two intrusive sets: by start (to merge
// neighbours) and by length (best fit).
struct Allocator::FreeRun {
  uint64_t first = 0;
  uint64_t count = 0;
  bi::set_member_hook<> by_start_hook;
  bi::set_member_hook<> by_length_hook;
};

namespace {
struct ByStart {
  bool operator()(const Allocator::FreeRun& a, const Allocator::FreeRun& b) const {
    return a.first < b.first;
  }
};
struct ByLength {
  bool operator()(const Allocator::FreeRun& a, const Allocator::FreeRun& b) const {
    return a.count != b.count ? a.count < b.count : a.first < b.first;
  }
};
}  // namespace

struct Allocator::Index {
  using StartSet = bi::set<FreeRun, bi::member_hook<FreeRun, bi::set_member_hook<>, &FreeRun::by_start_hook>,
                           bi::compare<ByStart>>;
  using LengthSet =
      bi::set<FreeRun, bi::member_hook<FreeRun, bi::set_member_hook<>, &FreeRun::by_length_hook>,
              bi::compare<ByLength>>;
  StartSet by_start;
  LengthSet by_length;

  ~Index() {
    by_length.clear();
    by_start.clear_and_dispose([](FreeRun* run) { delete run; });
  }
};

namespace {
bool bit_set(const SplitHeader& header, uint64_t bit) { return (header.bitmap[bit / 64] >> (bit % 64)) & 1; }
void set_bit(SplitHeader& header, uint64_t bit, bool value) {
  if (value) {
    header.bitmap[bit / 64] |= uint64_t{1} << (bit % 64);
  } else {
    header.bitmap[bit / 64] &= ~(uint64_t{1} << (bit % 64));
  }
}

// Blocks [first_bit, end_bit) of a split chunk are all in use (never block 0).
bool bits_in_use(const SplitHeader& header, uint64_t first_bit, uint64_t end_bit) {
  if (first_bit == 0) return false;
  for (uint64_t bit = first_bit; bit < end_bit; ++bit) {
    if (!bit_set(header, bit)) return false;
  }
  return true;
}
}  // namespace

Allocator::Allocator(region::Region& region, const format::Layout& layout)
    : m_region(region), m_layout(layout), m_index(std::make_unique<Index>()) {}

Allocator::~Allocator() = default;

void Allocator::format(region::Region& region, const format::Layout& layout, bool data_known_zero) {
  for (uint64_t block = 0; block < layout.chunk_map_blocks; ++block) {
    auto map = format::stamped<ChunkMapBlock>();
    map.first_chunk = block * kChunksPerMapBlock;
    for (uint64_t i = 0; i < kChunksPerMapBlock; ++i) {
      uint64_t chunk = map.first_chunk + i;
      bool meta = layout.meta_chunk(chunk);
      map.state[i] =
          meta ? format::kChunkMeta : (data_known_zero ? format::kChunkFreeZero : format::kChunkFreeDirty);
    }
    format::seal(map);
    std::memcpy(region.base() + layout.chunk_map_offset + block * kBlockSize, &map, sizeof map);
  }
  region.persist(layout.chunk_map_offset, layout.chunk_map_blocks * kBlockSize);
}

void Allocator::adjust_undo_image(const format::Layout& layout, uint64_t target, std::byte* image,
                                  uint64_t length, const std::byte* current) {
  uint64_t map_end = layout.chunk_map_offset + layout.chunk_map_blocks * kBlockSize;
  if (length != sizeof(ChunkMapBlock) || target < layout.chunk_map_offset || target >= map_end ||
      (target - layout.chunk_map_offset) % kBlockSize != 0) {
    return;  // not a chunk-map block (they are always logged whole)
  }
  ChunkMapBlock old_block;
  ChunkMapBlock now_block;
  std::memcpy(&old_block, image, sizeof old_block);
  std::memcpy(&now_block, current, sizeof now_block);
  bool changed = false;
  for (uint64_t i = 0; i < kChunksPerMapBlock; ++i) {
    if (old_block.state[i] == format::kChunkFreeZero && now_block.state[i] != format::kChunkFreeZero) {
      old_block.state[i] = format::kChunkFreeDirty;
      changed = true;
    }
  }
  if (!changed) return;
  format::seal(old_block);
  std::memcpy(image, &old_block, sizeof old_block);
}

uint64_t Allocator::expected_free_blocks(uint64_t chunk) const {
  uint64_t expected = 0;
  if (auto it = m_partial.find(chunk); it != m_partial.end()) expected += it->second;
  if (auto it = m_freed_in_transaction.find(chunk); it != m_freed_in_transaction.end())
    expected += it->second;
  return expected;
}

Result<SplitHeader> Allocator::read_split_header(uint64_t chunk, uint64_t expected_free) const {
  const auto header = region::copy_from_region<SplitHeader>(m_region.base() + chunk * kChunkSize);
  std::string what;
  if (!format::split_header_valid(header, chunk, &what)) {
    return Error(EUCLEAN, "split chunk " + std::to_string(chunk) + " header: " + what);
  }
  // Valid, so used_blocks is the bitmap's popcount with bit 0 set: 1..512.
  if (kBlocksPerChunk - header.used_blocks != expected_free) {
    return Error(EUCLEAN, "split chunk " + std::to_string(chunk) +
                              " header: " + std::to_string(kBlocksPerChunk - header.used_blocks) +
                              " free blocks where the allocator counts " + std::to_string(expected_free) +
                              " (changed in the region)");
  }
  return header;
}

Result<std::unique_ptr<Allocator>> Allocator::open(region::Region& region, const format::Layout& layout) {
  std::unique_ptr<Allocator> allocator(new Allocator(region, layout));
  allocator->m_states.resize(layout.chunk_map_blocks * kChunksPerMapBlock);
  uint64_t run_first = 0, run_count = 0;
  for (uint64_t block = 0; block < layout.chunk_map_blocks; ++block) {
    // One copy of the block, validated and then used: the region may change
    // under us, and a state read again after validation could be anything.
    const auto map =
        region::copy_from_region<ChunkMapBlock>(region.base() + layout.chunk_map_offset + block * kBlockSize);
    std::string what;
    if (!format::chunk_map_block_valid(map, block, &what)) {
      return Error(EUCLEAN, "chunk map block " + std::to_string(block) + ": " + what);
    }
    std::memcpy(&allocator->m_states[block * kChunksPerMapBlock], map.state, kChunksPerMapBlock);
    for (uint64_t i = 0; i < kChunksPerMapBlock; ++i) {
      uint64_t chunk = block * kChunksPerMapBlock + i;
      uint8_t state = map.state[i];
      bool must_be_meta = layout.meta_chunk(chunk);
      if (must_be_meta != (state == format::kChunkMeta)) {
        return Error(EUCLEAN,
                     "chunk map: chunk " + std::to_string(chunk) + " has state " + std::to_string(state) +
                         (must_be_meta ? " but lies in the metadata area" : " (metadata) in the data area"));
      }
      bool is_free = state == format::kChunkFreeZero || state == format::kChunkFreeDirty;
      if (is_free) {
        if (run_count == 0) run_first = chunk;
        ++run_count;
        continue;
      }
      if (run_count != 0) allocator->insert_free(run_first, run_count);
      allocator->m_free_chunks += run_count;
      run_count = 0;
      if (state == format::kChunkSplit) {
        const auto header = region::copy_from_region<SplitHeader>(region.base() + chunk * kChunkSize);
        if (!format::split_header_valid(header, chunk, &what)) {
          return Error(EUCLEAN, "split chunk " + std::to_string(chunk) + " header: " + what);
        }
        ++allocator->m_split_chunks;
        // Valid: used_blocks is the popcount of a bitmap with bit 0 set, 1..512.
        uint32_t free_blocks = static_cast<uint32_t>(kBlocksPerChunk - header.used_blocks);
        if (free_blocks != 0) allocator->m_partial[chunk] = free_blocks;
        allocator->m_split_free_blocks += free_blocks;
      }
    }
  }
  if (run_count != 0) allocator->insert_free(run_first, run_count);
  allocator->m_free_chunks += run_count;
  return allocator;
}

void Allocator::insert_free(uint64_t first, uint64_t count) {
  FreeRun probe;
  probe.first = first;
  auto next = m_index->by_start.lower_bound(probe);
  if (next != m_index->by_start.begin()) {
    auto previous = std::prev(next);
    if (previous->first + previous->count == first) {
      FreeRun* run = &*previous;
      first = run->first;
      count += run->count;
      m_index->by_length.erase(m_index->by_length.iterator_to(*run));
      m_index->by_start.erase(previous);
      delete run;
    }
  }
  if (next != m_index->by_start.end() && next->first == first + count) {
    FreeRun* run = &*next;
    count += run->count;
    m_index->by_length.erase(m_index->by_length.iterator_to(*run));
    m_index->by_start.erase(next);
    delete run;
  }
  auto* run = new FreeRun;
  run->first = first;
  run->count = count;
  m_index->by_start.insert(*run);
  m_index->by_length.insert(*run);
}

void Allocator::remove_free(uint64_t first, uint64_t count) {
  FreeRun probe;
  probe.first = first;
  auto it = m_index->by_start.upper_bound(probe);
  if (it == m_index->by_start.begin()) std::abort();  // broken invariant: not free
  --it;
  FreeRun* run = &*it;
  if (run->first > first || run->first + run->count < first + count) std::abort();
  uint64_t run_first = run->first, run_end = run->first + run->count;
  m_index->by_length.erase(m_index->by_length.iterator_to(*run));
  m_index->by_start.erase(it);
  delete run;
  auto add = [this](uint64_t start, uint64_t length) {
    if (length == 0) return;
    auto* piece = new FreeRun;
    piece->first = start;
    piece->count = length;
    m_index->by_start.insert(*piece);
    m_index->by_length.insert(*piece);
  };
  add(run_first, first - run_first);
  add(first + count, run_end - (first + count));
}

Result<void> Allocator::set_chunk_states(journal::Transaction& txn, uint64_t first, uint64_t count,
                                         uint8_t state) {
  uint64_t chunk = first;
  uint64_t end = first + count;
  while (chunk < end) {
    uint64_t block = chunk / kChunksPerMapBlock;
    uint64_t block_end = std::min(end, (block + 1) * kChunksPerMapBlock);
    // The block is written whole from DRAM: bytes someone changed in the
    // region are overwritten, never sealed into a valid block.
    std::vector<uint8_t> old_states(m_states.data() + chunk, m_states.data() + block_end);
    std::memset(&m_states[chunk], state, block_end - chunk);
    auto map = format::stamped<ChunkMapBlock>();
    map.first_chunk = block * kChunksPerMapBlock;
    std::memcpy(map.state, &m_states[block * kChunksPerMapBlock], kChunksPerMapBlock);
    format::seal(map);
    // An abort rolls the region back (core's undo filter turning a known-zero
    // chunk this transaction took into a dirty one) and DRAM with it; DRAM
    // is conservative the same way even without the filter.
    txn.on_abort([this, chunk, state, old_states = std::move(old_states)] {
      for (uint64_t i = 0; i < old_states.size(); ++i) {
        uint8_t old_state = old_states[i];
        if (old_state == format::kChunkFreeZero && state != format::kChunkFreeZero) {
          old_state = format::kChunkFreeDirty;
        }
        m_states[chunk + i] = old_state;
      }
    });
    TRY(txn.put(m_layout.chunk_map_offset + block * kBlockSize, map));
    chunk = block_end;
  }
  return success();
}

Result<BlockRun> Allocator::allocate_chunks(journal::Transaction& txn, uint64_t wanted_chunks,
                                            uint64_t alignment_chunks) {
  if (wanted_chunks == 0) return Error(EINVAL, "allocation of zero chunks");
  if (m_index->by_length.empty()) return Error(ENOSPC, "no free chunk left");
  if (alignment_chunks == 0) alignment_chunks = 1;
  uint64_t start = 0, count = 0;
  FreeRun probe;
  probe.count = wanted_chunks;
  probe.first = 0;
  // Among the first few runs that fit (smallest first), the one whose
  // aligned start has the fewest dirty chunks: known-zero space is handed
  // out without zeroing. Ties keep the smallest run, so a region without
  // dirty space allocates exactly as best fit does. Only run starts are
  // tried: placing a file at the end of a run would cut free space into
  // more pieces, and one contiguous run matters more to a VMM than zeroing.
  constexpr int kCandidateRuns = 8;
  for (uint64_t alignment : {alignment_chunks, uint64_t{1}}) {
    uint64_t best_dirty = UINT64_MAX;
    int runs = 0;
    for (auto it = m_index->by_length.lower_bound(probe);
         it != m_index->by_length.end() && runs < kCandidateRuns && best_dirty != 0; ++it) {
      uint64_t aligned = (it->first + alignment - 1) / alignment * alignment;
      if (aligned + wanted_chunks > it->first + it->count) continue;
      ++runs;
      uint64_t dirty = dirty_chunks(aligned, wanted_chunks, best_dirty);
      if (dirty < best_dirty) {
        best_dirty = dirty;
        start = aligned;
        count = wanted_chunks;
      }
    }
    if (count != 0) break;
  }
  if (count == 0) {  // nothing big enough: the largest run there is
    const FreeRun& largest = *m_index->by_length.rbegin();
    start = largest.first;
    count = largest.count;
  }
  return take_chunks(txn, start, count);
}

Result<BlockRun> Allocator::allocate_pages(journal::Transaction& txn, uint64_t wanted_pages,
                                           uint64_t page_chunks) {
  if (wanted_pages == 0 || page_chunks == 0) return Error(EINVAL, "allocation of zero pages");
  const uint64_t wanted = wanted_pages * page_chunks;
  // Whole aligned pages inside a free run.
  auto aligned_pages = [page_chunks](const FreeRun& run, uint64_t& aligned) {
    aligned = (run.first + page_chunks - 1) / page_chunks * page_chunks;
    uint64_t end = run.first + run.count;
    return aligned >= end ? 0 : (end - aligned) / page_chunks;
  };
  FreeRun probe;
  probe.count = wanted;
  probe.first = 0;
  uint64_t start = 0, pages = 0;
  for (auto it = m_index->by_length.lower_bound(probe); it != m_index->by_length.end(); ++it) {
    uint64_t aligned = 0;
    if (aligned_pages(*it, aligned) >= wanted_pages) {
      start = aligned;
      pages = wanted_pages;
      break;
    }
  }
  if (pages == 0) {  // no run holds them all: the most whole pages one run has
    for (const FreeRun& run : m_index->by_start) {
      uint64_t aligned = 0;
      uint64_t have = aligned_pages(run, aligned);
      if (have > pages) {
        start = aligned;
        pages = have;
      }
    }
  }
  if (pages == 0) {
    return Error(ENOSPC, "no whole free " + std::to_string(page_chunks * kChunkSize) + "-byte page left");
  }
  return take_chunks(txn, start, pages * page_chunks);
}

namespace {

// Adds the whole pages of `page_chunks` chunks that start on a page
// boundary inside the free run [first, first + count) to `usage`.
void count_run_pages(Allocator::PageUsage& usage, uint64_t first, uint64_t count, uint64_t page_chunks) {
  uint64_t aligned = (first + page_chunks - 1) / page_chunks * page_chunks;
  uint64_t end = first + count;
  uint64_t pages = aligned >= end ? 0 : (end - aligned) / page_chunks;
  usage.free_pages += pages;
  usage.largest_run_pages = std::max(usage.largest_run_pages, pages);
}

}  // namespace

Allocator::PageUsage Allocator::page_usage(uint64_t page_chunks) const {
  PageUsage usage;
  if (page_chunks == 0) return usage;
  for (const FreeRun& run : m_index->by_start) count_run_pages(usage, run.first, run.count, page_chunks);
  return usage;
}

Result<BlockRun> Allocator::take_chunks(journal::Transaction& txn, uint64_t start, uint64_t count) {
  take_from_claim(start, count);
  // Zero what is not known zero before it becomes part of a file, a run of
  // dirty chunks at a time: zero_memory streams a large run from every CPU,
  // where a memset per chunk is too small for the C library's streaming
  // stores and reads each line before it overwrites it.
  for (uint64_t chunk = start; chunk < start + count;) {
    if (chunk_state(chunk) == format::kChunkFreeZero) {
      ++chunk;
      continue;
    }
    uint64_t dirty_end = chunk + 1;
    while (dirty_end < start + count && chunk_state(dirty_end) != format::kChunkFreeZero) ++dirty_end;
    m_region.zero(chunk * kChunkSize, (dirty_end - chunk) * kChunkSize);
    chunk = dirty_end;
  }
  m_region.persist(start * kChunkSize, count * kChunkSize);
  TRY(set_chunk_states(txn, start, count, format::kChunkUsed));
  remove_free(start, count);
  m_free_chunks -= count;
  txn.on_abort([this, start, count] {
    insert_free(start, count);
    m_free_chunks += count;
  });
  return BlockRun{static_cast<uint32_t>(start * kBlocksPerChunk),
                  static_cast<uint32_t>(count * kBlocksPerChunk)};
}

Result<uint64_t> Allocator::split_new_chunk(journal::Transaction& txn) {
  if (m_index->by_start.empty()) return Error(ENOSPC, "no free chunk left to split");
  // Small files take chunks from the top of the small-file area (the whole
  // data area in the chunk layout), large ones from the bottom, so the two
  // do not fragment each other; in the large-page layout they stay out of
  // the whole pages while the reserved pages have a free chunk.
  const FreeRun& last = *m_index->by_start.rbegin();
  uint64_t chunk = last.first + last.count - 1;
  if (m_layout.page_bytes != 0) {
    FreeRun probe;
    probe.first = m_layout.small_area_end();
    auto below = m_index->by_start.lower_bound(probe);
    if (below != m_index->by_start.begin()) {
      const FreeRun& run = *std::prev(below);
      if (run.first >= m_layout.metadata_chunks) chunk = std::min(run.first + run.count, probe.first) - 1;
    }
  }
  take_from_claim(chunk, 1);
  auto header = format::stamped<SplitHeader>();
  header.used_blocks = 1;
  header.chunk_index = chunk;
  header.bitmap[0] = 1;
  format::seal(header);
  TRY(txn.put(chunk * kChunkSize, header));
  TRY(set_chunk_states(txn, chunk, 1, format::kChunkSplit));
  remove_free(chunk, 1);
  m_free_chunks -= 1;
  m_split_chunks += 1;
  m_split_free_blocks += kBlocksPerChunk - 1;
  m_partial[chunk] = kBlocksPerChunk - 1;
  txn.on_abort([this, chunk] {
    m_partial.erase(chunk);
    m_split_chunks -= 1;
    m_split_free_blocks -= kBlocksPerChunk - 1;
    insert_free(chunk, 1);
    m_free_chunks += 1;
  });
  return chunk;
}

Result<BlockRun> Allocator::allocate_blocks(journal::Transaction& txn, uint64_t wanted_blocks,
                                            uint64_t goal_block) {
  if (wanted_blocks == 0) return Error(EINVAL, "allocation of zero blocks");
  uint64_t chunk = 0, first_bit = 0;
  bool found = false;
  if (goal_block != 0) {
    uint64_t goal_chunk = goal_block / kBlocksPerChunk;
    auto it = m_partial.find(goal_chunk);
    if (it != m_partial.end() && !m_freed_in_transaction.contains(goal_chunk)) {
      // The goal block, else the first free block of the goal's chunk.
      chunk = goal_chunk;
      first_bit = goal_block % kBlocksPerChunk;
      found = true;
    }
  }
  if (!found) {
    // A chunk whose blocks this transaction freed is skipped: handing them
    // out would zero data that an abort must give back.
    auto it = m_partial.begin();
    while (it != m_partial.end() && m_freed_in_transaction.contains(it->first)) ++it;
    if (it == m_partial.end()) {
      TRY_ASSIGN(chunk, split_new_chunk(txn));
    } else {
      chunk = it->first;
    }
  }
  // One copy of the header, checked against what DRAM counts free: someone
  // may have changed it in the region, and a bitmap fuller than DRAM thinks
  // would leave no free block to find.
  TRY_ASSIGN(SplitHeader header, read_split_header(chunk, m_partial[chunk]));
  if (first_bit == 0 || bit_set(header, first_bit)) {
    first_bit = 1;
    while (first_bit < kBlocksPerChunk && bit_set(header, first_bit)) ++first_bit;
    // Unreachable after read_split_header (free blocks == m_partial > 0).
    if (first_bit == kBlocksPerChunk) {
      return Error(EUCLEAN, "split chunk " + std::to_string(chunk) + " has no free block");
    }
  }
  uint64_t count = 0;
  while (count < wanted_blocks && first_bit + count < kBlocksPerChunk &&
         !bit_set(header, first_bit + count)) {
    set_bit(header, first_bit + count, true);
    ++count;
  }
  header.used_blocks = static_cast<uint16_t>(header.used_blocks + count);
  format::seal(header);
  uint64_t region_block = chunk * kBlocksPerChunk + first_bit;
  // Blocks of split chunks are zeroed as they are handed out.
  std::memset(m_region.base() + region_block * kBlockSize, 0, count * kBlockSize);
  m_region.persist(region_block * kBlockSize, count * kBlockSize);
  TRY(txn.put(chunk * kChunkSize, header));
  uint32_t old_free = m_partial[chunk];
  uint32_t new_free = old_free - static_cast<uint32_t>(count);
  if (new_free == 0) {
    m_partial.erase(chunk);
  } else {
    m_partial[chunk] = new_free;
  }
  m_split_free_blocks -= count;
  txn.on_abort([this, chunk, old_free, count] {
    m_partial[chunk] = old_free;
    m_split_free_blocks += count;
  });
  return BlockRun{static_cast<uint32_t>(region_block), static_cast<uint32_t>(count)};
}

bool Allocator::in_data_area(BlockRun run) const {
  return m_layout.in_data_area(run.region_block, run.block_count);
}

bool Allocator::is_allocated(BlockRun run) const {
  if (!in_data_area(run)) return false;
  uint64_t first = run.region_block, end = first + run.block_count;
  for (uint64_t block = first; block < end;) {
    uint64_t chunk = block / kBlocksPerChunk;
    uint8_t state = chunk_state(chunk);
    uint64_t chunk_end = std::min(end, (chunk + 1) * kBlocksPerChunk);
    if (state == format::kChunkUsed) {
      block = chunk_end;
      continue;
    }
    if (state != format::kChunkSplit) return false;
    auto header = read_split_header(chunk, expected_free_blocks(chunk));
    if (!header) return false;
    uint64_t chunk_first = chunk * kBlocksPerChunk;
    if (!bits_in_use(header.value(), block - chunk_first, chunk_end - chunk_first)) return false;
    block = chunk_end;
  }
  return true;
}

Result<void> Allocator::free(journal::Transaction& txn, BlockRun run) {
  auto not_in_use = [&run] {
    return Error(EUCLEAN, "freeing blocks " + std::to_string(run.region_block) + "+" +
                              std::to_string(run.block_count) + " that are not in use");
  };
  if (!in_data_area(run)) return not_in_use();
  uint64_t first = run.region_block;
  uint64_t chunk = first / kBlocksPerChunk;
  uint8_t state = chunk_state(chunk);
  if (state != format::kChunkUsed && state != format::kChunkSplit) return not_in_use();
  if (state == format::kChunkUsed) {
    // Whole chunks: the chunk must be used whole, and so must every chunk of
    // the run (DRAM states, never the region's).
    if (!is_allocated(run)) return not_in_use();
    if (first % kBlocksPerChunk != 0 || run.block_count % kBlocksPerChunk != 0) {
      return Error(EUCLEAN, "freeing part of a whole-chunk extent at block " + std::to_string(first));
    }
    uint64_t count = run.block_count / kBlocksPerChunk;
    for (uint64_t c = chunk; c < chunk + count; ++c) {
      if (chunk_state(c) != format::kChunkUsed) return Error(EUCLEAN, "extent mixes whole and split chunks");
    }
    TRY(set_chunk_states(txn, chunk, count, format::kChunkFreeDirty));
    txn.on_commit([this, chunk, count] {
      insert_free(chunk, count);
      m_free_chunks += count;
    });
    return success();
  }
  if ((first + run.block_count - 1) / kBlocksPerChunk != chunk) {
    return Error(EUCLEAN, "small extent at block " + std::to_string(first) + " crosses a chunk boundary");
  }
  // One copy of the header, validated and checked against DRAM's count; the
  // bits to clear are checked in that copy, so used_blocks (their popcount
  // plus block 0) cannot go below 1.
  TRY_ASSIGN(SplitHeader header, read_split_header(chunk, expected_free_blocks(chunk)));
  uint64_t first_bit = first % kBlocksPerChunk;
  if (!bits_in_use(header, first_bit, first_bit + run.block_count)) return not_in_use();
  if (m_freed_in_transaction.empty()) {
    txn.on_commit([this] { m_freed_in_transaction.clear(); });
    txn.on_abort([this] { m_freed_in_transaction.clear(); });
  }
  m_freed_in_transaction[chunk] += run.block_count;
  for (uint64_t bit = first_bit; bit < first_bit + run.block_count; ++bit) set_bit(header, bit, false);
  header.used_blocks = static_cast<uint16_t>(header.used_blocks - run.block_count);
  if (header.used_blocks == 1) {
    // Last block gone: the chunk becomes whole again. Its header block is
    // the only non-zero block left to clear; the others were zeroed when
    // handed out and may hold old file data, so the chunk is dirty.
    TRY(txn.put(chunk * kChunkSize, SplitHeader{}));
    TRY(set_chunk_states(txn, chunk, 1, format::kChunkFreeDirty));
    txn.on_commit([this, chunk] {
      m_split_free_blocks -= m_partial.contains(chunk) ? m_partial[chunk] : 0;
      m_partial.erase(chunk);
      m_split_chunks -= 1;
      insert_free(chunk, 1);
      m_free_chunks += 1;
    });
    return success();
  }
  format::seal(header);
  TRY(txn.put(chunk * kChunkSize, header));
  uint32_t count = run.block_count;
  txn.on_commit([this, chunk, count] {
    m_partial[chunk] += count;
    m_split_free_blocks += count;
  });
  return success();
}

uint64_t Allocator::dirty_chunks(uint64_t first, uint64_t count, uint64_t limit) const {
  uint64_t dirty = 0;
  for (uint64_t chunk = first; chunk < first + count && dirty <= limit; ++chunk) {
    if (m_states[chunk] != format::kChunkFreeZero) ++dirty;
  }
  return dirty;
}

uint64_t Allocator::free_zero_chunks() const {
  return static_cast<uint64_t>(std::count(m_states.begin(), m_states.end(), format::kChunkFreeZero));
}

void Allocator::take_from_claim(uint64_t first, uint64_t count) {
  if (!m_claim.active) return;
  const Claim& run = m_claim.run;
  if (first >= run.first_chunk + run.chunk_count || run.first_chunk >= first + count) return;
  m_claim.taken = true;
  // Wait for the chunk being zeroed, if any, at the zeroer's normal
  // priority (it lowers itself again at its next claim).
  if (!m_claim_stores.try_lock()) {
    sched_param param{};
    sched_setscheduler(m_claim.owner_tid, SCHED_OTHER, &param);
    m_claim_stores.lock();
  }
  m_claim_stores.unlock();
}

std::optional<Allocator::Claim> Allocator::claim_dirty(uint64_t max_chunks) {
  if (m_claim.active || max_chunks == 0) return std::nullopt;
  uint64_t chunks = m_layout.chunk_count;
  if (m_zero_cursor >= chunks) m_zero_cursor = 0;
  // One pass over the chunk states from the cursor, wrapping once.
  for (uint64_t step = 0; step < chunks; ++step) {
    uint64_t chunk = (m_zero_cursor + step) % chunks;
    if (m_states[chunk] != format::kChunkFreeDirty) continue;
    uint64_t end = chunk + 1;
    while (end < chunks && end - chunk < max_chunks && m_states[end] == format::kChunkFreeDirty) ++end;
    m_zero_cursor = end;
    m_claim.active = true;
    m_claim.owner_tid = gettid();
    m_claim.run = Claim{chunk, end - chunk};
    m_claim.taken = false;
    return m_claim.run;
  }
  return std::nullopt;
}

void Allocator::zero_claim() {
  if (!m_claim.active) return;
  uint64_t end = m_claim.run.first_chunk + m_claim.run.chunk_count;
  for (uint64_t chunk = m_claim.run.first_chunk; chunk < end; ++chunk) {
    std::lock_guard stores(m_claim_stores);
    if (m_claim.taken) return;  // finish_claim records nothing: no persist owed
    m_region.zero(chunk * kChunkSize, kChunkSize, 1);
  }
  // Before finish_claim's transaction records the run known zero.
  m_region.persist(m_claim.run.first_chunk * kChunkSize, m_claim.run.chunk_count * kChunkSize);
}

Result<uint64_t> Allocator::finish_claim(journal::Transaction& txn) {
  if (!m_claim.active) return uint64_t{0};
  Claim run = m_claim.run;
  m_claim.active = false;
  if (m_claim.taken) return uint64_t{0};
  // Nothing took the run, and free chunks cannot be freed again: it is still
  // free and dirty, which the check below only confirms.
  uint64_t end = run.first_chunk + run.chunk_count;
  for (uint64_t chunk = run.first_chunk; chunk < end; ++chunk) {
    if (m_states[chunk] != format::kChunkFreeDirty) {
      return Error(EUCLEAN, "chunk " + std::to_string(chunk) + " changed state while it was being zeroed");
    }
  }
  TRY(set_chunk_states(txn, run.first_chunk, run.chunk_count, format::kChunkFreeZero));
  return run.chunk_count;
}

Usage Allocator::usage() const {
  Usage usage;
  usage.total_blocks = (m_layout.chunk_count - m_layout.metadata_chunks - 1) * kBlocksPerChunk;
  usage.free_chunks = m_free_chunks;
  usage.free_blocks = m_free_chunks * kBlocksPerChunk + m_split_free_blocks;
  usage.split_chunks = m_split_chunks;
  usage.largest_free_run_chunks = m_index->by_length.empty() ? 0 : m_index->by_length.rbegin()->count;
  return usage;
}

}  // namespace pkfs::alloc
