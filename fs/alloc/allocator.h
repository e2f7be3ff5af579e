// fs/alloc/allocator.h: space inside a region.
//
// Owns: the chunk map and the split-chunk headers on the region (the truth;
// see FORMAT.md, "Space") and the DRAM index of free space rebuilt from them
// at open. The region is shared with processes that may write it at any
// time, so open copies each chunk-map block and split header once and
// validates the copy; after open the chunk states come from a DRAM copy
// (chunk-map blocks are written whole from it), and a split header is copied
// once per use and checked against the DRAM free count before it is used
// (a mismatch is EUCLEAN, never an abort or an underflow).
//
// Large files get whole 2 MiB chunks, contiguous and aligned; small
// files get 4 KiB blocks packed into split chunks. Hands out only zeroed
// space: chunks not known zero, and every block of a split chunk, are zeroed
// as they are handed out (never when freed: a transaction that frees may
// still abort, and the data must then be intact).
//
// Locking: none of its own. Every call happens inside a journal transaction,
// under core's exclusive lock.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fs/base/result.h"
#include "fs/format/format.h"
#include "fs/journal/journal.h"
#include "fs/region/region.h"

namespace pkfs::alloc {

// A run of region blocks. Chunk runs start and end on chunk boundaries.
struct BlockRun {
  uint32_t region_block = 0;
  uint32_t block_count = 0;
};

struct Usage {
  uint64_t total_blocks = 0;  // data chunks * 512
  uint64_t free_blocks = 0;   // whole free chunks * 512 + free blocks of split chunks
  uint64_t free_chunks = 0;   // whole free chunks
  uint64_t split_chunks = 0;
  uint64_t largest_free_run_chunks = 0;
};

class Allocator {
 public:
  ~Allocator();

  // Rebuilds the free-space index from the chunk map and split headers, each
  // copied out of the region once and validated in the copy.
  // Errors: EUCLEAN naming the chunk-map block or split chunk that is bad.
  static Result<std::unique_ptr<Allocator>> open(region::Region& region, const format::Layout& layout);

  // Writes the chunk map of a fresh region: metadata chunks and the backup
  // chunk kChunkMeta, data chunks free (zero when `data_known_zero`).
  static void format(region::Region& region, const format::Layout& layout, bool data_known_zero);

  // The journal::UndoFilter for this layout's chunk map: in an undo image of
  // a chunk-map block, a chunk recorded "free, known zero" whose state in
  // place is no longer free becomes "free, dirty" (the transaction that
  // took it may have written data to it), and the image is resealed.
  static void adjust_undo_image(const format::Layout& layout, uint64_t target, std::byte* image,
                                uint64_t length, const std::byte* current);

  // Whole chunks for large files: one run of at most `wanted_chunks`,
  // starting at a multiple of `alignment_chunks` when such a run exists,
  // else the largest run there is. The caller loops for the rest. Of the
  // smallest few free runs that can hold it, the one whose start has the
  // fewest dirty chunks (best fit among known-zero space, so a VM starts
  // without zeroing when zeroed space exists; best fit overall when all is
  // equally dirty or zero). Errors: ENOSPC.
  Result<BlockRun> allocate_chunks(journal::Transaction& txn, uint64_t wanted_chunks,
                                   uint64_t alignment_chunks);

  // Whole pages of `page_chunks` chunks for guest RAM: one run of
  // `wanted_pages` pages starting on a page boundary when such a run exists
  // (first fit of the smallest run that can hold it), else the largest
  // aligned run of whole pages there is; never a part of a page. The caller
  // loops for the rest. Errors: ENOSPC when no whole aligned page is free.
  Result<BlockRun> allocate_pages(journal::Transaction& txn, uint64_t wanted_pages, uint64_t page_chunks);

  // Free whole pages of `page_chunks` chunks that start on a page boundary,
  // and the longest run of them (what one extent can get).
  struct PageUsage {
    uint64_t free_pages = 0;
    uint64_t largest_run_pages = 0;
  };
  PageUsage page_usage(uint64_t page_chunks) const;

  // Blocks for small files and metadata blocks: one run of at most
  // `wanted_blocks` inside one split chunk, at `goal_block` if it is free
  // (to extend a file contiguously), else in the goal's split chunk if it
  // has a free block (to keep related files together), else in the lowest
  // split chunk with room, else in a newly split chunk (the highest free
  // chunk of the small-file area if it has one, else the region's highest
  // free chunk). Errors: ENOSPC.
  Result<BlockRun> allocate_blocks(journal::Transaction& txn, uint64_t wanted_blocks,
                                   uint64_t goal_block = 0);

  // Frees a run handed out before: whole chunks (they become dirty) or blocks
  // of one split chunk. Freed space is reusable once the transaction commits.
  // Errors: EUCLEAN if the run is not wholly in use, or if its split header
  // in the region is damaged or no longer matches the DRAM free count.
  Result<void> free(journal::Transaction& txn, BlockRun run);

  // True when every block of `run` is in use, as a file extent must be.
  // A split header that fails validation counts as not in use.
  bool is_allocated(BlockRun run) const;
  // True when a run lies wholly in data chunks of this region.
  bool in_data_area(BlockRun run) const;

