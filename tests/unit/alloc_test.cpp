// tests/unit/alloc_test.cpp: behaviour of fs/alloc (whole chunks for large
// files, blocks of split chunks for small ones, zeroing, freeing, and the DRAM
// index staying equal to what the region says).
//
// Regions are sparse anonymous memory: a 3 GiB one costs only the pages a
// case touches, so no case writes more than a few chunks of data.
#include <sys/mman.h>
#include <ucontext.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "fs/alloc/allocator.h"
#include "fs/format/format.h"
#include "fs/journal/journal.h"
#include "fs/region/region.h"
#include "support/memory_view.h"

namespace {

using namespace pkfs;
using alloc::Allocator;
using alloc::BlockRun;
using alloc::Usage;
using format::kBlockSize;
using format::kBlocksPerChunk;
using format::kChunkSize;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// A region with a journal and a formatted chunk map (nothing else of a
// filesystem: the allocator only needs those).
struct Setup {
  std::unique_ptr<region::MemoryRegion> region;
  format::Layout layout{};
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<Allocator> allocator;

  // `with_filter`: the journal adjusts chunk-map undo images as core's does.
  explicit Setup(uint64_t bytes, bool data_known_zero = true, bool with_filter = false) {
    region = std::make_unique<region::MemoryRegion>(bytes);
    auto computed = format::compute_layout(bytes, {});
    REQUIRE(computed.ok());
    layout = computed.value();
    journal::Journal::format(*region, layout.journal_offset, layout.journal_bytes);
    journal = open_journal(with_filter);
    Allocator::format(*region, layout, data_known_zero);
    allocator = open_allocator();
  }

  std::unique_ptr<journal::Journal> open_journal(bool with_filter) const {
    journal::UndoFilter filter;
    if (with_filter) {
      filter = [layout = layout](uint64_t target, std::byte* image, uint64_t length,
                                 const std::byte* current) {
        Allocator::adjust_undo_image(layout, target, image, length, current);
      };
    }
    auto opened = journal::Journal::open(*region, layout.journal_offset, layout.journal_bytes, filter);
    REQUIRE(opened.ok());
    return std::move(opened).value();
  }

  std::unique_ptr<Allocator> open_allocator() const {
    auto opened = Allocator::open(*region, layout);
    REQUIRE(opened.ok());
    return std::move(opened).value();
  }

  uint64_t data_chunks() const { return layout.chunk_count - layout.metadata_chunks - 1; }
  std::byte* block(uint64_t region_block) const { return region->base() + region_block * kBlockSize; }
  uint8_t chunk_state(uint64_t chunk) const {
    const auto* map = reinterpret_cast<const format::ChunkMapBlock*>(
        region->base() + layout.chunk_map_offset + chunk / format::kChunksPerMapBlock * kBlockSize);
    return map->state[chunk % format::kChunksPerMapBlock];
  }
  const format::SplitHeader& split_header(uint64_t chunk) const {
    return *reinterpret_cast<const format::SplitHeader*>(region->base() + chunk * kChunkSize);
  }

  BlockRun chunks(uint64_t wanted, uint64_t alignment = 1) const {
    auto txn = journal->begin();
    auto run = allocator->allocate_chunks(*txn, wanted, alignment);
    REQUIRE(run.ok());
    txn->commit();
    return run.value();
  }
  BlockRun blocks(uint64_t wanted, uint64_t goal = 0) const {
    auto txn = journal->begin();
    auto run = allocator->allocate_blocks(*txn, wanted, goal);
    REQUIRE(run.ok());
    txn->commit();
    return run.value();
  }
  void release(BlockRun run) const {
    auto txn = journal->begin();
    REQUIRE(allocator->free(*txn, run).ok());
    txn->commit();
  }
  // What the background zeroer does, until no free chunk is dirty.
  void zero_free() const {
    while (allocator->claim_dirty(16)) {
      allocator->zero_claim();
      auto txn = journal->begin();
      REQUIRE(allocator->finish_claim(*txn).ok());
      txn->commit();
    }
  }
};

void check_usage_equal(const Usage& a, const Usage& b) {
  CHECK(a.total_blocks == b.total_blocks);
  CHECK(a.free_blocks == b.free_blocks);
  CHECK(a.free_chunks == b.free_chunks);
  CHECK(a.split_chunks == b.split_chunks);
  CHECK(a.largest_free_run_chunks == b.largest_free_run_chunks);
}

// The allocator rebuilt from the region must agree with the live one.
void check_rebuilt_index_matches(Setup& setup) {
  auto rebuilt = setup.open_allocator();
  check_usage_equal(rebuilt->usage(), setup.allocator->usage());
}

bool is_zero(const std::byte* where, uint64_t length) {
  for (uint64_t i = 0; i < length; ++i) {
    if (where[i] != std::byte{0}) return false;
  }
  return true;
}

uint64_t chunk_of(BlockRun run) { return run.region_block / kBlocksPerChunk; }

}  // namespace

TEST_CASE("a formatted region is all free data chunks", "[alloc]") {
  Setup setup(256 * kMiB);
  Usage usage = setup.allocator->usage();
  CHECK(usage.total_blocks == setup.data_chunks() * kBlocksPerChunk);
  CHECK(usage.total_blocks * kBlockSize == setup.layout.usable_bytes);
  CHECK(usage.free_blocks == usage.total_blocks);
  CHECK(usage.free_chunks == setup.data_chunks());
  CHECK(usage.split_chunks == 0);
  CHECK(usage.largest_free_run_chunks == setup.data_chunks());
  for (uint64_t chunk = 0; chunk < setup.layout.metadata_chunks; ++chunk) {
    CHECK(setup.chunk_state(chunk) == format::kChunkMeta);
  }
  CHECK(setup.chunk_state(setup.layout.metadata_chunks) == format::kChunkFreeZero);
  CHECK(setup.chunk_state(setup.layout.chunk_count - 1) == format::kChunkMeta);
}

