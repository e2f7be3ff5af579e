// fs/core/data.cpp: file data: extent lists, read, write, truncate and
// fallocate. Data bytes are written in place and are not journaled (as in
// ext4's ordered mode); the extent list, size and allocation are.
//
// Invariants kept here (see FORMAT.md, "Extents"):
// - extents are sorted by file_block and do not overlap;
// - a large extent covers whole chunks at a chunk-aligned file offset; a
//   small extent lies inside one split chunk;
// - bytes past `size` inside allocated blocks are unspecified, so growing a
//   file zeroes [old size, new size) in the blocks it already has.
#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "fs/core/internal.h"

namespace pkfs::core {

using format::Extent;
using format::ExtentBlock;
using format::Inode;
using format::kBlockSize;
using format::kBlocksPerChunk;
using format::kChunkSize;

namespace {

uint64_t extent_end(const Extent& extent) { return extent.file_block + extent.block_count; }

// "1 GiB", "2 MiB", else bytes: for messages about pages.
std::string bytes_text(uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + " GiB";
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

bool is_large(const Extent& extent) {
  return extent.region_block % kBlocksPerChunk == 0 && extent.block_count % kBlocksPerChunk == 0 &&
         extent.file_block % kBlocksPerChunk == 0;
}

// Appends `extent`, merging it into the last one when both are contiguous in
// the file and in the region and of the same kind.
void append_extent(std::vector<Extent>& extents, const Extent& extent, bool large) {
  if (!extents.empty()) {
    Extent& last = extents.back();
    bool contiguous = extent_end(last) == extent.file_block &&
                      uint64_t{last.region_block} + last.block_count == extent.region_block;
    bool same_chunk = !large && !is_large(last) &&
                      last.region_block / kBlocksPerChunk ==
                          (extent.region_block + extent.block_count - 1) / kBlocksPerChunk;
    bool both_large = large && is_large(last);
    if (contiguous && (same_chunk || both_large) &&
        uint64_t{last.block_count} + extent.block_count <= UINT32_MAX) {
      last.block_count += extent.block_count;
      return;
    }
  }
  extents.push_back(extent);
}

// Chunks one allocation may still take in `txn`: each chunk-map block it
// changes costs one 4 KiB undo record, and the journal keeps
// kJournalReserveBytes for the extent and inode records that follow (two
// map blocks' worth of chunks are kept back for a run that straddles
// blocks). Errors: ENOSPC when not even that is left.
Result<uint64_t> affordable_chunks(const journal::Transaction& txn) {
  uint64_t budget =
      txn.journal_bytes_free() > kJournalReserveBytes ? txn.journal_bytes_free() - kJournalReserveBytes : 0;
  uint64_t affordable = (budget / (format::undo_record_bytes(kBlockSize))) * format::kChunksPerMapBlock;
  if (affordable <= format::kChunksPerMapBlock * 2)
    return Error(ENOSPC, "allocation too large for one transaction");
  return affordable - 2 * format::kChunksPerMapBlock;
}

}  // namespace

// Untrusted input, bounded before it is walked (see FORMAT.md, "Bounds on
// damaged regions"): extent_count by what the region can hold, the chain by
// the blocks that count needs, every extent in the data area and strictly
// after the one before it, so a chain that comes back to itself fails at its
// first repeated extent. Each chain block is copied out of the region once
// and only the copy is validated and used; so is the inode.
Result<std::vector<Extent>> Filesystem::load_extents(const Inode& given) const {
  const Inode inode = copy_from_region<Inode>(reinterpret_cast<const std::byte*>(&given));
  std::string where = "inode " + std::to_string(inode.ino);
  const uint64_t total = inode.extent_count;
  if (total > format::max_extent_count(m_layout)) {
    return Error(EUCLEAN, where + ": extent_count " + std::to_string(total) + " is more than the region's " +
                              std::to_string(format::max_extent_count(m_layout)) + " data blocks could hold");
  }
  const uint64_t data_area_blocks = m_layout.usable_bytes / kBlockSize;
  std::vector<Extent> extents;
  extents.reserve(std::min<uint64_t>(total, 4096));
  uint64_t previous_end = 0;
  uint64_t data_blocks = 0;
  auto take = [&](const Extent& extent) -> Result<void> {
    if (extent.block_count == 0 || extent.file_block < previous_end ||
        extent.file_block > format::kMaxFileBytes / kBlockSize ||
        !m_allocator->in_data_area({extent.region_block, extent.block_count})) {
      return Error(EUCLEAN, where + ": extent " + std::to_string(extents.size()) + " at file block " +
                                std::to_string(extent.file_block) +
                                " is empty, out of order, overlaps the one before or leaves the data area");
    }
    data_blocks += extent.block_count;
    if (data_blocks > data_area_blocks)
      return Error(EUCLEAN, where + ": extents cover more blocks than the data area has");
    previous_end = extent_end(extent);
    extents.push_back(extent);
    return success();
  };
  const uint64_t inline_count = std::min<uint64_t>(total, format::kInlineExtents);
  for (uint64_t i = 0; i < inline_count; ++i) TRY(take(inode.extents[i]));
  const uint64_t chain_blocks = format::extent_chain_blocks(total);
  uint64_t next = inode.extent_block;
  for (uint64_t step = 0; step < chain_blocks; ++step) {
    if (next == 0 || next % kBlockSize != 0 || next / kBlockSize > UINT32_MAX ||
        !m_allocator->in_data_area({static_cast<uint32_t>(next / kBlockSize), 1})) {
      return Error(EUCLEAN, where + ": extent chain ends early or leaves the data area");
    }
    const auto block = copy_from_region<ExtentBlock>(m_region->base() + next);
    std::string what;
    if (!format::extent_block_valid(block, &what) || block.owner_ino != inode.ino) {
      return Error(EUCLEAN, where + ": extent block at " + std::to_string(next) + ": " +
                                (what.empty() ? "owned by another inode" : what));
    }
    // The writer fills every block but the last; the last ends the chain.
    const bool last = step + 1 == chain_blocks;
    const uint64_t expected = last ? total - extents.size() : format::kExtentsPerBlock;
    if (block.count != expected || (last && block.next != 0)) {
      return Error(EUCLEAN, where + ": extent block at " + std::to_string(next) + " holds " +
                                std::to_string(block.count) + " extents" +
                                (last && block.next != 0 ? " and a next block" : "") +
                                " where extent_count " + std::to_string(total) + " needs " +
                                std::to_string(expected) + (last ? " and the end of the chain" : ""));
    }
    for (uint32_t i = 0; i < block.count; ++i) TRY(take(block.extents[i]));
    next = block.next;
  }
  return extents;
}

// The region offsets of the inode's extent blocks, in chain order, walked
// as load_extents walks them (the caller loaded the extents under the
// exclusive lock it still holds, but the region may have changed since:
// every offset returned is checked, since store_extents writes there).
Result<std::vector<uint64_t>> Filesystem::extent_chain(const Inode& inode) const {
  std::vector<uint64_t> chain;
  const uint64_t chain_blocks = format::extent_chain_blocks(inode.extent_count);
  if (inode.extent_count > format::max_extent_count(m_layout))
    return Error(EUCLEAN, "inode " + std::to_string(inode.ino) + ": extent_count out of range");
  chain.reserve(chain_blocks);
  uint64_t next = inode.extent_block;
  for (uint64_t step = 0; step < chain_blocks && next != 0; ++step) {
    if (next % kBlockSize != 0 || next / kBlockSize > UINT32_MAX ||
        !m_allocator->in_data_area({static_cast<uint32_t>(next / kBlockSize), 1})) {
      return Error(EUCLEAN, "inode " + std::to_string(inode.ino) + ": extent chain leaves the data area");
    }
    const auto block = copy_from_region<ExtentBlock>(m_region->base() + next);
    if (!format::extent_block_valid(block) || block.owner_ino != inode.ino) {
      return Error(EUCLEAN, "inode " + std::to_string(inode.ino) + ": extent block at " +
                                std::to_string(next) + " changed under the lock");
    }
    chain.push_back(next);
    next = block.next;
  }
  // No block twice: store_extents writes and frees each once.
  std::vector<uint64_t> sorted = chain;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    return Error(EUCLEAN, "inode " + std::to_string(inode.ino) + ": extent chain comes back to a block");
  return chain;
}

Result<void> Filesystem::store_extents(journal::Transaction& txn, Inode& inode,
                                       const std::vector<Extent>& extents) {
  TRY_ASSIGN(std::vector<uint64_t> chain, extent_chain(inode));
  size_t overflow = extents.size() > format::kInlineExtents ? extents.size() - format::kInlineExtents : 0;
  size_t blocks_needed = (overflow + format::kExtentsPerBlock - 1) / format::kExtentsPerBlock;
  while (chain.size() < blocks_needed) {
    uint64_t goal = chain.empty() ? 0 : chain.back() / kBlockSize + 1;
    TRY_ASSIGN(alloc::BlockRun run, m_allocator->allocate_blocks(txn, 1, goal));
    txn.fresh(uint64_t{run.region_block} * kBlockSize, kBlockSize);
    chain.push_back(uint64_t{run.region_block} * kBlockSize);
  }
  while (chain.size() > blocks_needed) {
    TRY(m_allocator->free(txn, {static_cast<uint32_t>(chain.back() / kBlockSize), 1}));
    chain.pop_back();
  }
  std::memset(inode.extents, 0, sizeof inode.extents);
  size_t inline_count = std::min(extents.size(), size_t{format::kInlineExtents});
  std::copy_n(extents.begin(), inline_count, inode.extents);
  for (size_t i = 0; i < chain.size(); ++i) {
    auto block = format::stamped<ExtentBlock>();
    block.owner_ino = inode.ino;
    size_t first = format::kInlineExtents + i * format::kExtentsPerBlock;
    size_t count = std::min(size_t{format::kExtentsPerBlock}, extents.size() - first);
    block.count = static_cast<uint16_t>(count);
    block.next = i + 1 < chain.size() ? chain[i + 1] : 0;
    std::copy_n(extents.begin() + static_cast<ptrdiff_t>(first), count, block.extents);
    format::seal(block);
    if (std::memcmp(m_region->base() + chain[i], &block, sizeof block) != 0) TRY(txn.put(chain[i], block));
  }
  uint64_t data_blocks = 0;
  for (const Extent& extent : extents) data_blocks += extent.block_count;
  inode.extent_count = static_cast<uint32_t>(extents.size());
  inode.extent_block = chain.empty() ? 0 : chain.front();
  inode.allocated_blocks = data_blocks + chain.size() + (inode.xattr_block != 0 ? 1 : 0);
  return success();
}

void Filesystem::zero_file_range(const std::vector<Extent>& extents, uint64_t begin, uint64_t end) {
  for (const Extent& extent : extents) {
    uint64_t extent_begin = extent.file_block * kBlockSize;
    uint64_t extent_stop = extent_end(extent) * kBlockSize;
    uint64_t from = std::max(begin, extent_begin), to = std::min(end, extent_stop);
    if (from >= to) continue;
    uint64_t region_offset = uint64_t{extent.region_block} * kBlockSize + (from - extent_begin);
    std::memset(m_region->base() + region_offset, 0, to - from);
  }
}

// Allocates every hole in [first_block, end_block). On a region whose pages
// are larger than a chunk (1 GiB hugetlbfs or device-dax), a file of at
// least one page after this operation is guest RAM: a hole that covers a
// whole page of the file gets whole pages of the region, aligned, as many
// consecutive ones as the range needs rounded up to whole pages (so the
// last page is allocated past the end of the file), in one extent when a
// free run that long exists; so a direct mapping never has to move it.
// Without a whole free page it falls back to chunks. Otherwise a hole in a
// logical chunk (2 MiB of the file) that no extent touches gets whole
// chunks when the file is large (>= 2 MiB after this operation), as many
// consecutive ones as the range needs, 1 GiB aligned when it covers whole
// gigabytes; everything else gets 4 KiB blocks, placed after the previous
// extent when possible.
Result<void> Filesystem::allocate_range(journal::Transaction& txn, Inode& inode, std::vector<Extent>& extents,
                                        uint64_t first_block, uint64_t end_block, uint64_t file_size_after) {
  const bool large_file = file_size_after >= kChunkSize;
  const uint64_t page_bytes = mapping_page_size();
  const uint64_t page_chunks =
      page_bytes > kChunkSize && page_bytes % kChunkSize == 0 ? page_bytes / kChunkSize : 0;
  const uint64_t page_blocks = page_chunks * kBlocksPerChunk;
  const bool guest_ram = page_chunks != 0 && file_size_after >= page_bytes;
  bool pages_left = true;  // false once allocate_pages found no whole page
  uint64_t block = first_block;
  while (block < end_block) {
    auto next = std::upper_bound(extents.begin(), extents.end(), block,
                                 [](uint64_t b, const Extent& e) { return b < extent_end(e); });
    if (next != extents.end() && next->file_block <= block) {  // allocated already
      block = extent_end(*next);
      continue;
    }
    uint64_t next_start = next != extents.end() ? next->file_block : UINT64_MAX;
    uint64_t previous_end = next != extents.begin() ? extent_end(*std::prev(next)) : 0;
    uint64_t chunk_start = block / kBlocksPerChunk * kBlocksPerChunk;
    size_t position = static_cast<size_t>(next - extents.begin());
    const uint64_t page_start = guest_ram ? block / page_blocks * page_blocks : 0;
    if (guest_ram && pages_left && previous_end <= page_start && next_start >= page_start + page_blocks) {
      const uint64_t limit = std::min((end_block + page_blocks - 1) / page_blocks * page_blocks,
                                      next_start / page_blocks * page_blocks);
      uint64_t wanted_pages = (limit - page_start) / page_blocks;
      TRY_ASSIGN(uint64_t affordable, affordable_chunks(txn));
      wanted_pages = std::min(wanted_pages, affordable / page_chunks);
      if (wanted_pages != 0) {
        auto run = m_allocator->allocate_pages(txn, wanted_pages, page_chunks);
        if (run) {
          extents.insert(extents.begin() + static_cast<ptrdiff_t>(position),
                         Extent{page_start, run->region_block, run->block_count});
          block = page_start + run->block_count;
          continue;
        }
        if (run.error().code() != ENOSPC) return std::move(run).error();
        pages_left = false;  // no whole page left: chunks will do
      }
    }
    if (large_file && previous_end <= chunk_start && next_start >= chunk_start + kBlocksPerChunk) {
      uint64_t limit = std::min((end_block + kBlocksPerChunk - 1) / kBlocksPerChunk * kBlocksPerChunk,
                                next_start / kBlocksPerChunk * kBlocksPerChunk);
      uint64_t wanted = (limit - chunk_start) / kBlocksPerChunk;
      TRY_ASSIGN(uint64_t affordable, affordable_chunks(txn));
      wanted = std::min(wanted, affordable);
      uint64_t gigabyte_blocks = kBlocksPerChunk * format::kChunksPerGigabyte;
      uint64_t alignment = (wanted % format::kChunksPerGigabyte == 0 && chunk_start % gigabyte_blocks == 0)
                               ? format::kChunksPerGigabyte
                               : 1;
      auto run = m_allocator->allocate_chunks(txn, wanted, alignment);
      if (run) {
        extents.insert(extents.begin() + static_cast<ptrdiff_t>(position),
                       Extent{chunk_start, run->region_block, run->block_count});
        block = chunk_start + run->block_count;
        continue;
      }
      if (run.error().code() != ENOSPC) return std::move(run).error();
      // No whole chunk left: blocks will do.
    }
    if (txn.journal_bytes_free() < kJournalReserveBytes) {
      return Error(ENOSPC, "allocation too fragmented for one transaction");
    }
    uint64_t stop = std::min({end_block, next_start, chunk_start + kBlocksPerChunk});
    uint64_t goal = 0;
    if (position > 0) {
      const Extent& previous = extents[position - 1];
      if (!is_large(previous) && extent_end(previous) == block)
        goal = uint64_t{previous.region_block} + previous.block_count;
    }
    // Otherwise near the small files of the directory the file was made in.
    Directory* near = nullptr;
    if (auto n = m_nodes.find(inode.ino); n != m_nodes.end() && n->second->directory != 0) {
      auto d = m_nodes.find(n->second->directory);
      if (d != m_nodes.end() && d->second->dir) near = d->second->dir.get();
    }
    if (goal == 0 && near) goal = near->small_goal;
    TRY_ASSIGN(alloc::BlockRun run, m_allocator->allocate_blocks(txn, stop - block, goal));
    if (near) near->small_goal = uint64_t{run.region_block} + run.block_count;
    extents.insert(extents.begin() + static_cast<ptrdiff_t>(position),
                   Extent{block, run.region_block, run.block_count});
    block += run.block_count;
  }
  // Merge neighbours that are contiguous in the file and the region.
  std::vector<Extent> merged;
  merged.reserve(extents.size());
  for (const Extent& extent : extents) append_extent(merged, extent, is_large(extent));
  extents = std::move(merged);
  return store_extents(txn, inode, extents);
}

Result<size_t> Filesystem::read(Ino ino, uint64_t offset, std::span<std::byte> out) {
  std::shared_lock lock(m_mutex);
  TRY(node(ino));
  const Inode inode = inode_copy(ino);
  if (S_ISDIR(inode.mode)) return Error(EISDIR, "is a directory");
  if (!S_ISREG(inode.mode) && !S_ISLNK(inode.mode)) return Error(EINVAL, "not a regular file");
  uint64_t size = inode.size;
  if (offset >= size) return size_t{0};
  uint64_t length = std::min<uint64_t>(out.size(), size - offset);
  auto loaded = load_extents(inode);
  if (!loaded) {
    lock.unlock();
    std::unique_lock write_lock(m_mutex);
    return note(Result<size_t>(std::move(loaded).error()), ino, "read");
  }
  const std::vector<Extent>& extents = loaded.value();
  // Extents are sorted and disjoint: copy each, and zero only the holes
  // between them (each output byte is written once).
  uint64_t filled = offset;
  for (const Extent& extent : extents) {
    uint64_t begin = extent.file_block * kBlockSize, end = extent_end(extent) * kBlockSize;
    uint64_t from = std::max(offset, begin), to = std::min(offset + length, end);
    if (from >= to) continue;
    if (from > filled) std::memset(out.data() + (filled - offset), 0, from - filled);
    std::memcpy(out.data() + (from - offset),
                m_region->base() + uint64_t{extent.region_block} * kBlockSize + (from - begin), to - from);
    filled = to;
  }
  if (filled < offset + length) std::memset(out.data() + (filled - offset), 0, offset + length - filled);
  return static_cast<size_t>(length);
}

Result<size_t> Filesystem::write(Ino ino, uint64_t offset, std::span<const std::byte> data) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY(node(ino));
  Inode inode = inode_copy(ino);
  if (S_ISDIR(inode.mode)) return Error(EISDIR, "is a directory");
  if (!S_ISREG(inode.mode)) return Error(EINVAL, "not a regular file");
  if (data.empty()) return size_t{0};
  uint64_t end = offset + data.size();
  if (end < offset || end > format::kMaxFileBytes) return Error(EFBIG, "write past the largest file size");
  // A shrink whose freeing failed part way left its trim mark: finish it
  // before the file grows again, or the next mount would free new data.
  if (inode.flags & format::kInodeTrimming) {
    if (auto trimmed = finish_trim(ino); !trimmed)
      return note(Result<size_t>(std::move(trimmed).error()), ino, "trim");
    inode = inode_copy(ino);
  }
  auto loaded = load_extents(inode);
  if (!loaded) return note(Result<size_t>(std::move(loaded).error()), ino, "write");
  std::vector<Extent> extents = std::move(loaded).value();
  auto txn = m_journal->begin();
  if (offset > inode.size) zero_file_range(extents, inode.size, offset);
  uint64_t first_block = offset / kBlockSize, end_block = (end + kBlockSize - 1) / kBlockSize;
  TRY(allocate_range(*txn, inode, extents, first_block, end_block, std::max(inode.size, end)));
  // Copy the data into its extents.
  for (const Extent& extent : extents) {
    uint64_t begin = extent.file_block * kBlockSize, stop = extent_end(extent) * kBlockSize;
    uint64_t from = std::max(offset, begin), to = std::min(end, stop);
    if (from >= to) continue;
    std::memcpy(m_region->base() + uint64_t{extent.region_block} * kBlockSize + (from - begin),
                data.data() + (from - offset), to - from);
  }
  inode.size = std::max(inode.size, end);
  // Clearing set-user-ID on write is the kernel's decision (it knows the
  // writer's capabilities) and reaches us as a setattr.
  inode.mtime_ns = inode.ctime_ns = now_ns();
  TRY(put_inode(*txn, inode));
  txn->commit();
  return data.size();
}

// Frees every block at or past file block `first_block` (rounded up to a
// chunk inside large extents), in as many transactions as the journal needs;
// each one leaves a consistent extent list.
Result<void> Filesystem::free_from(Ino ino, uint64_t first_block) {
  const uint64_t page_bytes = mapping_page_size();
  const uint64_t page_blocks =
      page_bytes > kChunkSize && page_bytes % kChunkSize == 0 ? page_bytes / kBlockSize : 0;
  for (;;) {
    Inode inode = inode_copy(ino);
    TRY_ASSIGN(std::vector<Extent> extents, load_extents(inode));
    if (extents.empty() || extent_end(extents.back()) <= first_block) return success();
    auto txn = m_journal->begin();
    bool progress = false;
    bool budget_exhausted = false;
    while (!extents.empty() && extent_end(extents.back()) > first_block) {
      if (txn->journal_bytes_free() < 2 * kJournalReserveBytes) {
        budget_exhausted = true;
        break;
      }
      Extent& last = extents.back();
      bool large = is_large(last);
      uint64_t keep_end = std::max<uint64_t>(first_block, last.file_block);
      if (large)
        keep_end = (keep_end - last.file_block + kBlocksPerChunk - 1) / kBlocksPerChunk * kBlocksPerChunk +
                   last.file_block;
      // Guest RAM in whole pages of a large-page region gives back whole
      // pages: a partial page would have to move before the next mapping.
      if (large && page_blocks != 0 && last.region_block % page_blocks == 0 &&
          last.file_block % page_blocks == 0) {
        keep_end =
            (keep_end - last.file_block + page_blocks - 1) / page_blocks * page_blocks + last.file_block;
      }
      if (keep_end >= extent_end(last)) break;  // the rest lies in a chunk or page we keep
      uint64_t free_count = extent_end(last) - keep_end;
      // Bound the chunk-map blocks one transaction touches.
      uint64_t max_blocks = 4 * format::kChunksPerMapBlock * kBlocksPerChunk;
      if (free_count > max_blocks) free_count = max_blocks;
      uint64_t keep_count = last.block_count - free_count;
      alloc::BlockRun run{static_cast<uint32_t>(last.region_block + keep_count),
                          static_cast<uint32_t>(free_count)};
      TRY(m_allocator->free(*txn, run));
      progress = true;
      if (keep_count == 0) {
        extents.pop_back();
      } else {
        last.block_count = static_cast<uint32_t>(keep_count);
      }
    }
    if (!progress) {
      // Nothing freed: either what is left lies in a chunk we keep, or the
      // journal cannot hold even one free (a journal too small to use).
      if (budget_exhausted) return Error(ENOSPC, "journal too small to free space");
      return success();
    }
    TRY(store_extents(*txn, inode, extents));
    TRY(put_inode(*txn, inode));
    txn->commit();
  }
}

Result<void> Filesystem::finish_trim(Ino ino) {
  Inode inode = inode_copy(ino);
  TRY(free_from(ino, inode.trim_block));
  auto txn = m_journal->begin();
  inode = inode_copy(ino);
  inode.flags &= static_cast<uint16_t>(~format::kInodeTrimming);
  inode.trim_block = 0;
  TRY(put_inode(*txn, inode));
  txn->commit();
  return success();
}

// REQUIRES: m_mutex held exclusively; no transaction open.
Result<void> Filesystem::truncate_locked(Ino ino, uint64_t size) {
  Inode inode = inode_copy(ino);
  if (S_ISDIR(inode.mode)) return Error(EISDIR, "is a directory");
  if (!S_ISREG(inode.mode)) return Error(EINVAL, "not a regular file");
  if (size > format::kMaxFileBytes) return Error(EFBIG, "size past the largest file size");
  // A shrink whose freeing failed part way left its trim mark: finish it
  // before the file grows again, or the next mount would free new data.
  if (inode.flags & format::kInodeTrimming) {
    TRY(finish_trim(ino));
    inode = inode_copy(ino);
  }
  TRY_ASSIGN(std::vector<Extent> extents, load_extents(inode));
  int64_t now = now_ns();
  if (size >= inode.size) {
    auto txn = m_journal->begin();
    zero_file_range(extents, inode.size, size);
    // Guest RAM: growing an empty file to >= 2 MiB allocates it whole, so a
    // VMM that sizes its RAM file with ftruncate gets hugepage-backed,
    // contiguous memory. If the space is not there the file stays sparse.
    if (inode.size == 0 && extents.empty() && size >= kChunkSize) {
      uint64_t end_block = (size + kBlockSize - 1) / kBlockSize;
      auto allocated = allocate_range(*txn, inode, extents, 0, end_block, size);
      if (!allocated) {
        if (allocated.error().code() != ENOSPC) return allocated;
        txn->abort();
        txn = m_journal->begin();
        inode = inode_copy(ino);
      }
    }
    inode.size = size;
    inode.mtime_ns = inode.ctime_ns = now;
    TRY(put_inode(*txn, inode));
    txn->commit();
    return success();
  }
  // Shrink: the new size and a trim mark commit first; the blocks past it
  // are freed after, in bounded transactions; mount finishes a trim that a
  // crash interrupted.
  TRY_ASSIGN(Node * n, node(ino));
  if (n->holds > 0)
    return Error(EBUSY, "inode " + std::to_string(ino) + " is mapped (held): it cannot shrink");
  uint64_t keep_blocks = (size + kBlockSize - 1) / kBlockSize;
  bool has_blocks_past = !extents.empty() && extent_end(extents.back()) > keep_blocks;
  auto txn = m_journal->begin();
  inode.size = size;
  inode.mtime_ns = inode.ctime_ns = now;
  if (has_blocks_past) {
    inode.flags |= format::kInodeTrimming;
    inode.trim_block = keep_blocks;
  }
  TRY(put_inode(*txn, inode));
  txn->commit();
  if (has_blocks_past) TRY(finish_trim(ino));
  return success();
}

Result<void> Filesystem::fallocate(Ino ino, int mode, uint64_t offset, uint64_t length) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY_ASSIGN(Node * n, node(ino));
  Inode inode = inode_copy(ino);
  if (S_ISDIR(inode.mode)) return Error(EISDIR, "is a directory");
  if (!S_ISREG(inode.mode)) return Error(ENODEV, "not a regular file");
  const int supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if ((mode & ~supported) != 0) return Error(EOPNOTSUPP, "unsupported fallocate mode");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) {
    return Error(EOPNOTSUPP, "PUNCH_HOLE needs KEEP_SIZE");
  }
  if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE))
    return Error(EOPNOTSUPP, "PUNCH_HOLE with ZERO_RANGE");
  if (length == 0) return Error(EINVAL, "zero length");
  uint64_t end = offset + length;
  if (end < offset || end > format::kMaxFileBytes) return Error(EFBIG, "range past the largest file size");
  // A shrink whose freeing failed part way left its trim mark: finish it
  // before the file grows again, or the next mount would free new data.
  if (inode.flags & format::kInodeTrimming) {
    TRY(finish_trim(ino));
    inode = inode_copy(ino);
  }
  // A held file's extents are mapped: none may be freed. ZERO_RANGE zeroes
  // in place and keeps (or adds) blocks, so it stays allowed.
  if ((mode & FALLOC_FL_PUNCH_HOLE) && n->holds > 0) {
    return Error(EBUSY, "inode " + std::to_string(ino) + " is mapped (held): no hole can be punched");
  }
  TRY_ASSIGN(std::vector<Extent> extents, load_extents(inode));
  int64_t now = now_ns();

  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    // Zero the bytes, then give back whole blocks (whole chunks inside large
    // extents) that lie entirely in the range. ZERO_RANGE keeps them.
    zero_file_range(extents, offset, end);
    auto txn = m_journal->begin();
    if (mode & FALLOC_FL_PUNCH_HOLE) {
      uint64_t first = (offset + kBlockSize - 1) / kBlockSize, last = end / kBlockSize;
      std::vector<Extent> kept;
      for (const Extent& extent : extents) {
        uint64_t from = std::max(first, extent.file_block), to = std::min(last, extent_end(extent));
        if (is_large(extent)) {
          from = (from - extent.file_block + kBlocksPerChunk - 1) / kBlocksPerChunk * kBlocksPerChunk +
                 extent.file_block;
          to = to < extent.file_block
                   ? to
                   : (to - extent.file_block) / kBlocksPerChunk * kBlocksPerChunk + extent.file_block;
        }
        if (from >= to || txn->journal_bytes_free() < 2 * kJournalReserveBytes) {
          kept.push_back(extent);
          continue;
        }
        if (from > extent.file_block)
          kept.push_back(
              {extent.file_block, extent.region_block, static_cast<uint32_t>(from - extent.file_block)});
        TRY(m_allocator->free(*txn, {static_cast<uint32_t>(extent.region_block + (from - extent.file_block)),
                                     static_cast<uint32_t>(to - from)}));
        if (to < extent_end(extent)) {
          kept.push_back({to, static_cast<uint32_t>(extent.region_block + (to - extent.file_block)),
                          static_cast<uint32_t>(extent_end(extent) - to)});
        }
      }
      TRY(store_extents(*txn, inode, kept));
    } else {
      // Growing the file: the gap between the old size and the range must
      // read as zeros too.
      if (!(mode & FALLOC_FL_KEEP_SIZE) && offset > inode.size) zero_file_range(extents, inode.size, offset);
      uint64_t first_block = offset / kBlockSize, end_block = (end + kBlockSize - 1) / kBlockSize;
      uint64_t size_after = (mode & FALLOC_FL_KEEP_SIZE) ? inode.size : std::max(inode.size, end);
      TRY(allocate_range(*txn, inode, extents, first_block, end_block, size_after));
      if (!(mode & FALLOC_FL_KEEP_SIZE) && end > inode.size) inode.size = end;
    }
    inode.mtime_ns = inode.ctime_ns = now;
    TRY(put_inode(*txn, inode));
    txn->commit();
    return success();
  }

  auto txn = m_journal->begin();
  uint64_t size_after = (mode & FALLOC_FL_KEEP_SIZE) ? inode.size : std::max(inode.size, end);
  if (!(mode & FALLOC_FL_KEEP_SIZE) && end > inode.size) zero_file_range(extents, inode.size, end);
  uint64_t first_block = offset / kBlockSize, end_block = (end + kBlockSize - 1) / kBlockSize;
  TRY(allocate_range(*txn, inode, extents, first_block, end_block, size_after));
  if (!(mode & FALLOC_FL_KEEP_SIZE) && end > inode.size) {
    inode.size = end;
    inode.mtime_ns = now;
  }
  inode.ctime_ns = now;
  TRY(put_inode(*txn, inode));
  txn->commit();
  return success();
}

