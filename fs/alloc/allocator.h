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

#include <cstdint>
#include <map>
#include <memory>
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
  // starting at a multiple of `alignment_chunks` when such a run exists
  // (the first fit of the smallest run that can hold it), else the largest
  // run there is. The caller loops for the rest. Errors: ENOSPC.
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
};

}  // namespace pkfs::alloc