TEST_CASE("allocate_chunks returns a contiguous run from the start of the data area", "[alloc]") {
  Setup setup(256 * kMiB);
  Usage before = setup.allocator->usage();
  BlockRun run = setup.chunks(5);
  CHECK(run.region_block == setup.layout.metadata_chunks * kBlocksPerChunk);
  CHECK(run.block_count == 5 * kBlocksPerChunk);
  CHECK(setup.allocator->is_allocated(run));
  for (uint64_t chunk = chunk_of(run); chunk < chunk_of(run) + 5; ++chunk) {
    CHECK(setup.chunk_state(chunk) == format::kChunkUsed);
  }
  Usage after = setup.allocator->usage();
  CHECK(after.free_chunks == before.free_chunks - 5);
  CHECK(after.free_blocks == before.free_blocks - 5 * kBlocksPerChunk);
  CHECK(after.largest_free_run_chunks == before.largest_free_run_chunks - 5);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("allocate_chunks returns 1 GiB aligned runs when asked and possible", "[alloc]") {
  Setup setup(3 * kGiB);
  REQUIRE(setup.layout.metadata_chunks < format::kChunksPerGigabyte);
  BlockRun run = setup.chunks(format::kChunksPerGigabyte, format::kChunksPerGigabyte);
  CHECK(run.block_count == format::kChunksPerGigabyte * kBlocksPerChunk);
  CHECK((uint64_t{run.region_block} * kBlockSize) % kGiB == 0);
  CHECK(uint64_t{run.region_block} * kBlockSize == kGiB);  // the first aligned gigabyte

  // A smaller aligned request still lands on a gigabyte boundary: the only
  // one left with room is at 2 GiB (the last chunk holds the backup).
  BlockRun second = setup.chunks(4, format::kChunksPerGigabyte);
  CHECK(uint64_t{second.region_block} * kBlockSize == 2 * kGiB);

  // Asked again for a whole aligned gigabyte, none is left: any run will do.
  BlockRun fallback = setup.chunks(format::kChunksPerGigabyte, format::kChunksPerGigabyte);
  CHECK(fallback.block_count > 0);
  CHECK(fallback.block_count <= format::kChunksPerGigabyte * kBlocksPerChunk);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("allocate_chunks zeroes only chunks not known zero", "[alloc]") {
  SECTION("known-zero chunks are not touched") {
    Setup setup(64 * kMiB, /*data_known_zero=*/true);
    uint64_t first = setup.layout.metadata_chunks;
    // A canary the allocator would wipe if it zeroed a known-zero chunk.
    setup.block(first * kBlocksPerChunk + 7)[5] = std::byte{0x5a};
    BlockRun run = setup.chunks(2);
    REQUIRE(chunk_of(run) == first);
    CHECK(setup.block(first * kBlocksPerChunk + 7)[5] == std::byte{0x5a});
  }
  SECTION("chunks of a backing not known zero are zeroed") {
    Setup setup(64 * kMiB, /*data_known_zero=*/false);
    uint64_t first = setup.layout.metadata_chunks;
    CHECK(setup.chunk_state(first) == format::kChunkFreeDirty);
    std::memset(setup.block(first * kBlocksPerChunk), 0xee, 2 * kChunkSize);
    BlockRun run = setup.chunks(2);
    REQUIRE(chunk_of(run) == first);
    CHECK(is_zero(setup.block(run.region_block), 2 * kChunkSize));
  }
  SECTION("in a run of dirty and known-zero chunks only the dirty ones are zeroed") {
    Setup setup(64 * kMiB, /*data_known_zero=*/true);
    uint64_t first = setup.layout.metadata_chunks;
    BlockRun a = setup.chunks(1);
    REQUIRE(chunk_of(a) == first);
    std::memset(setup.block(a.region_block), 0xee, kChunkSize);
    setup.release(a);
    setup.block((first + 2) * kBlocksPerChunk + 7)[5] = std::byte{0x5a};
    BlockRun run = setup.chunks(setup.data_chunks());
    REQUIRE(chunk_of(run) == first);
    CHECK(is_zero(setup.block(run.region_block), kChunkSize));
    CHECK(setup.block((first + 2) * kBlocksPerChunk + 7)[5] == std::byte{0x5a});
  }
}

TEST_CASE("allocate_chunks prefers known-zero space to a better fit that needs zeroing", "[alloc][zeroing]") {
  Setup setup(64 * kMiB);
  uint64_t first = setup.layout.metadata_chunks;
  BlockRun a = setup.chunks(2);
  REQUIRE(chunk_of(a) == first);
  BlockRun filler = setup.chunks(setup.data_chunks() - 4);
  REQUIRE(chunk_of(filler) == first + 2);
  setup.release(a);
  // Two free runs of two chunks: [first, first + 2) dirty, the last two zero.
  BlockRun run = setup.chunks(2);
  CHECK(chunk_of(run) == first + setup.data_chunks() - 2);
  // With only dirty space left, it is used (and zeroed).
  std::memset(setup.block(a.region_block), 0xee, 2 * kChunkSize);
  BlockRun dirty = setup.chunks(2);
  CHECK(chunk_of(dirty) == first);
  CHECK(is_zero(setup.block(dirty.region_block), 2 * kChunkSize));
}

TEST_CASE("a claim of dirty chunks is zeroed and recorded known zero", "[alloc][zeroing]") {
  Setup setup(64 * kMiB);
  uint64_t first = setup.layout.metadata_chunks;
  CHECK_FALSE(setup.allocator->claim_dirty(8));  // fresh: nothing to zero
  BlockRun a = setup.chunks(5);
  std::memset(setup.block(a.region_block), 0xee, 5 * kChunkSize);
  setup.release(a);
  CHECK(setup.allocator->free_zero_chunks() == setup.data_chunks() - 5);
  auto claim = setup.allocator->claim_dirty(3);
  REQUIRE(claim);
  CHECK(claim->first_chunk == first);
  CHECK(claim->chunk_count == 3);
  CHECK_FALSE(setup.allocator->claim_dirty(3));  // one claim at a time
  setup.allocator->zero_claim();
  {
    auto txn = setup.journal->begin();
    auto recorded = setup.allocator->finish_claim(*txn);
    REQUIRE(recorded.ok());
    CHECK(recorded.value() == 3);
    txn->commit();
  }
  CHECK(is_zero(setup.block(a.region_block), 3 * kChunkSize));
  for (uint64_t chunk = first; chunk < first + 3; ++chunk)
    CHECK(setup.chunk_state(chunk) == format::kChunkFreeZero);
  CHECK(setup.chunk_state(first + 3) == format::kChunkFreeDirty);
  // The rest in a second claim, where the first ended.
  claim = setup.allocator->claim_dirty(8);
  REQUIRE(claim);
  CHECK(claim->first_chunk == first + 3);
  CHECK(claim->chunk_count == 2);
  setup.allocator->zero_claim();
  {
    auto txn = setup.journal->begin();
    REQUIRE(setup.allocator->finish_claim(*txn).ok());
    txn->commit();
  }
  CHECK(setup.allocator->free_zero_chunks() == setup.data_chunks());
  CHECK_FALSE(setup.allocator->claim_dirty(8));
  check_rebuilt_index_matches(setup);
}

TEST_CASE("an allocation that takes a claimed chunk cancels the claim's stores and record",
          "[alloc][zeroing]") {
  Setup setup(64 * kMiB);
  uint64_t first = setup.layout.metadata_chunks;
  BlockRun filler = setup.chunks(setup.data_chunks() - 4);
  BlockRun a = setup.chunks(4);
  REQUIRE(chunk_of(a) == first + setup.data_chunks() - 4);
  setup.release(a);
  auto claim = setup.allocator->claim_dirty(4);
  REQUIRE(claim);
  // The only free space is the claim: the allocation takes it, and the file
  // writes into it before the zeroer gets to store.
  BlockRun taken = setup.chunks(2);
  REQUIRE(chunk_of(taken) == claim->first_chunk);
  std::memset(setup.block(taken.region_block), 0x77, 2 * kChunkSize);
  setup.allocator->zero_claim();
  CHECK(setup.block(taken.region_block)[12345] == std::byte{0x77});
  CHECK(setup.block(taken.region_block + kBlocksPerChunk)[99] == std::byte{0x77});
  auto txn = setup.journal->begin();
  auto recorded = setup.allocator->finish_claim(*txn);
  REQUIRE(recorded.ok());
  CHECK(recorded.value() == 0);
  txn->commit();
  CHECK(setup.chunk_state(claim->first_chunk + 2) == format::kChunkFreeDirty);
  CHECK(setup.chunk_state(claim->first_chunk + 3) == format::kChunkFreeDirty);
  (void)filler;
}

TEST_CASE("allocate_chunks prefers the smallest free run that fits", "[alloc]") {
  Setup setup(256 * kMiB);
  BlockRun a = setup.chunks(4);
  BlockRun b = setup.chunks(2);
  BlockRun c = setup.chunks(3);
  BlockRun d = setup.chunks(1);
  (void)a;
  (void)d;
  setup.release(b);   // a hole of 2 chunks
  setup.release(c);   // merges with it: a hole of 5
  setup.zero_free();  // known zero, like the space after d
  BlockRun e = setup.chunks(3);
  CHECK(e.region_block == b.region_block);  // in the hole, not after d
  BlockRun f = setup.chunks(2);
  CHECK(f.region_block == e.region_block + e.block_count);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("a run larger than free space returns the largest run", "[alloc]") {
  Setup setup(256 * kMiB);
  const uint64_t data = setup.data_chunks();
  BlockRun hole = setup.chunks(10);
  setup.chunks(1);  // keeps the hole apart from the rest
  setup.release(hole);
  const uint64_t rest = data - 11;
  auto txn = setup.journal->begin();
  auto run = setup.allocator->allocate_chunks(*txn, data * 2, 1);
  REQUIRE(run.ok());
  CHECK(run->block_count == rest * kBlocksPerChunk);
  CHECK(run->region_block == hole.region_block + 11 * kBlocksPerChunk);
  txn->commit();
  Usage usage = setup.allocator->usage();
  CHECK(usage.free_chunks == 10);
  CHECK(usage.largest_free_run_chunks == 10);
}

TEST_CASE("allocations past the last free chunk fail with ENOSPC", "[alloc]") {
  Setup setup(16 * kMiB);
  setup.chunks(setup.data_chunks());
  CHECK(setup.allocator->usage().free_blocks == 0);
  auto txn = setup.journal->begin();
  auto chunks = setup.allocator->allocate_chunks(*txn, 1, 1);
  REQUIRE_FALSE(chunks.ok());
  CHECK(chunks.error().code() == ENOSPC);
  auto blocks = setup.allocator->allocate_blocks(*txn, 1);
  REQUIRE_FALSE(blocks.ok());
  CHECK(blocks.error().code() == ENOSPC);
  auto zero = setup.allocator->allocate_chunks(*txn, 0, 1);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().code() == EINVAL);
}

TEST_CASE("freed chunks coalesce and the rebuilt index equals the live one", "[alloc]") {
  Setup setup(256 * kMiB);
  const Usage fresh = setup.allocator->usage();
  std::vector<BlockRun> runs;
  for (uint64_t size : {3, 1, 4, 1, 5, 9, 2, 6}) runs.push_back(setup.chunks(size));
  check_rebuilt_index_matches(setup);
  // Free every other run first (no neighbours to merge with), then the rest.
  for (size_t i = 0; i < runs.size(); i += 2) setup.release(runs[i]);
  check_rebuilt_index_matches(setup);
  Usage holes = setup.allocator->usage();
  CHECK(holes.largest_free_run_chunks == fresh.largest_free_run_chunks - 31);  // the tail
  for (size_t i = 1; i < runs.size(); i += 2) setup.release(runs[i]);
  Usage after = setup.allocator->usage();
  check_usage_equal(after, fresh);
  check_rebuilt_index_matches(setup);
  for (const BlockRun& run : runs) {
    for (uint64_t chunk = chunk_of(run); chunk < chunk_of(run) + run.block_count / kBlocksPerChunk; ++chunk) {
      CHECK(setup.chunk_state(chunk) == format::kChunkFreeDirty);
    }
  }
}

TEST_CASE("freed chunks are reusable only after the transaction commits", "[alloc]") {
  Setup setup(16 * kMiB);
  BlockRun all = setup.chunks(setup.data_chunks());
  auto txn = setup.journal->begin();
  REQUIRE(setup.allocator->free(*txn, all).ok());
  auto again = setup.allocator->allocate_chunks(*txn, 1, 1);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code() == ENOSPC);
  txn->commit();
  CHECK(setup.allocator->usage().free_chunks == setup.data_chunks());
}

TEST_CASE("allocate_blocks packs small runs into one split chunk", "[alloc]") {
  Setup setup(256 * kMiB);
  const Usage fresh = setup.allocator->usage();
  BlockRun a = setup.blocks(1);
  BlockRun b = setup.blocks(2);
  BlockRun c = setup.blocks(3);
  CHECK(chunk_of(a) == chunk_of(b));
  CHECK(chunk_of(b) == chunk_of(c));
  CHECK(a.region_block % kBlocksPerChunk == 1);  // block 0 holds the header
  CHECK(b.region_block == a.region_block + 1);
  CHECK(c.region_block == b.region_block + 2);
  CHECK(a.block_count == 1);
  CHECK(b.block_count == 2);
  CHECK(c.block_count == 3);
  // Small files come from the top of the region.
  CHECK(chunk_of(a) == setup.layout.chunk_count - 2);
  CHECK(setup.chunk_state(chunk_of(a)) == format::kChunkSplit);
  const format::SplitHeader& header = setup.split_header(chunk_of(a));
  CHECK(format::split_header_valid(header, chunk_of(a)));
  CHECK(header.used_blocks == 7);
  Usage usage = setup.allocator->usage();
  CHECK(usage.split_chunks == 1);
  CHECK(usage.free_chunks == fresh.free_chunks - 1);
  CHECK(usage.free_blocks == fresh.free_blocks - 7);
  CHECK(setup.allocator->is_allocated(a));
  CHECK(setup.allocator->is_allocated(c));
  check_rebuilt_index_matches(setup);
}

TEST_CASE("allocate_blocks honours the goal block when it is free", "[alloc]") {
  Setup setup(256 * kMiB);
  BlockRun first = setup.blocks(1);
  uint64_t chunk = chunk_of(first);
  uint64_t goal = chunk * kBlocksPerChunk + 100;
  BlockRun at_goal = setup.blocks(4, goal);
  CHECK(at_goal.region_block == goal);
  CHECK(at_goal.block_count == 4);
  // The goal taken: the first free block of a partial chunk instead.
  BlockRun busy = setup.blocks(1, goal);
  CHECK(busy.region_block == first.region_block + 1);
  // A run stops at the next block in use.
  BlockRun up_to = setup.blocks(200, goal - 3);
  CHECK(up_to.region_block == goal - 3);
  CHECK(up_to.block_count == 3);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("allocate_blocks never hands out block 0 of a chunk", "[alloc]") {
  Setup setup(256 * kMiB);
  std::set<uint64_t> chunks;
  auto txn = setup.journal->begin();
  for (uint64_t i = 0; i < kBlocksPerChunk - 1; ++i) {
    auto run = setup.allocator->allocate_blocks(*txn, 1);
    REQUIRE(run.ok());
    CHECK(run->region_block % kBlocksPerChunk != 0);
    chunks.insert(run->region_block / kBlocksPerChunk);
  }
  CHECK(chunks.size() == 1);
  // Block 0 is the header, even when asked for it as the goal.
  uint64_t full = *chunks.begin();
  auto goal_zero = setup.allocator->allocate_blocks(*txn, 1, (full - 1) * kBlocksPerChunk);
  REQUIRE(goal_zero.ok());
  CHECK(goal_zero->region_block % kBlocksPerChunk != 0);
  CHECK(goal_zero->region_block / kBlocksPerChunk == full - 1);  // the next split chunk
  auto header_goal = setup.allocator->allocate_blocks(*txn, 1, (full - 1) * kBlocksPerChunk);
  REQUIRE(header_goal.ok());
  CHECK(header_goal->region_block == goal_zero->region_block + 1);
  txn->commit();
  CHECK(setup.allocator->usage().split_chunks == 2);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("a large block request gets at most one chunk's free blocks", "[alloc]") {
  Setup setup(256 * kMiB);
  BlockRun run = setup.blocks(600);
  CHECK(run.block_count == kBlocksPerChunk - 1);
  CHECK(run.region_block % kBlocksPerChunk == 1);
  CHECK(setup.allocator->usage().split_chunks == 1);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("a split chunk whose blocks are all freed becomes a free chunk", "[alloc]") {
  Setup setup(256 * kMiB);
  const Usage fresh = setup.allocator->usage();
  BlockRun a = setup.blocks(10);
  BlockRun b = setup.blocks(5);
  uint64_t chunk = chunk_of(a);
  setup.release(a);
  CHECK(setup.chunk_state(chunk) == format::kChunkSplit);
  CHECK(setup.allocator->usage().split_chunks == 1);
  check_rebuilt_index_matches(setup);
  setup.release(b);
  CHECK(setup.chunk_state(chunk) == format::kChunkFreeDirty);
  Usage usage = setup.allocator->usage();
  check_usage_equal(usage, fresh);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("a split chunk freed in two steps of one transaction becomes a free chunk", "[alloc]") {
  Setup setup(256 * kMiB);
  const Usage fresh = setup.allocator->usage();
  BlockRun a = setup.blocks(10);
  BlockRun b = setup.blocks(5);
  auto txn = setup.journal->begin();
  REQUIRE(setup.allocator->free(*txn, a).ok());
  REQUIRE(setup.allocator->free(*txn, b).ok());
  txn->commit();
  check_usage_equal(setup.allocator->usage(), fresh);
  check_rebuilt_index_matches(setup);
}

TEST_CASE("freed chunks come back zeroed", "[alloc]") {
  Setup setup(64 * kMiB);
  BlockRun run = setup.chunks(1);
  std::memset(setup.block(run.region_block), 0xab, kChunkSize);
  setup.release(run);
  CHECK(setup.chunk_state(chunk_of(run)) == format::kChunkFreeDirty);
  BlockRun again = setup.chunks(1);
  REQUIRE(again.region_block == run.region_block);
  CHECK(is_zero(setup.block(again.region_block), kChunkSize));
  CHECK(setup.chunk_state(chunk_of(again)) == format::kChunkUsed);
}

TEST_CASE("freed blocks come back zeroed", "[alloc]") {
  Setup setup(64 * kMiB);
  BlockRun keep = setup.blocks(1);  // keeps the chunk split
  BlockRun run = setup.blocks(8);
  std::memset(setup.block(run.region_block), 0xcd, 8 * kBlockSize);
  setup.release(run);
  BlockRun again = setup.blocks(8);
  REQUIRE(again.region_block == run.region_block);
  CHECK(is_zero(setup.block(again.region_block), 8 * kBlockSize));
  (void)keep;
}

TEST_CASE("a split chunk freed whole comes back zeroed as a whole chunk", "[alloc]") {
  Setup setup(16 * kMiB);  // few chunks: the freed one is soon reused
  BlockRun run = setup.blocks(kBlocksPerChunk - 1);
  uint64_t chunk = chunk_of(run);
  std::memset(setup.block(run.region_block), 0xef, run.block_count * kBlockSize);
  setup.release(run);
  // Take every chunk: the former split chunk is among them.
  BlockRun all = setup.chunks(setup.data_chunks());
  REQUIRE(all.block_count == setup.data_chunks() * kBlocksPerChunk);
  CHECK(is_zero(setup.block(chunk * kBlocksPerChunk), kChunkSize));
}

TEST_CASE("blocks freed by a transaction are not reused by it", "[alloc]") {
  Setup setup(64 * kMiB);
  BlockRun a = setup.blocks(4);
  BlockRun b = setup.blocks(1);
  std::memset(setup.block(a.region_block), 0x11, 4 * kBlockSize);
  auto txn = setup.journal->begin();
  REQUIRE(setup.allocator->free(*txn, a).ok());
  auto next = setup.allocator->allocate_blocks(*txn, 4, a.region_block);
  REQUIRE(next.ok());
  CHECK(chunk_of(next.value()) != chunk_of(a));
  txn->abort();
  // The aborted free gave the data back intact.
  CHECK(setup.allocator->is_allocated(a));
  std::vector<std::byte> expected(4 * kBlockSize, std::byte{0x11});
  CHECK(std::memcmp(setup.block(a.region_block), expected.data(), expected.size()) == 0);
  (void)b;
  check_rebuilt_index_matches(setup);
}

TEST_CASE("freeing what is not allocated fails with EUCLEAN", "[alloc]") {
  Setup setup(64 * kMiB);
  BlockRun chunk_run = setup.chunks(2);
  BlockRun block_run = setup.blocks(3);
  const uint64_t split = chunk_of(block_run);
  const uint64_t free_chunk = chunk_of(chunk_run) + 2;
  const BlockRun bad[] = {
      {static_cast<uint32_t>(free_chunk * kBlocksPerChunk),
       static_cast<uint32_t>(kBlocksPerChunk)},                                      // free chunk
      {static_cast<uint32_t>(split * kBlocksPerChunk), 1},                           // split header
      {block_run.region_block, block_run.block_count + 1},                           // runs past
      {static_cast<uint32_t>(block_run.region_block + 3), 1},                        // free block
      {chunk_run.region_block + 1, static_cast<uint32_t>(kBlocksPerChunk)},          // part of a chunk
      {chunk_run.region_block, static_cast<uint32_t>(3 * kBlocksPerChunk)},          // past the run
      {0, 1},                                                                        // superblock
      {static_cast<uint32_t>((setup.layout.chunk_count - 1) * kBlocksPerChunk), 1},  // backup chunk
      {chunk_run.region_block, 0},                                                   // empty
  };
  const Usage before = setup.allocator->usage();
  for (const BlockRun& run : bad) {
    CAPTURE(run.region_block, run.block_count);
    auto txn = setup.journal->begin();
    auto result = setup.allocator->free(*txn, run);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code() == EUCLEAN);
  }
  check_usage_equal(setup.allocator->usage(), before);

  // Freeing twice: the second is refused.
  setup.release(block_run);
  auto txn = setup.journal->begin();
  auto twice = setup.allocator->free(*txn, block_run);
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().code() == EUCLEAN);
}

TEST_CASE("an aborted transaction leaves DRAM and region as they were", "[alloc]") {
  Setup setup(256 * kMiB);
  BlockRun chunks = setup.chunks(3);
  BlockRun small = setup.blocks(6);
  const Usage before = setup.allocator->usage();
  const std::vector<std::byte> map_before(
      setup.region->base() + setup.layout.chunk_map_offset,
      setup.region->base() + setup.layout.chunk_map_offset + setup.layout.chunk_map_blocks * kBlockSize);
  const format::SplitHeader header_before = setup.split_header(chunk_of(small));
  {
    auto txn = setup.journal->begin();
    REQUIRE(setup.allocator->allocate_chunks(*txn, 7, 1).ok());
    REQUIRE(setup.allocator->allocate_blocks(*txn, 20).ok());
    REQUIRE(setup.allocator->allocate_blocks(*txn, kBlocksPerChunk).ok());  // fills the split chunk
    REQUIRE(setup.allocator->allocate_blocks(*txn, kBlocksPerChunk).ok());  // splits another
    CHECK(setup.allocator->usage().split_chunks == 2);
    REQUIRE(setup.allocator->free(*txn, chunks).ok());
    REQUIRE(setup.allocator->free(*txn, small).ok());
    txn->abort();
  }
  check_usage_equal(setup.allocator->usage(), before);
  const std::vector<std::byte> map_after(
      setup.region->base() + setup.layout.chunk_map_offset,
      setup.region->base() + setup.layout.chunk_map_offset + setup.layout.chunk_map_blocks * kBlockSize);
  CHECK(map_after == map_before);
  CHECK(std::memcmp(&setup.split_header(chunk_of(small)), &header_before, sizeof header_before) == 0);
  CHECK(setup.allocator->is_allocated(chunks));
  CHECK(setup.allocator->is_allocated(small));
  check_rebuilt_index_matches(setup);

  // And the allocator carries on: the same requests succeed and commit.
  auto txn = setup.journal->begin();
  REQUIRE(setup.allocator->allocate_chunks(*txn, 7, 1).ok());
  REQUIRE(setup.allocator->allocate_blocks(*txn, 20).ok());
  txn->commit();
  check_rebuilt_index_matches(setup);
}

TEST_CASE("in_data_area covers data chunks only", "[alloc]") {
  Setup setup(64 * kMiB);
  const uint32_t first = static_cast<uint32_t>(setup.layout.metadata_chunks * kBlocksPerChunk);
  const uint32_t end = static_cast<uint32_t>((setup.layout.chunk_count - 1) * kBlocksPerChunk);
  CHECK(setup.allocator->in_data_area({first, 1}));
  CHECK(setup.allocator->in_data_area({first, end - first}));
  CHECK_FALSE(setup.allocator->in_data_area({first - 1, 1}));
  CHECK_FALSE(setup.allocator->in_data_area({end - 1, 2}));
  CHECK_FALSE(setup.allocator->in_data_area({first, 0}));
  CHECK_FALSE(setup.allocator->is_allocated({first, 1}));
}

TEST_CASE("a damaged chunk map or split header fails open with EUCLEAN", "[alloc]") {
  Setup setup(64 * kMiB);
  SECTION("chunk map checksum") {
    setup.region->base()[setup.layout.chunk_map_offset + 100] ^= std::byte{1};
    auto opened = Allocator::open(*setup.region, setup.layout);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code() == EUCLEAN);
  }
  SECTION("split header checksum") {
    BlockRun run = setup.blocks(2);
    setup.region->base()[chunk_of(run) * kChunkSize + 0x10] ^= std::byte{1};
    auto opened = Allocator::open(*setup.region, setup.layout);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code() == EUCLEAN);
  }
  SECTION("a metadata chunk marked free") {
    auto* map =
        reinterpret_cast<format::ChunkMapBlock*>(setup.region->base() + setup.layout.chunk_map_offset);
    map->state[0] = format::kChunkFreeZero;
    format::seal(*map);
    auto opened = Allocator::open(*setup.region, setup.layout);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code() == EUCLEAN);
  }
}

