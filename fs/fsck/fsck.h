// fs/fsck/fsck.h: checking and repairing a whole region (fsck.pkfs's layer).
//
// Owns: the invariants of FORMAT.md ("Invariants"), checked pass by pass
// without trusting any of them. Used by the crash-injection tests after every
// simulated crash, and the base fsck.pkfs builds on. check_region never
// writes; repair_region (repair.cpp) is the one writer, and fsck.pkfs is a
// thin main over both. The problems both report are listed in problems.h.
//
// Below core: parses the region through fs/format, fs/journal and fs/alloc,
// never through core::Filesystem (it exists to catch core's bugs, so it must
// not share core's assumptions, and a mount refuses the damage it reads).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fs/base/result.h"
#include "fs/fsck/problems.h"
#include "fs/region/region.h"

namespace pkfs::fsck {

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

// Every problem code belongs to one pass (problems.h, kPassCount of them).
int check_pass_of(const std::string& code);  // 1..kPassCount; 3 for a code not in the table
const char* check_pass_name(int pass);       // "Checking superblock and backup", ...

struct CheckOptions {
  // Also read every kChunkFreeZero chunk and report one that is not all
  // zero (2 MiB each: slow on large regions, so off by default).
  bool verify_known_zero = false;
};

// Called now and then with the pass running and how far it is (done of
// total, in slots or chunks); for progress bars. May be empty.
//
// Cancelling: the callback returns false to stop. check_region then returns
// Error(ECANCELED) and has written nothing; repair_region returns
// Error(ECANCELED) too, having written at most step 1 (superblocks restored
// and the journal recovered, each complete and consistent): the progress
// callback is only called while the model is built, before any repair of
// step 3 is written. The callback must not throw.
using Progress = std::function<bool(int pass, uint64_t done, uint64_t total)>;

// Checks every structure of the region. An open transaction that a mount
// would roll back is not a problem: the region is checked as that rollback
// leaves it (without writing it), and the report says so. One a mount
// could not roll back is reported as a problem (JOURNAL_OPEN).
// Errors only when the region cannot be read at all (no superblock), and
// ECANCELED when `progress` asked to stop.
Result<CheckReport> check_region(const region::Region& region, const CheckOptions& options = {},
                                 const Progress& progress = {});

// ---------------------------------------------------------------------------
// Repair (repair.cpp). See FORMAT.md, "Repair", for what each problem
// becomes.

enum class RepairMode {
  kAll,    // fsck -y: repair everything repairable
  kPreen,  // fsck -p: repair only what needs no decision; otherwise change
           // nothing beyond journal recovery and report what needs -y
};

struct RepairOptions {
  RepairMode mode = RepairMode::kAll;
  bool verify_known_zero = false;  // as CheckOptions
};

struct RepairAction {
  std::string code;     // the check's problem code
  std::string message;  // the problem, then "; " and what was (or would be) done
  bool safe = false;    // needs no decision: -p may do it
};

struct RepairReport {
  std::vector<RepairAction> actions;  // every problem found, in the order found
  bool applied = false;               // false: -p found a problem needing -y; nothing beyond
                                      // journal recovery was written
  uint64_t recovered_sequence = 0;    // journal transaction rolled back, 0 if none
  uint64_t recovered_records = 0;
  bool marked_clean = false;  // the superblock was not clean or recorded errors, and now is clean
  uint64_t unsafe_count() const {
    uint64_t count = 0;
    for (const RepairAction& action : actions) count += action.safe ? 0 : 1;
    return count;
  }
};

// Repairs the region in place. REQUIRES: the caller holds the region
// exclusively (no daemon has it mounted). Rolls back an open journal
// transaction first, then rebuilds a model of the filesystem in DRAM,
// decides every repair on the model, and writes the differences through the
// journal with the superblock's Error state set until the last transaction,
// which clears it and sets check_time_ns: a crash part way leaves a region
// that mount refuses and fsck repairs again. Errors: ENODATA when neither
// superblock is usable, EPROTONOSUPPORT/EROFS for features this build cannot
// write, ECANCELED when `progress` asked to stop.
Result<RepairReport> repair_region(region::Region& region, const RepairOptions& options = {},
                                   const Progress& progress = {});

}  // namespace pkfs::fsck
