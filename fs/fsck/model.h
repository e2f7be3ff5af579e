// fs/fsck/model.h: the read-only model of a region that check and repair
// both build on.
//
// Owns: reading the region (with an interrupted transaction's undo records
// laid over it, as a mount's rollback will leave it), the superblock and
// layout in use, the progress report that may cancel, the names of inodes
// for messages, who claimed which space, and the field rules and salvage
// both apply. One copy of each: the checker (check.cpp) reports against it,
// the repairer (repair.cpp) decides its repairs on it.
//
// Every walk is bounded and every offset is checked before it is read, so
// garbage yields problems, never a crash or a hang.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fs/base/bytes.h"
#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "fs/region/region.h"

namespace pkfs::fsck {

// The structures every walk of this layer reads (model.h is the layer's
// own header, included by no other layer).
using format::ChunkMapBlock;
using format::Dirent;
using format::Extent;
using format::ExtentBlock;
using format::Hold;
using format::Inode;
using format::JournalHeader;
using format::kBlockSize;
using format::kBlocksPerChunk;
using format::kChunkSize;
using format::Layout;
using format::SplitHeader;
using format::Superblock;
using format::XattrBlock;

// Thrown by Model::progress when the callback asks to stop; caught by
// check_region and repair_region, which answer ECANCELED.
struct Cancelled {};

// Runs a walk; a Cancelled thrown by its progress report becomes
// Error(ECANCELED), the answer check_region and repair_region document.
template <typename Walk>
auto run_cancellable(Walk&& walk) -> decltype(walk()) {
  try {
    return walk();
  } catch (const Cancelled&) {
    return Error(ECANCELED, "cancelled");
  }
}

// Slots or chunks between two progress reports.
inline constexpr uint64_t kProgressStep = 65536;

// "regular file", "directory", ... for messages.
std::string type_name(uint32_t mode);

// Field rules the validators leave alone (padding and reserved words),
// checked by check and enforced by repair.
bool label_terminated(const format::Superblock& sb);
bool label_padded(const format::Superblock& sb);  // only NULs after the label
bool reserved_zero(const format::Superblock& sb);
bool reserved_zero(const format::JournalHeader& header);

// A structure its validator rejects may still be recoverable:
//  - only its tag or version is wrong and restoring them makes the checksum
//    match: the rest is exactly what was written;
//  - tag and version are right, only the checksum fails, and the resealed
//    structure passes every range check: the fields are kept as found (as
//    e2fsck does for a metadata block whose checksum alone is wrong).
// Returns the salvaged structure and how, or nothing.
template <typename T, typename Valid>
std::optional<T> salvage(T value, Valid valid, std::string* how) {
  if (!format::stamp_ok(value)) {
    format::stamp(value);
    if (format::checksum_ok(value) && valid(value)) {
      *how = "tag restored (the checksum matches)";
      return value;
    }
    return std::nullopt;
  }
  format::seal(value);
  if (!valid(value)) return std::nullopt;
  *how = "checksum resealed (the fields are sane)";
  return value;
}

// Who claimed which data space, in the order a walk met the claims: a whole
// chunk has one owner; a split chunk's blocks one claim each (a bitmap, not
// an owner per block: a large region holds millions of split chunks).
class Claims {
 public:
  using Bits = std::array<uint64_t, format::kBlocksPerChunk / 64>;

  void reset(uint64_t chunk_count);
  uint64_t chunk_owner(uint64_t chunk) const { return m_chunk_owner[chunk]; }
  void set_chunk_owner(uint64_t chunk, uint64_t ino) { m_chunk_owner[chunk] = ino; }
  bool block_claimed(uint64_t block) const;
  void claim_block(uint64_t block);
  void unclaim_block(uint64_t block);
  // The claimed blocks of a split chunk, or null when none is claimed.
  const Bits* split_claims(uint64_t chunk) const;

 private:
  std::vector<uint64_t> m_chunk_owner;         // chunk -> inode of its whole-chunk extent, 0: none
  std::unordered_map<uint64_t, Bits> m_split;  // chunk -> blocks claimed
};

class Model {
 public:
  Model(const region::Region& region, const Progress& progress) : m_region(region), m_progress(progress) {}

  // The region as a mount will see it: through the interrupted
  // transaction's undo records when load_rollback found them.
  template <typename T>
  T read(uint64_t offset) const {
    T value;
    std::memcpy(&value, m_region.base() + offset, sizeof value);
    if (!m_rollback.empty()) roll_back_into(reinterpret_cast<std::byte*>(&value), offset, sizeof value);
    return value;
  }

  // Throws Cancelled when the callback asks to stop.
  void progress(int pass, uint64_t done, uint64_t total) const {
    if (m_progress && !m_progress(pass, done, total)) throw Cancelled{};
  }

  // Collects the undo records of an interrupted transaction the way a mount
  // finds them (journal::scan_undo_records) and adjusts them with the
  // allocator's undo filter as the mount's rollback does; read() then sees
  // the region rolled back. Returns the transaction's sequence and record
  // count, or nothing when a mount could not roll it back (the journal
  // pass says why). REQUIRES: m_layout is set.
  std::optional<std::pair<uint64_t, uint64_t>> load_rollback();

  // True when an undo record laid over the region covers part of
  // [offset, offset+length): read() there, not the region.
  bool rolled_back(uint64_t offset, uint64_t length) const {
    return std::ranges::any_of(m_rollback, [&](const Undo& undo) {
      return undo.target < offset + length && offset < undo.target + undo.length;
    });
  }

  const format::Layout& layout() const { return m_layout; }
  uint64_t inode_offset(uint64_t ino) const {
    return m_layout.inode_table_offset + ino * sizeof(format::Inode);
  }
  uint64_t dirent_offset(uint64_t slot) const {
    return m_layout.dirent_table_offset + slot * sizeof(format::Dirent);
  }
  uint64_t hold_offset(uint64_t slot) const {
    return m_layout.hold_table_offset + slot * sizeof(format::Hold);
  }
  bool in_data_area(uint64_t first_block, uint64_t count) const {
    return m_layout.in_data_area(first_block, count);
  }

  // "inode 12 (/a/b)": the path through whatever valid entries name the
  // inode and its directories (read on first use, up to the entry
  // high-water mark), or "inode 12" when none leads to the root.
  std::string describe_by_names(uint64_t ino) const;

 protected:
  const region::Region& m_region;
  const Progress& m_progress;
  format::Superblock m_sb{};
  format::Layout m_layout{};
  Claims m_claims;

 private:
  // One undo record: its old bytes at `image` in m_rollback_bytes.
  struct Undo {
    uint64_t target = 0;
    uint64_t image = 0;
    uint64_t length = 0;
  };
  // Lays the records from `first` on over [offset, offset+length) read into
  // `out`, newest first as the rollback applies them: the oldest image wins.
  void roll_back_into(std::byte* out, uint64_t offset, uint64_t length, size_t first = 0) const;

  std::vector<Undo> m_rollback;  // oldest first
  std::vector<std::byte> m_rollback_bytes;
  mutable bool m_names_loaded = false;
  mutable std::unordered_map<uint64_t, std::pair<uint64_t, std::string>> m_names;  // ino -> (parent, name)
};

}  // namespace pkfs::fsck