TEST_CASE("a known-zero chunk handed out by an aborted transaction comes back dirty", "[alloc]") {
  Setup setup(64 * kMiB, /*data_known_zero=*/true, /*with_filter=*/true);
  const Usage before = setup.allocator->usage();
  SECTION("whole chunks") {
    uint64_t first = 0;
    {
      auto txn = setup.journal->begin();
      auto run = setup.allocator->allocate_chunks(*txn, 2, 1);
      REQUIRE(run.ok());
      first = chunk_of(run.value());
      // File data is not journaled: it stays when the transaction aborts.
      std::memset(setup.block(run->region_block), 0x77, 2 * kChunkSize);
      txn->abort();
    }
    CHECK(setup.chunk_state(first) == format::kChunkFreeDirty);
    CHECK(setup.chunk_state(first + 1) == format::kChunkFreeDirty);
    CHECK(setup.chunk_state(first + 2) == format::kChunkFreeZero);
    check_usage_equal(setup.allocator->usage(), before);
    BlockRun again = setup.chunks(2);
    REQUIRE(chunk_of(again) == first);
    CHECK(is_zero(setup.block(again.region_block), 2 * kChunkSize));
  }
  SECTION("a chunk split for blocks") {
    uint64_t chunk = 0;
    {
      auto txn = setup.journal->begin();
      auto run = setup.allocator->allocate_blocks(*txn, 3);
      REQUIRE(run.ok());
      chunk = chunk_of(run.value());
      std::memset(setup.block(run->region_block), 0x66, 3 * kBlockSize);
      txn->abort();
    }
    CHECK(setup.chunk_state(chunk) == format::kChunkFreeDirty);
    check_usage_equal(setup.allocator->usage(), before);
    check_rebuilt_index_matches(setup);
  }
}

