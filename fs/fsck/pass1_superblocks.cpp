// fs/fsck/pass1_superblocks.cpp: pass 1, the superblocks (see passes.h).
// For now only the field rules; choosing a superblock and comparing the
// backup are still walked in check.cpp and repair.cpp.
#include <cstring>

#include "fs/fsck/passes.h"

namespace pkfs::fsck {

void walk_superblock_fields(Fixer& fixer, const std::string& which, Superblock& sb) {
  // A label is the user's: preen leaves it alone.
  if (!label_terminated(sb)) {
    if (fixer.fix_problem(Code::kSuperblockInvalid, which + ": label is not NUL-terminated", "truncated",
                          Preen::kNo)) {
      sb.label[sizeof sb.label - 1] = 0;
    }
  } else if (!label_padded(sb)) {
    if (fixer.fix_problem(Code::kSuperblockInvalid, which + ": label is not NUL-padded", "padded with NULs",
                          Preen::kNo)) {
      const size_t length = strnlen(sb.label, sizeof sb.label);
      std::memset(sb.label + length, 0, sizeof sb.label - length);
    }
  }
  if (!reserved_zero(sb) &&
      fixer.fix_problem(Code::kSuperblockInvalid, which + ": reserved fields are not zero", "zeroed",
                        Preen::kYes)) {
    sb.reserved0 = 0;
    std::memset(sb.reserved1, 0, sizeof sb.reserved1);
  }
}

}  // namespace pkfs::fsck