  Usage usage() const;
  // Whole free chunks known zero (the rest of usage().free_chunks is dirty:
  // zeroed when handed out, or by the background zeroer first). Counts the
  // DRAM states: O(chunks), for reports, not for hot paths.
  uint64_t free_zero_chunks() const;

  // Background zeroing: a zeroer thread clears free, dirty chunks without
  // core's lock, one claim at a time, and only one zeroer exists:
  //   claim_dirty(max)   (under the lock) picks a run of free dirty chunks;
  //   zero_claim()       (without it) zeroes the run and persists the zeroes;
  //   finish_claim(txn)  (under the lock) records the run known zero, unless
  //                      an allocation took any of it meanwhile.
  // An allocation that takes a claimed chunk first waits for zero_claim's
  // stores to end (or stops them from starting), so no late zero lands in a
  // file's data, and the claim is dropped: its chunks stay dirty on the
  // region, never falsely zero. A crash anywhere leaves them dirty too.
  struct Claim {
    uint64_t first_chunk = 0;
    uint64_t chunk_count = 0;
  };
  std::optional<Claim> claim_dirty(uint64_t max_chunks);
  // Zeroes the claim a chunk at a time on the calling thread, stopping
  // early if an allocation takes it.
  void zero_claim();
  // Returns the chunks recorded known zero (0 when the claim was taken).
  Result<uint64_t> finish_claim(journal::Transaction& txn);
  // Makes zero_claim stop after the chunk it is storing and finish_claim
  // record nothing. Any thread, any time, no lock: for a zeroer being
  // stopped.
  void cancel_claim() { m_claim.taken = true; }

  struct FreeRun;  // DRAM index node, defined in allocator.cpp

 private:
  struct Index;
  Allocator(region::Region& region, const format::Layout& layout);

  uint8_t chunk_state(uint64_t chunk) const { return m_states[chunk]; }
  // Sets the DRAM states and writes each chunk-map block they touch whole,
  // built from DRAM (so bytes changed in the region are never resealed).
  Result<void> set_chunk_states(journal::Transaction& txn, uint64_t first, uint64_t count, uint8_t state);
  // Free blocks DRAM expects in split chunk `chunk`: its m_partial count plus
  // the blocks the open transaction freed in it.
  uint64_t expected_free_blocks(uint64_t chunk) const;
  // A private copy of the header of split chunk `chunk`, read once and
  // validated, whose free blocks must number `expected_free`.
  // Errors: EUCLEAN naming the chunk.
  Result<format::SplitHeader> read_split_header(uint64_t chunk, uint64_t expected_free) const;
  Result<uint64_t> split_new_chunk(journal::Transaction& txn);
  // Takes free chunks [start, start + count): zeroes what is not known zero,
  // marks them used. The common end of allocate_chunks and allocate_pages.
  Result<BlockRun> take_chunks(journal::Transaction& txn, uint64_t start, uint64_t count);
  // DRAM index edits; pure, no region access.
  void insert_free(uint64_t first, uint64_t count);
  void remove_free(uint64_t first, uint64_t count);
  // Called before chunks [first, first + count) leave the free index: drops
  // an overlapping claim, waiting for its stores to end.
  void take_from_claim(uint64_t first, uint64_t count);
  // Dirty chunks in [first, first + count), counting stops past `limit`.
  uint64_t dirty_chunks(uint64_t first, uint64_t count, uint64_t limit) const;

  region::Region& m_region;
  format::Layout m_layout;
  std::unique_ptr<Index> m_index;
  // State of every chunk the chunk map describes (chunk_map_blocks * 4072;
  // past chunk_count: kChunkMeta), copied at open; the region's chunk map is
  // written from it and never read back while open.
  std::vector<uint8_t> m_states;
  // Split chunks with free blocks -> free block count. Rebuilt at open.
  std::map<uint64_t, uint32_t> m_partial;
  uint64_t m_split_chunks = 0;
  uint64_t m_split_free_blocks = 0;
  uint64_t m_free_chunks = 0;
  // Split chunks the open transaction freed blocks of -> blocks it freed
  // there (m_partial learns them at commit); not used for allocation until
  // it ends.
  std::map<uint64_t, uint64_t> m_freed_in_transaction;

  // The background zeroer's claim. active/run change only under core's
  // lock, from the zeroer's thread. zero_claim stores one chunk at a time
  // under m_claim_stores and stops once `taken` is set, so an allocation
  // that sets it and then takes m_claim_stores waits for one chunk's stores
  // at most.
  struct ActiveClaim {
    bool active = false;
    Claim run;
    std::atomic<bool> taken = false;
    // The zeroer's thread (gettid), raised to normal priority while an
    // allocation waits for its stores: a zeroer at idle priority on a busy
    // machine would otherwise make the allocation wait for idle CPU time.
    pid_t owner_tid = 0;
  } m_claim;
  std::mutex m_claim_stores;
  uint64_t m_zero_cursor = 0;  // where claim_dirty looks next
};

}  // namespace pkfs::alloc