TEST_CASE("recovery turns known-zero chunks a crashed transaction took into dirty ones", "[alloc]") {
  Setup setup(64 * kMiB, /*data_known_zero=*/true, /*with_filter=*/true);
  std::vector<std::byte> crashed;
  uint64_t first = 0;
  {
    auto txn = setup.journal->begin();
    auto run = setup.allocator->allocate_chunks(*txn, 1, 1);
    REQUIRE(run.ok());
    first = chunk_of(run.value());
    std::memset(setup.block(run->region_block), 0x55, kChunkSize);
    crashed.assign(setup.region->base(), setup.region->base() + setup.region->size());
    txn->commit();
  }
  std::memcpy(setup.region->base(), crashed.data(), crashed.size());
  auto journal = setup.open_journal(/*with_filter=*/true);
  auto recovery = journal->recover();
  REQUIRE(recovery.ok());
  CHECK(recovery->records >= 1);
  CHECK(setup.chunk_state(first) == format::kChunkFreeDirty);
  auto rebuilt = setup.open_allocator();
  CHECK(rebuilt->usage().free_chunks == setup.data_chunks());
}

TEST_CASE("adjust_undo_image only rewrites known-zero chunks no longer free", "[alloc]") {
  Setup setup(64 * kMiB);
  const format::Layout& layout = setup.layout;
  format::ChunkMapBlock old_map{};
  old_map.tag = format::kChunkMapTag;
  old_map.version = 1;
  old_map.state[2] = format::kChunkFreeZero;   // taken since: becomes dirty
  old_map.state[3] = format::kChunkFreeZero;   // still free: stays zero
  old_map.state[4] = format::kChunkFreeDirty;  // taken since: stays dirty
  old_map.state[5] = format::kChunkUsed;       // freed since: stays used
  old_map.state[6] = format::kChunkFreeZero;   // split since: becomes dirty
  format::seal(old_map);
  format::ChunkMapBlock now_map = old_map;
  now_map.state[2] = format::kChunkUsed;
  now_map.state[4] = format::kChunkUsed;
  now_map.state[5] = format::kChunkFreeDirty;
  now_map.state[6] = format::kChunkSplit;
  format::seal(now_map);

  format::ChunkMapBlock image = old_map;
  Allocator::adjust_undo_image(layout, layout.chunk_map_offset, reinterpret_cast<std::byte*>(&image),
                               sizeof image, reinterpret_cast<const std::byte*>(&now_map));
  CHECK(image.state[2] == format::kChunkFreeDirty);
  CHECK(image.state[3] == format::kChunkFreeZero);
  CHECK(image.state[4] == format::kChunkFreeDirty);
  CHECK(image.state[5] == format::kChunkUsed);
  CHECK(image.state[6] == format::kChunkFreeDirty);
  CHECK(format::checksum_ok(image));

  // Anything that is not a whole chunk-map block is left alone.
  for (uint64_t target : {layout.chunk_map_offset + 8, layout.inode_table_offset, layout.data_offset}) {
    CAPTURE(target);
    format::ChunkMapBlock untouched = old_map;
    Allocator::adjust_undo_image(layout, target, reinterpret_cast<std::byte*>(&untouched), sizeof untouched,
                                 reinterpret_cast<const std::byte*>(&now_map));
    CHECK(std::memcmp(&untouched, &old_map, sizeof old_map) == 0);
  }
  format::ChunkMapBlock partial = old_map;
  Allocator::adjust_undo_image(layout, layout.chunk_map_offset, reinterpret_cast<std::byte*>(&partial), 64,
                               reinterpret_cast<const std::byte*>(&now_map));
  CHECK(std::memcmp(&partial, &old_map, sizeof old_map) == 0);
}

