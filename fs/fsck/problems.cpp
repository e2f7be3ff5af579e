// fs/fsck/problems.cpp: the problem table. One row per code, in pass order;
// `grep` for a code's enumerator finds its row here and the walks that find
// and repair it. See FORMAT.md, "Invariants" and "Repair".
#include "fs/fsck/problems.h"

#include <array>
#include <cstdlib>

namespace pkfs::fsck {
namespace {

using enum Code;
using enum Preen;

constexpr ProblemInfo kProblems[] = {
    // Pass 1: superblocks. Repair restores one copy from the other.
    {kSuperblockMagic, "SUPERBLOCK_MAGIC", 1, kNo, "the primary superblock's magic is wrong"},
    {kSuperblockVersion, "SUPERBLOCK_VERSION", 1, kNo, "the primary superblock names an unknown version"},
    {kSuperblockChecksum, "SUPERBLOCK_CHECKSUM", 1, kNo, "the primary superblock's checksum does not match"},
    {kSuperblockInvalid, "SUPERBLOCK_INVALID", 1, kPerFix,
     "a superblock field is out of range (reserved fields: preen zeroes them; a bad label: no)"},
    {kSuperblockLayout, "SUPERBLOCK_LAYOUT", 1, kNo, "the superblock's layout does not fit the region"},
    {kSuperblockFeatures, "SUPERBLOCK_FEATURES", 1, kNo, "features this build cannot read or write"},
    {kSuperblockErrors, "SUPERBLOCK_ERRORS", 1, kYes, "the superblock is not clean or records errors"},
    {kSuperblockFallback, "SUPERBLOCK_FALLBACK", 1, kNo, "the primary is unusable; the backup is used"},
    {kBackupSuperblockMagic, "BACKUP_SUPERBLOCK_MAGIC", 1, kYes, "the backup superblock's magic is wrong"},
    {kBackupSuperblockChecksum, "BACKUP_SUPERBLOCK_CHECKSUM", 1, kYes,
     "the backup superblock's checksum does not match"},
    {kBackupSuperblockInvalid, "BACKUP_SUPERBLOCK_INVALID", 1, kYes,
     "a backup superblock field is out of range"},
    {kBackupSuperblockLayout, "BACKUP_SUPERBLOCK_LAYOUT", 1, kYes,
     "the backup's layout does not fit the region"},
    {kBackupSuperblockMismatch, "BACKUP_SUPERBLOCK_MISMATCH", 1, kYes, "the backup differs from the primary"},

    // Pass 2: journal.
    {kJournalTag, "JOURNAL_TAG", 2, kNo, "the journal header's tag or version is wrong"},
    {kJournalChecksum, "JOURNAL_CHECKSUM", 2, kNo, "the journal header's checksum does not match"},
    {kJournalInvalid, "JOURNAL_INVALID", 2, kNo, "a journal header field is wrong"},
    {kJournalOpen, "JOURNAL_OPEN", 2, kPerFix,
     "a transaction is open: recovery rolls it back (-p may; not one that is not the last begun)"},
    {kUndoRecordChecksum, "UNDO_RECORD_CHECKSUM", 2, kNo,
     "an undo record is damaged and valid records follow"},
    {kUndoRecordInvalid, "UNDO_RECORD_INVALID", 2, kNo, "an undo record targets bytes outside the metadata"},

    // Pass 3: inodes, extents, xattr blocks.
    {kInodeTag, "INODE_TAG", 3, kNo, "an inode slot below the high-water mark has a wrong tag"},
    {kInodeChecksum, "INODE_CHECKSUM", 3, kNo, "an inode's checksum does not match"},
    {kInodeInvalid, "INODE_INVALID", 3, kPerFix,
     "an inode field is wrong (a free slot not in the free form: preen rewrites it; in use: no)"},
    {kInodeExtents, "INODE_EXTENTS", 3, kNo, "the inode's extent count disagrees with its extents"},
    {kInodeBlocks, "INODE_BLOCKS", 3, kYes, "the inode's block count disagrees with its extents"},
    {kRootMissing, "ROOT_MISSING", 3, kNo, "the root inode is not in use"},
    {kRootNotDirectory, "ROOT_NOT_DIRECTORY", 3, kNo, "the root inode is not a directory"},
    {kSymlinkInvalid, "SYMLINK_INVALID", 3, kNo, "a symlink's target is missing or malformed"},
    {kExtentInvalid, "EXTENT_INVALID", 3, kNo, "an extent is malformed"},
    {kExtentRange, "EXTENT_RANGE", 3, kNo, "an extent points outside the data area"},
    {kExtentOrder, "EXTENT_ORDER", 3, kNo, "extents are not in file order or overlap"},
    {kExtentCount, "EXTENT_COUNT", 3, kNo, "an extent block's count is wrong"},
    {kExtentChain, "EXTENT_CHAIN", 3, kNo, "the extent block chain loops or is too long"},
    {kExtentBlockTag, "EXTENT_BLOCK_TAG", 3, kNo, "an extent block has a wrong tag"},
    {kExtentBlockChecksum, "EXTENT_BLOCK_CHECKSUM", 3, kNo, "an extent block's checksum does not match"},
    {kExtentBlockInvalid, "EXTENT_BLOCK_INVALID", 3, kNo, "an extent block field is wrong"},
    {kExtentBlockOwner, "EXTENT_BLOCK_OWNER", 3, kNo, "an extent block names another inode as its owner"},
    {kXattrBlockTag, "XATTR_BLOCK_TAG", 3, kNo, "an xattr block has a wrong tag"},
    {kXattrBlockChecksum, "XATTR_BLOCK_CHECKSUM", 3, kNo, "an xattr block's checksum does not match"},
    {kXattrBlockInvalid, "XATTR_BLOCK_INVALID", 3, kNo, "an xattr block's entries are malformed"},
    {kXattrBlockRange, "XATTR_BLOCK_RANGE", 3, kNo, "an inode's xattr block lies outside the data area"},
    {kXattrBlockOwner, "XATTR_BLOCK_OWNER", 3, kNo, "an xattr block names another inode as its owner"},

    // Pass 4: directory tree and link counts.
    {kDirentTag, "DIRENT_TAG", 4, kNo, "a directory entry has a wrong tag"},
    {kDirentChecksum, "DIRENT_CHECKSUM", 4, kNo, "a directory entry's checksum does not match"},
    {kDirentInvalid, "DIRENT_INVALID", 4, kNo, "a directory entry field is wrong"},
    {kDirentParent, "DIRENT_PARENT", 4, kNo, "an entry's parent is not a directory in use"},
    {kDirentChild, "DIRENT_CHILD", 4, kNo, "an entry names an inode that is not in use"},
    {kDirentType, "DIRENT_TYPE", 4, kNo, "an entry's type disagrees with its inode"},
    {kDirentDuplicate, "DIRENT_DUPLICATE", 4, kNo, "two entries of one directory have one name"},
    {kDirEntries, "DIR_ENTRIES", 4, kNo, "a directory is named by more than one entry"},
    {kDirParent, "DIR_PARENT", 4, kYes, "a directory's parent field disagrees with its entry"},
    {kDirCycle, "DIR_CYCLE", 4, kNo, "directories form a cycle"},
    {kUnreachable, "UNREACHABLE", 4, kNo, "an inode in use is not reachable from the root"},
    {kLinkCount, "LINK_COUNT", 4, kPerFix,
     "nlink disagrees with the entries (preen corrects a count; an orphan flag: no)"},
    {kLostFound, "LOST_FOUND", 4, kNo, "/lost+found is missing or unusable"},

    // Pass 5: allocation map against extents.
    {kExtentSpace, "EXTENT_SPACE", 5, kPerFix,
     "space in use is marked free (preen marks it; claimed by an earlier inode: no)"},
    {kXattrBlockSpace, "XATTR_BLOCK_SPACE", 5, kNo, "an xattr block's space is not marked in use"},
    {kChunkMapTag, "CHUNK_MAP_TAG", 5, kNo, "a chunk-map block has a wrong tag"},
    {kChunkMapChecksum, "CHUNK_MAP_CHECKSUM", 5, kNo, "a chunk-map block's checksum does not match"},
    {kChunkMapInvalid, "CHUNK_MAP_INVALID", 5, kPerFix,
     "a chunk-map block field is wrong (preen zeroes a reserved field; a block to rebuild: no)"},
    {kChunkState, "CHUNK_STATE", 5, kYes, "a chunk's state disagrees with what holds it"},
    {kSplitHeaderTag, "SPLIT_HEADER_TAG", 5, kNo, "a split chunk's header has a wrong tag"},
    {kSplitHeaderChecksum, "SPLIT_HEADER_CHECKSUM", 5, kNo, "a split chunk header's checksum does not match"},
    {kSplitHeaderInvalid, "SPLIT_HEADER_INVALID", 5, kNo, "a split chunk header field is wrong"},
    {kSplitEmpty, "SPLIT_EMPTY", 5, kNo, "a split chunk has no block in use"},
    {kSpaceClaimedTwice, "SPACE_CLAIMED_TWICE", 5, kNo, "two references claim the same space"},
    {kSpaceLeaked, "SPACE_LEAKED", 5, kYes, "space marked in use that nothing owns"},

    // Pass 6: holds.
    {kHoldTag, "HOLD_TAG", 6, kNo, "a hold slot has a wrong tag"},
    {kHoldChecksum, "HOLD_CHECKSUM", 6, kNo, "a hold's checksum does not match"},
    {kHoldInvalid, "HOLD_INVALID", 6, kNo, "a hold field is wrong"},
    {kHoldInode, "HOLD_INODE", 6, kYes, "a hold names an inode that is not in use"},

    // Pass 7: known-zero chunks (fsck --verify-zero).
    {kChunkNotZero, "CHUNK_NOT_ZERO", 7, kYes, "a chunk marked free and known zero is not zero"},
};

// The table is indexed by the enum: a row out of place is a build error.
constexpr bool rows_in_order() {
  for (size_t i = 0; i < std::size(kProblems); ++i) {
    if (static_cast<size_t>(kProblems[i].code) != i) return false;
  }
  return std::size(kProblems) == static_cast<size_t>(kChunkNotZero) + 1;
}
static_assert(rows_in_order(), "problem table rows must follow the order of enum Code");

}  // namespace

const ProblemInfo& problem_info(Code code) {
  size_t index = static_cast<size_t>(code);
  if (index >= std::size(kProblems)) std::abort();  // not an enumerator
  return kProblems[index];
}

std::optional<Code> code_from_name(std::string_view name) {
  for (const ProblemInfo& row : kProblems) {
    if (name == row.name) return row.code;
  }
  return std::nullopt;
}

Code rejection_code(Code tag_code, bool tag_ok, bool checksum_ok) {
  // Each family's codes follow each other: _TAG, _CHECKSUM, _INVALID.
  if (!tag_ok) return tag_code;
  auto next = [&](int by) { return static_cast<Code>(static_cast<int>(tag_code) + by); };
  return checksum_ok ? next(2) : next(1);
}

}  // namespace pkfs::fsck
