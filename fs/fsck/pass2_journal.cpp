// fs/fsck/pass2_journal.cpp: pass 2, the journal header (see passes.h).
// Reading an open transaction's records is the journal's own
// (journal::scan_undo_records): check lays them over the region, repair
// recovers through journal::Journal.
#include "fs/fsck/passes.h"

namespace pkfs::fsck {

JournalRepair walk_journal_header(Fixer& fixer, const JournalHeader& header, uint64_t journal_bytes,
                                  JournalHeader* restored) {
  static const std::string kRewritten = "rewritten empty (an open transaction is lost)";
  const bool tag_ok = header.tag == format::kJournalTag;
  if (!format::stamp_ok(header) || !format::checksum_ok(header)) {
    // Only an exact restore of the tag keeps the commit words: a header
    // whose other fields are wrong is rewritten empty.
    std::string how;
    auto sane = [&](const JournalHeader& h) { return h.journal_bytes == journal_bytes && reserved_zero(h); };
    const auto salvaged = salvage(header, sane, &how);
    const bool exact = salvaged && how.rfind("tag", 0) == 0;
    const std::string what = !tag_ok                     ? "bad tag"
                             : !format::stamp_ok(header) ? "unknown version"
                                                         : "checksum mismatch";
    if (!fixer.fix_problem(rejection_code(Code::kJournalTag, tag_ok, format::checksum_ok(header)),
                           "journal header: " + what, exact ? how : kRewritten)) {
      return JournalRepair::kNone;
    }
    if (!exact) return JournalRepair::kRewrite;
    *restored = *salvaged;
    return JournalRepair::kRestore;
  }
  bool rewrite = false;
  auto invalid = [&](const std::string& what) {
    rewrite |= fixer.fix_problem(Code::kJournalInvalid, "journal header: " + what, kRewritten);
  };
  if (!reserved_zero(header)) invalid("reserved fields are not zero");
  if (header.journal_bytes != journal_bytes) {
    invalid("size " + std::to_string(header.journal_bytes) + " does not match the superblock's " +
            std::to_string(journal_bytes));
  }
  // The next transaction is last + 1, and 0 means "none".
  if (header.last_sequence == UINT64_MAX) invalid("last sequence leaves no next one");
  // A transaction open but not the last begun: no mount rolls it back.
  if (header.open_sequence != 0 && header.open_sequence != header.last_sequence) {
    rewrite |= fixer.fix_problem(Code::kJournalOpen,
                                 "journal: transaction " + std::to_string(header.open_sequence) +
                                     " is open (last begun: " + std::to_string(header.last_sequence) +
                                     "; they must be equal)",
                                 kRewritten, Preen::kNo);
  }
  return rewrite ? JournalRepair::kRewrite : JournalRepair::kNone;
}

}  // namespace pkfs::fsck