// ---------------------------------------------------------------------------
// Values changed in the region under the allocator. The region is shared
// with processes that may write any byte at any time: the allocator copies
// what it reads once, validates the copy and uses only that; chunk states
// come from DRAM after open.

namespace {

format::ChunkMapBlock* region_map_block(Setup& setup, uint64_t chunk) {
  return reinterpret_cast<format::ChunkMapBlock*>(setup.region->base() + setup.layout.chunk_map_offset +
                                                  chunk / format::kChunksPerMapBlock * kBlockSize);
}
format::SplitHeader* region_split_header(Setup& setup, uint64_t chunk) {
  return reinterpret_cast<format::SplitHeader*>(setup.region->base() + chunk * kChunkSize);
}

}  // namespace

TEST_CASE("a split header resealed full under the allocator gives EUCLEAN, not an abort", "[alloc][bounds]") {
  // Old code trusted the bitmap to have the free block m_partial counted and
  // called std::abort() (the daemon died) when it had none.
  Setup setup(64 * kMiB);
  BlockRun run = setup.blocks(2);
  uint64_t chunk = chunk_of(run);
  format::SplitHeader* header = region_split_header(setup, chunk);
  for (auto& word : header->bitmap) word = ~uint64_t{0};
  header->used_blocks = kBlocksPerChunk;
  format::seal(*header);
  Usage before = setup.allocator->usage();
  {
    auto txn = setup.journal->begin();
    auto more = setup.allocator->allocate_blocks(*txn, 1, run.region_block + 2);
    REQUIRE_FALSE(more.ok());
    CHECK(more.error().code() == EUCLEAN);
    auto any = setup.allocator->allocate_blocks(*txn, 1);
    REQUIRE_FALSE(any.ok());
    CHECK(any.error().code() == EUCLEAN);
  }
  check_usage_equal(setup.allocator->usage(), before);
}

