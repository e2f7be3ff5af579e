// fs/core/check.h: a read-only consistency check of a whole region.
//
// Owns: the invariants of FORMAT.md ("Invariants"), checked pass by pass
// without trusting any of them. Used by the crash-injection tests after every
// simulated crash, and the base fsck.pkfs builds on. Never writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs/base/result.h"
#include "fs/region/region.h"

namespace pkfs::core {

struct CheckProblem {
  std::string code;     // stable short code, e.g. "INODE_CHECKSUM", "LINK_COUNT"
  std::string message;  // names the structure and, where known, the file path
};

struct CheckReport {
  std::vector<CheckProblem> problems;
  uint64_t inodes_in_use = 0;
  uint64_t dirents_in_use = 0;
  uint64_t data_blocks_in_use = 0;  // blocks of file extents and extent/xattr blocks
  // Legal after a crash (mount finishes them), so counted, not problems.
  uint64_t orphan_inodes = 0;    // kInodeOrphan: unlinked, space not yet freed
  uint64_t trimming_inodes = 0;  // kInodeTrimming: a shrink not yet finished
  // A transaction interrupted by a crash (a mount rolls it back): the check
  // saw the region as rolled back. 0 when none was open.
  uint64_t rolled_back_sequence = 0;
  uint64_t rolled_back_records = 0;
  bool clean() const { return problems.empty(); }
};

struct CheckOptions {
  // Also read every kChunkFreeZero chunk and report one that is not all
  // zero (2 MiB each: slow on large regions, so off by default).
  bool verify_known_zero = false;
};

// Checks every structure of the region. An open transaction that a mount
// would roll back is not a problem: the region is checked as that rollback
// leaves it (without writing it), and the report says so. One a mount
// could not roll back is reported as a problem (JOURNAL_OPEN).
// Errors only when the region cannot be read at all (no superblock).
Result<CheckReport> check_region(const region::Region& region, const CheckOptions& options = {});

}  // namespace pkfs::core
