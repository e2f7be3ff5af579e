// fs/fsck/passes.h: the walks the checker and the repairer share, one file
// per pass (passN_*.cpp), and the one function every problem they find goes
// through.
//
// A shared walk is the check: it reports each problem through
// Fixer::fix_problem. The checker's fix_problem records the problem and
// answers false; the repairer's records it with what it does and answers
// true, and the walk then makes the repair, staging its writes, which
// repair applies through the journal at the end. So check and repair cannot
// disagree about what is a problem.
//
// Passes 6 and 7, pass 2's journal header and pass 5's chunk-map blocks
// are one walk here; of passes 1 and 3 only the field rules are (a
// structure's padding and reserved words, and an inode's type-dependent
// fields). The rest of passes 1-5 is still walked twice, in check.cpp and
// repair.cpp: a new problem's check and its repair go together in the
// passN_*.cpp of its pass (the pass is its row in problems.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "fs/fsck/model.h"
#include "fs/fsck/problems.h"

namespace pkfs::fsck {

class Fixer {
 public:
  // e2fsck's fix_problem: reports `code` with `message` (the structure and
  // what is wrong with it); `fix` says what repair does about it. Returns
  // true when the caller is to make that repair. Preen (fsck -p) follows
  // the problem table's row for `code`, or `preen` where that row says
  // Preen::kPerFix.
  virtual bool fix_problem(Code code, const std::string& message, const std::string& fix, Preen preen) = 0;
  bool fix_problem(Code code, const std::string& message, const std::string& fix) {
    return fix_problem(code, message, fix, problem_info(code).preen);
  }

  // Stages new bytes for a region offset (only after fix_problem said yes).
  virtual void stage(uint64_t offset, const void* bytes, size_t length) = 0;
  template <typename T>
  void stage(uint64_t offset, const T& value) {
    stage(offset, &value, sizeof value);
  }

 protected:
  ~Fixer() = default;
};

// Pass 1 (pass1_superblocks.cpp): the fields of superblock `sb` the
// validators leave alone, its label's padding and its reserved words;
// `which` names it in messages. Repair fixes them in `sb`.
void walk_superblock_fields(Fixer& fixer, const std::string& which, format::Superblock& sb);

// Pass 2 (pass2_journal.cpp): the journal header, as a mount's
// journal::Journal::open reads it (`journal_bytes` is the superblock's).
// Returns what repair is to do: restore `*restored` (only the tag or version
// was wrong, and restoring it makes the checksum match, so the commit words
// are kept) or rewrite the journal empty. The open transaction a mount rolls
// back is not the header's problem: check lays it over the region, repair
// recovers it.
enum class JournalRepair : uint8_t { kNone, kRestore, kRewrite };
JournalRepair walk_journal_header(Fixer& fixer, const JournalHeader& header, uint64_t journal_bytes,
                                  JournalHeader* restored);

// Pass 3 (pass3_inodes.cpp), for one inode in use: the fields inode_valid
// leaves to a checker (those that depend on the type, the trim mark, and
// zeros where the format wants them); `who` names the inode in messages,
// built only when one needs it. Returns true when repair changed `inode`.
bool walk_inode_fields(Fixer& fixer, const std::function<std::string()>& who, format::Inode& inode);

// Pass 3, for one valid extent block: its unused entries are zero. Returns
// true when repair is to write the block again (from its extents, the
// unused entries zero).
bool walk_extent_block_fields(Fixer& fixer, const std::string& where, const format::ExtentBlock& block);

// Pass 3, for one valid xattr block: its reserved field and the payload
// past used_bytes are zero. Returns true when repair changed (and resealed)
// `block`.
bool walk_xattr_block_fields(Fixer& fixer, const std::string& where, format::XattrBlock& block);

// Pass 3, for one valid xattr block: `visit` with each entry's index,
// header and name, in order (the validator proved every entry fits).
void for_each_xattr_entry(const format::XattrBlock& block,
                          const std::function<void(uint16_t index, const format::XattrEntryHeader& header,
                                                   std::string_view name)>& visit);

// Pass 5 (pass5_space.cpp): chunk-map block `index`, read into `map`: valid
// and its reserved field zero. Repair rebuilds an invalid block in `map`
// (every state free and dirty, for the caller to set from the claims) or
// zeroes the field. kUnreadable: invalid and left so (check).
enum class ChunkMapRepair : uint8_t { kNone, kChanged, kRebuilt, kUnreadable };
ChunkMapRepair walk_chunk_map_block(Fixer& fixer, uint64_t index, ChunkMapBlock& map);

// Pass 6 (pass6_holds.cpp): every hold in use is valid and names an inode
// `in_use` says is in use; repair clears the others.
void walk_holds(const Model& model, Fixer& fixer, const std::function<bool(uint64_t ino)>& in_use);

// Pass 7 (pass7_zero.cpp): chunk `chunk`, marked free and known zero, at
// `bytes` (kChunkSize of them), is all zero. Returns true when repair is to
// mark it free and dirty.
bool walk_known_zero_chunk(Fixer& fixer, uint64_t chunk, const std::byte* bytes);

}  // namespace pkfs::fsck