TEST_CASE("a split header changed under the allocator cannot make a free underflow", "[alloc][bounds]") {
  // Old code checked the bits in the region, then read used_blocks again
  // and subtracted: used_blocks 1 with three bits set became 65535, sealed
  // into a header that the next open refused.
  Setup setup(64 * kMiB);
  BlockRun run = setup.blocks(2);
  uint64_t chunk = chunk_of(run);
  format::SplitHeader* header = region_split_header(setup, chunk);
  SECTION("used_blocks changed, checksum left stale") { header->used_blocks = 1; }
  SECTION("used_blocks changed and resealed") {
    header->used_blocks = 1;
    format::seal(*header);
  }
  SECTION("a valid header with other bits than the allocator counts") {
    header->bitmap[0] = 0x7;  // blocks 0..2, as before, plus one more in use
    header->bitmap[1] = 1;
    header->used_blocks = 4;
    format::seal(*header);
  }
  Usage before = setup.allocator->usage();
  const format::SplitHeader changed = *header;
  {
    auto txn = setup.journal->begin();
    auto freed = setup.allocator->free(*txn, run);
    REQUIRE_FALSE(freed.ok());
    CHECK(freed.error().code() == EUCLEAN);
  }
  CHECK_FALSE(setup.allocator->is_allocated(run));
  check_usage_equal(setup.allocator->usage(), before);
  // Nothing was written over the changed header.
  CHECK(std::memcmp(header, &changed, sizeof changed) == 0);
}