// A mapping with pages of P bytes maps the file page by page: page w of
// the file must lie in one extent, at a region offset that is a multiple of
// P. With P = 4 KiB that only asks for no holes; with larger pages the pages
// that are not so (holes, 4 KiB blocks of split chunks, chunks not aligned
// to P) get whole chunks of their own, aligned to P: the data is copied,
// the old blocks freed, in transactions of whole pages each.
Result<void> Filesystem::make_mappable(Ino ino, uint64_t page_bytes) {
  Inode inode = inode_copy(ino);
  TRY_ASSIGN(std::vector<Extent> extents, load_extents(inode));
  if (page_bytes % kBlockSize != 0 || (page_bytes > kBlockSize && page_bytes % kChunkSize != 0)) {
    return Error(EINVAL, "the region's page size (" + std::to_string(page_bytes) +
                             " bytes) cannot be mapped: not 4 KiB or a multiple of 2 MiB");
  }
  const uint64_t page_blocks = page_bytes / kBlockSize;
  const uint64_t mapped_end = (inode.size + page_bytes - 1) / page_bytes * page_blocks;  // in blocks

  if (page_blocks == 1) {
    uint64_t covered = 0;
    for (const Extent& extent : extents) {
      if (extent.file_block > covered || covered >= mapped_end) break;
      covered = std::max(covered, extent_end(extent));
    }
    if (covered >= mapped_end) return success();
    auto txn = m_journal->begin();
    TRY(allocate_range(*txn, inode, extents, 0, mapped_end, inode.size));
    TRY(put_inode(*txn, inode));
    txn->commit();
    return success();
  }

  // True when file page `page` lies in one extent, page aligned in the region.
  auto page_mappable = [&](uint64_t page) {
    uint64_t start = page * page_blocks;
    auto it = std::upper_bound(extents.begin(), extents.end(), start,
                               [](uint64_t b, const Extent& e) { return b < extent_end(e); });
    return it != extents.end() && it->file_block <= start && extent_end(*it) >= start + page_blocks &&
           (it->region_block + (start - it->file_block)) % page_blocks == 0;
  };
  const uint64_t pages = mapped_end / page_blocks;
  const uint64_t page_chunks = page_bytes / kChunkSize;
  // The first page at or after `page` whose mappability may differ from
  // `page`'s: an extent that maps one page aligned maps all its whole pages
  // so, and a hole or a misaligned extent ends where the next extent
  // begins. So the walk costs one step per extent, not per page (a sparse
  // file of petabytes must not take seconds under the exclusive lock).
  auto next_change = [&](uint64_t at) {
    uint64_t start = at * page_blocks;
    auto it = std::upper_bound(extents.begin(), extents.end(), start,
                               [](uint64_t b, const Extent& e) { return b < extent_end(e); });
    uint64_t next = at + 1;
    if (it != extents.end() && it->file_block <= start) {
      next = std::max(next, extent_end(*it) / page_blocks);
    } else if (it != extents.end()) {
      next = std::max(next, it->file_block / page_blocks);  // the hole before the next extent
    } else {
      next = pages;  // a hole to the end
    }
    return std::min(next, pages);
  };
  // Fail before moving anything when the pages to allocate exceed the free
  // chunks (a failure half way would have filled the region for nothing).
  uint64_t missing_pages = 0;
  for (uint64_t at = 0; at < pages;) {
    uint64_t next = next_change(at);
    if (!page_mappable(at)) missing_pages += next - at;
    at = next;
  }
  const alloc::Allocator::PageUsage free_pages = m_allocator->page_usage(page_chunks);
  if (missing_pages > free_pages.free_pages) {
    const uint64_t free_chunks = m_allocator->usage().free_chunks;
    std::string why = "inode " + std::to_string(ino) + " needs " + std::to_string(missing_pages) +
                      " more whole " + bytes_text(page_bytes) + " page(s) to be mapped directly";
    if (inode.size < page_bytes) why += " (a file smaller than a page costs a whole page)";
    why += "; the region has " + std::to_string(free_pages.free_pages) + " free whole page(s)";
    if (free_chunks / page_chunks >= missing_pages) {
      why += ", though its " + bytes_text(free_chunks * kChunkSize) +
             " of free space would hold them: free space is fragmented. Remove or shrink files that "
             "take part of a page, or copy an unheld one to a new file and remove the old one, then map "
             "again";
    } else {
      why += ": remove files or use a larger region";
    }
    return Error(ENOSPC, why);
  }
  uint64_t page = 0;
  while (page < pages) {
    if (page_mappable(page)) {
      page = next_change(page);
      continue;
    }
    uint64_t run_end = next_change(page);
    while (run_end < pages && !page_mappable(run_end)) run_end = next_change(run_end);
    // Pages [page, run_end) move, in as many transactions as the journal needs.
    while (page < run_end) {
      auto txn = m_journal->begin();
      bool moved = false;
      while (page < run_end) {
        // Each chunk-map block the allocation changes costs one undo record.
        uint64_t budget = txn->journal_bytes_free() > 2 * kJournalReserveBytes
                              ? txn->journal_bytes_free() - 2 * kJournalReserveBytes
                              : 0;
        uint64_t affordable = budget / format::undo_record_bytes(kBlockSize) * format::kChunksPerMapBlock;
        const uint64_t reserve_chunks = uint64_t{2} * format::kChunksPerMapBlock;
        affordable = affordable > reserve_chunks ? affordable - reserve_chunks : 0;
        uint64_t wanted = std::min((run_end - page) * page_chunks, affordable / page_chunks * page_chunks);
        if (wanted == 0) break;
        // Whole aligned pages only (an unaligned run would be moved again).
        auto allocated = m_allocator->allocate_pages(*txn, wanted / page_chunks, page_chunks);
        if (!allocated) {
          return Error(allocated.error().code(), "no space to make inode " + std::to_string(ino) +
                                                     " mappable: " + allocated.error().message());
        }
        alloc::BlockRun run = allocated.value();
        const uint64_t from = page * page_blocks;
        const uint64_t to = from + run.block_count;
        // Copy what is allocated there (new chunks are zero: holes read as
        // zeros), free it, and let the new run replace it.
        std::vector<Extent> kept;
        kept.reserve(extents.size() + 2);
        for (const Extent& extent : extents) {
          uint64_t piece_from = std::max(from, extent.file_block);
          uint64_t piece_to = std::min(to, extent_end(extent));
          if (piece_from >= piece_to) {
            kept.push_back(extent);
            continue;
          }
          if (txn->journal_bytes_free() < 2 * kJournalReserveBytes) {
            return Error(ENOSPC,
                         "inode " + std::to_string(ino) + " is too fragmented to move in one transaction");
          }
          uint64_t old_block = extent.region_block + (piece_from - extent.file_block);
          std::memcpy(m_region->base() + (uint64_t{run.region_block} + (piece_from - from)) * kBlockSize,
                      m_region->base() + old_block * kBlockSize, (piece_to - piece_from) * kBlockSize);
          TRY(m_allocator->free(
              *txn, {static_cast<uint32_t>(old_block), static_cast<uint32_t>(piece_to - piece_from)}));
          if (extent.file_block < piece_from) {
            kept.push_back({extent.file_block, extent.region_block,
                            static_cast<uint32_t>(piece_from - extent.file_block)});
          }
          if (piece_to < extent_end(extent)) {
            kept.push_back({piece_to,
                            static_cast<uint32_t>(extent.region_block + (piece_to - extent.file_block)),
                            static_cast<uint32_t>(extent_end(extent) - piece_to)});
          }
        }
        m_region->persist(uint64_t{run.region_block} * kBlockSize, uint64_t{run.block_count} * kBlockSize);
        kept.push_back({from, run.region_block, run.block_count});
        std::sort(kept.begin(), kept.end(),
                  [](const Extent& a, const Extent& b) { return a.file_block < b.file_block; });
        extents.clear();
        for (const Extent& extent : kept) append_extent(extents, extent, is_large(extent));
        page += run.block_count / page_blocks;
        moved = true;
      }
      if (!moved)
        return Error(ENOSPC, "the journal is too small to make inode " + std::to_string(ino) + " mappable");
      TRY(store_extents(*txn, inode, extents));
      TRY(put_inode(*txn, inode));
      txn->commit();
    }
  }
  return success();
}

Result<std::vector<Extent>> Filesystem::extents(Ino ino) {
  std::shared_lock lock(m_mutex);
  TRY(node(ino));
  return load_extents(inode_copy(ino));
}

}  // namespace pkfs::core
