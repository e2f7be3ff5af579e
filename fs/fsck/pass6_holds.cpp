// fs/fsck/pass6_holds.cpp: pass 6, the hold table (see passes.h).
#include "fs/fsck/passes.h"

namespace pkfs::fsck {

void walk_holds(const Model& model, Fixer& fixer, const std::function<bool(uint64_t ino)>& in_use) {
  const format::Hold cleared{};
  for (uint64_t slot = 0; slot < model.layout().hold_count; ++slot) {
    const uint64_t offset = model.hold_offset(slot);
    const auto hold = model.read<format::Hold>(offset);
    if (format::hold_is_free(hold)) continue;
    std::string what;
    const std::string where = "hold " + std::to_string(slot);
    if (!format::hold_valid(hold, &what)) {
      if (fixer.fix_problem(
              rejection_code(Code::kHoldTag, hold.tag == format::kHoldTag, format::checksum_ok(hold)),
              std::string(where).append(": ").append(what), "cleared")) {
        fixer.stage(offset, cleared);
      }
      continue;
    }
    if (hold.flags != 0 &&
        fixer.fix_problem(Code::kHoldInvalid, where + ": reserved flags are set", "cleared")) {
      fixer.stage(offset, cleared);
      continue;
    }
    if (!in_use(hold.ino) &&
        fixer.fix_problem(Code::kHoldInode,
                          where + " (pid " + std::to_string(hold.pid) + "): names inode " +
                              std::to_string(hold.ino) + ", which is not in use",
                          "cleared")) {
      fixer.stage(offset, cleared);
    }
  }
}

}  // namespace pkfs::fsck