TEST_CASE("a chunk state changed to known zero under the allocator does not skip zeroing",
          "[alloc][bounds]") {
  // Old code read the state from the region when handing a chunk out: a
  // dirty chunk marked known zero was handed out with its old contents.
  Setup setup(64 * kMiB, /*data_known_zero=*/false);
  uint64_t first = setup.layout.metadata_chunks;
  std::memset(setup.block(first * kBlocksPerChunk), 0xee, kChunkSize);
  format::ChunkMapBlock* map = region_map_block(setup, first);
  map->state[first % format::kChunksPerMapBlock] = format::kChunkFreeZero;
  format::seal(*map);
  BlockRun run = setup.chunks(1);
  REQUIRE(chunk_of(run) == first);
  CHECK(is_zero(setup.block(run.region_block), kChunkSize));
}

TEST_CASE("a chunk-map byte changed under the allocator is never sealed into the map", "[alloc][bounds]") {
  // Old code changed the states it meant to in place and resealed the whole
  // block, so a stray byte in it became a "valid" unknown state that failed
  // the next open.
  Setup setup(64 * kMiB);
  uint64_t first = setup.layout.metadata_chunks;
  uint64_t victim = first + 5;
  format::ChunkMapBlock* map = region_map_block(setup, victim);
  map->state[victim % format::kChunksPerMapBlock] = 200;
  BlockRun run = setup.chunks(1);
  REQUIRE(chunk_of(run) == first);
  CHECK(setup.chunk_state(victim) == format::kChunkFreeZero);
  CHECK(setup.chunk_state(first) == format::kChunkUsed);
  check_rebuilt_index_matches(setup);
}

