// fs/fsck/problems.h: every problem fsck.pkfs can report, in one table.
//
// Owns: the problem codes (an enum for the code, the stable string fsck.pkfs
// prints and --json emits), the pass each belongs to and whether preen
// (fsck -p) may repair it without asking. The rows are in problems.cpp, one
// per code, in pass order: a new problem is a new enumerator here and a new
// row there, found by its pass's walk. A shared walk (passN_*.cpp, see
// passes.h; passes 6 and 7, the journal header and the chunk-map blocks so
// far) reports it and makes its repair in one place, through
// Fixer::fix_problem; the others report it in check.cpp and repair it in
// repair.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pkfs::fsck {

// fsck's named passes, in the order FORMAT.md ("Invariants") lists them.
inline constexpr int kPassCount = 7;

enum class Code : uint8_t {
  // Pass 1: superblocks.
  kSuperblockMagic,
  kSuperblockVersion,
  kSuperblockChecksum,
  kSuperblockInvalid,
  kSuperblockLayout,
  kSuperblockFeatures,
  kSuperblockErrors,
  kSuperblockFallback,
  kBackupSuperblockMagic,
  kBackupSuperblockChecksum,
  kBackupSuperblockInvalid,
  kBackupSuperblockLayout,
  kBackupSuperblockMismatch,
  // Pass 2: journal.
  kJournalTag,
  kJournalChecksum,
  kJournalInvalid,
  kJournalOpen,
  kUndoRecordChecksum,
  kUndoRecordInvalid,
  // Pass 3: inodes, extents, xattr blocks.
  kInodeTag,
  kInodeChecksum,
  kInodeInvalid,
  kInodeExtents,
  kInodeBlocks,
  kRootMissing,
  kRootNotDirectory,
  kSymlinkInvalid,
  kExtentInvalid,
  kExtentRange,
  kExtentOrder,
  kExtentCount,
  kExtentChain,
  kExtentBlockTag,
  kExtentBlockChecksum,
  kExtentBlockInvalid,
  kExtentBlockOwner,
  kXattrBlockTag,
  kXattrBlockChecksum,
  kXattrBlockInvalid,
  kXattrBlockRange,
  kXattrBlockOwner,
  // Pass 4: directory tree and link counts.
  kDirentTag,
  kDirentChecksum,
  kDirentInvalid,
  kDirentParent,
  kDirentChild,
  kDirentType,
  kDirentDuplicate,
  kDirEntries,
  kDirParent,
  kDirCycle,
  kUnreachable,
  kLinkCount,
  kLostFound,
  // Pass 5: allocation map against extents.
  kExtentSpace,
  kXattrBlockSpace,
  kChunkMapTag,
  kChunkMapChecksum,
  kChunkMapInvalid,
  kChunkState,
  kSplitHeaderTag,
  kSplitHeaderChecksum,
  kSplitHeaderInvalid,
  kSplitEmpty,
  kSpaceClaimedTwice,
  kSpaceLeaked,
  // Pass 6: holds.
  kHoldTag,
  kHoldChecksum,
  kHoldInvalid,
  kHoldInode,
  // Pass 7: known-zero chunks.
  kChunkNotZero,
};

// Whether fsck -p may make a repair of this problem on its own.
enum class Preen : uint8_t {
  kNo,      // needs a decision: -p changes nothing and asks for -y
  kYes,     // the repair loses nothing: -p makes it
  kPerFix,  // depends on the repair; the call that reports it says
};

struct ProblemInfo {
  Code code;
  const char* name;  // the stable string: "INODE_CHECKSUM"
  int pass;          // 1..kPassCount
  Preen preen;
  const char* about;  // what the problem is, for readers of the table
};

const ProblemInfo& problem_info(Code code);
inline const char* code_name(Code code) { return problem_info(code).name; }
std::optional<Code> code_from_name(std::string_view name);

// A structure its validator rejected: a wrong tag usually means the
// reference is wrong, a checksum mismatch that the bytes changed. Families
// are named by their _TAG code.
Code rejection_code(Code tag_code, bool tag_ok, bool checksum_ok);

}  // namespace pkfs::fsck