namespace {

#if defined(__x86_64__)
// Changes a region byte right after the code under test has read it a given
// number of times, deterministically: the page holding it is made
// inaccessible, every access faults and is single-stepped (trap flag), and
// an access that faults at the byte covers it (the byte is placed at a page
// start, so every access that covers it faults there). A process writing the
// region at any time could strike at the same point by luck.
class ChangeAfterReads {
 public:
  // Copies the region's non-zero pages into private memory shifted so that
  // the byte at region offset `target` starts a page; view() is a region over
  // the copy.
  ChangeAfterReads(const region::Region& region, uint64_t target, uint8_t new_value, int reads) {
    const uint64_t page = 4096;
    m_shift = (page - target % page) % page;
    m_bytes = region.size() + 2 * page;
    void* mapped =
        ::mmap(nullptr, m_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(mapped != MAP_FAILED);
    m_mapping = static_cast<std::byte*>(mapped);
    std::byte* base = m_mapping + m_shift;
    for (uint64_t at = 0; at < region.size(); at += page) {
      if (!is_zero(region.base() + at, page)) std::memcpy(base + at, region.base() + at, page);
    }
    m_view = std::make_unique<testing::MemoryView>(base, region.size());
    s_target = base + target;
    s_page = s_target;  // page aligned by the shift
    s_new_value = std::byte{new_value};
    s_covered = false;
    s_changed = false;
    s_reads_left = reads;
  }
  ~ChangeAfterReads() {
    disarm();
    ::munmap(m_mapping, m_bytes);
  }
  ChangeAfterReads(const ChangeAfterReads&) = delete;
  ChangeAfterReads& operator=(const ChangeAfterReads&) = delete;

  region::Region& view() { return *m_view; }

  void arm() {
    struct sigaction action {};
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    action.sa_sigaction = on_fault;
    REQUIRE(::sigaction(SIGSEGV, &action, &m_old_segv) == 0);
    action.sa_sigaction = on_trap;
    REQUIRE(::sigaction(SIGTRAP, &action, &m_old_trap) == 0);
    REQUIRE(::mprotect(s_page, 4096, PROT_NONE) == 0);
    m_armed = true;
  }
  void disarm() {
    if (!m_armed) return;
    ::mprotect(s_page, 4096, PROT_READ | PROT_WRITE);
    ::sigaction(SIGSEGV, &m_old_segv, nullptr);
    ::sigaction(SIGTRAP, &m_old_trap, nullptr);
    m_armed = false;
  }
  static bool changed() { return s_changed; }

 private:
  static constexpr greg_t kTrapFlag = 0x100;

  static void on_fault(int /*signal*/, siginfo_t* info, void* context) {
    auto* at = static_cast<std::byte*>(info->si_addr);
    if (at < s_page || at >= s_page + 4096) {
      ::signal(SIGSEGV, SIG_DFL);  // a real crash: let it happen
      return;
    }
    ::mprotect(s_page, 4096, PROT_READ | PROT_WRITE);
    s_covered = at == s_target;
    static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_EFL] |= kTrapFlag;
  }
  static void on_trap(int /*signal*/, siginfo_t* /*info*/, void* context) {
    static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_EFL] &= ~kTrapFlag;
    if (s_covered && !s_changed) s_reads_left = s_reads_left - 1;
    if (s_covered && !s_changed && s_reads_left == 0) {
      *s_target = s_new_value;  // the page stays accessible: nothing more to watch
      s_changed = true;
      return;
    }
    if (!s_changed) ::mprotect(s_page, 4096, PROT_NONE);
  }

  static inline std::byte* s_target = nullptr;
  static inline std::byte* s_page = nullptr;
  static inline std::byte s_new_value{};
  static inline volatile sig_atomic_t s_covered = 0;
  static inline volatile sig_atomic_t s_changed = 0;
  static inline volatile sig_atomic_t s_reads_left = 0;
  std::byte* m_mapping = nullptr;
  uint64_t m_bytes = 0;
  uint64_t m_shift = 0;
  std::unique_ptr<testing::MemoryView> m_view;
  struct sigaction m_old_segv {};
  struct sigaction m_old_trap {};
  bool m_armed = false;
};
#endif

}  // namespace

namespace {

#if defined(__x86_64__)
// Opens the allocator on copies of `setup`'s region where the byte at
// `target` becomes `new_value` right after open's k-th read of it, for k =
// 1..4 (every point between reads where a writer could strike). Each open
// must fail with EUCLEAN or count exactly what the region held before.
void open_changing_after_each_read(Setup& setup, uint64_t target, uint8_t new_value) {
  Usage expected = setup.allocator->usage();
  for (int reads = 1; reads <= 4; ++reads) {
    ChangeAfterReads change(*setup.region, target, new_value, reads);
    change.arm();
    auto opened = Allocator::open(change.view(), setup.layout);
    change.disarm();
    INFO("changed after read " << reads << ": "
                               << (ChangeAfterReads::changed() ? "yes" : "never read so often"));
    if (opened.ok()) {
      check_usage_equal(opened.value()->usage(), expected);
    } else {
      CHECK(opened.error().code() == EUCLEAN);
    }
  }
}
#endif

}  // namespace

TEST_CASE("open uses the chunk state it validated, not one changed after", "[alloc][bounds]") {
#if defined(__x86_64__)
  // Old code validated the chunk-map block in the region (the checksum
  // reads each state twice, the range check once) and then read each state
  // again: a used chunk, holding a file's data, changed to FreeZero after
  // the checksum was counted free and could be handed out again.
  Setup setup(64 * kMiB);
  BlockRun run = setup.chunks(2);
  uint64_t chunk = chunk_of(run) + 1;
  uint64_t target = setup.layout.chunk_map_offset + chunk / format::kChunksPerMapBlock * kBlockSize +
                    offsetof(format::ChunkMapBlock, state) + chunk % format::kChunksPerMapBlock;
  open_changing_after_each_read(setup, target, format::kChunkFreeZero);
#else
  WARN("needs x86-64 (single-stepping through the trap flag)");
#endif
}

TEST_CASE("open uses the split header it validated, not one changed after", "[alloc][bounds]") {
#if defined(__x86_64__)
  // Old code validated the split header in the region (checksum, then the
  // count against the bitmap) and then read used_blocks again: 3 changed to
  // 0xff03 after validation made 512 - used wrap in the uint32 free count.
  Setup setup(64 * kMiB);
  BlockRun run = setup.blocks(2);
  uint64_t target = chunk_of(run) * kChunkSize + offsetof(format::SplitHeader, used_blocks) + 1;
  open_changing_after_each_read(setup, target, 0xff);
#else
  WARN("needs x86-64 (single-stepping through the trap flag)");
#endif
}
