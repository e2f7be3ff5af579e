// fs/journal/journal.h: atomic metadata transactions by undo logging.
//
// Owns: the journal area of a region (see FORMAT.md, "Journal"). Before a
// transaction changes a metadata range in place it appends the range's old
// bytes to the journal; one aligned 8-byte store of `open_sequence = 0`
// commits. Recovery rolls back an open transaction. Knows byte ranges only,
// never what they mean.
//
// The region is shared with processes that may write it at any time, so the
// header is copied and validated once at open and its sequence words are
// kept in DRAM after; a record is built in private memory and copied to the
// region in one piece, and recovery copies each record (bounded by the
// journal area) to private memory, verifies the copy and applies the copy.
//
// Locking: one transaction at a time. The caller serialises (core holds its
// write lock across begin..commit); the journal has no mutex of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "fs/base/result.h"
#include "fs/format/format.h"
#include "fs/region/region.h"

namespace pkfs::journal {

class Transaction;

// Lets the owner of a structure adjust an undo image just before a rollback
// writes it back: `image` holds the `length` old bytes for region offset
// `target`; `current` points at the bytes in place now. The allocator uses
// it so that a chunk handed out by a rolled-back transaction comes back as
// "free, dirty" rather than "free, known zero": it may hold data by then.
using UndoFilter =
    std::function<void(uint64_t target, std::byte* image, uint64_t length, const std::byte* current)>;

// One undo record of an open transaction, as recovery reads it.
struct UndoRecord {
  uint64_t index = 0;     // 0 for the transaction's first record
  uint64_t position = 0;  // of the record, from the start of the journal area
  uint64_t target = 0;    // region offset its old bytes belong to
  uint64_t length = 0;
  const std::byte* old_bytes = nullptr;  // `length` bytes of a private copy, valid during the call
  bool checksum_ok = false;              // false: torn, or changed in the region; never to be applied
};

// Walks the records of transaction `sequence` in the journal area
// [area, area+bytes), oldest first, the one reading recovery and fsck share.
// Each record is copied once to private memory and verified from the copy
// (bytes changed in the region after the checksum cannot reach `visit`).
// The log ends at the first record whose tag, version, sequence or length
// does not fit, or when `visit` returns false; recovery stops at the first
// checksum mismatch too (a kill may tear the last record), fsck reads on to
// tell a torn end from damage. Bounded: every step advances by at least one
// record header and checksum and never reads past the area. Returns the
// number of records visited.
uint64_t scan_undo_records(const std::byte* area, uint64_t bytes, uint64_t sequence,
                           const std::function<bool(const UndoRecord&)>& visit);

// True when the record's target lies inside the region and outside the
// journal at [journal_offset, journal_offset+journal_bytes): recovery
// refuses a transaction with any other record.
bool undo_target_ok(const UndoRecord& record, uint64_t region_size, uint64_t journal_offset,
                    uint64_t journal_bytes);

class Journal {
 public:
  // Writes an empty journal header. REQUIRES: the range lies inside region.
  static void format(region::Region& region, uint64_t offset, uint64_t bytes);

  // Checks the header of the journal at [offset, offset+bytes). Does not
  // recover. Errors: EUCLEAN naming the problem (also a last sequence of
  // 2^64 - 1, which leaves no next one).
  static Result<std::unique_ptr<Journal>> open(region::Region& region, uint64_t offset, uint64_t bytes,
                                               UndoFilter filter = {});

  // True when a transaction was interrupted and must be rolled back.
  bool needs_recovery() const;

  // Rolls back the interrupted transaction, if any, and returns how many
  // undo records it applied (0 if there was nothing to do) and its sequence.
  // Errors: EUCLEAN if a record points outside the region or into the journal.
  // Reads at most the journal area, each record once.
  struct Recovery {
    uint64_t sequence = 0;
    uint64_t records = 0;
  };
  Result<Recovery> recover();

  // Starts a transaction. REQUIRES: no other transaction is open.
  std::unique_ptr<Transaction> begin();

  uint64_t capacity_bytes() const { return m_bytes - format::kJournalRecordsOffset; }
  uint64_t last_sequence() const;

 private:
  friend class Transaction;
  Journal(region::Region& region, uint64_t offset, uint64_t bytes)
      : m_region(region), m_offset(offset), m_bytes(bytes) {}
  format::JournalHeader* header() const;
  // Stores the sequence words in the region and in DRAM.
  void set_open_sequence(uint64_t sequence);
  void set_last_sequence(uint64_t sequence);
  // Restores every valid record of `sequence`, newest first.
  Result<uint64_t> roll_back(uint64_t sequence);

  region::Region& m_region;
  uint64_t m_offset;
  uint64_t m_bytes;
  UndoFilter m_filter;
  // The header's sequence words as this process last stored them (or found
  // them valid at open); never read back from the region.
  uint64_t m_open_sequence = 0;
  uint64_t m_last_sequence = 0;
  bool m_open = false;  // a Transaction exists
  // Where Transaction::log builds a record; kept for the next one.
  std::vector<std::byte> m_record;
};

// One atomic group of metadata changes. Destroying an uncommitted
// transaction aborts it: the region gets its old bytes back and the abort
// actions run, newest first.
class Transaction {
 public:
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Saves the current bytes of [offset, offset+length) in the journal, once
  // per range per transaction. Call before changing them in place.
  // Errors: ENOSPC when the journal is full (the caller aborts).
  Result<void> log(uint64_t offset, uint64_t length);

  // log() then copy `value` to `offset`.
  template <typename T>
  Result<void> put(uint64_t offset, const T& value) {
    TRY(log(offset, sizeof(T)));
    std::memcpy(m_journal.m_region.base() + offset, &value, sizeof(T));
    return success();
  }

  // Declares [offset, offset+length) newly allocated by this transaction:
  // its old bytes need no saving, because an abort or a recovery frees it
  // again and free space has no contents to keep.
  void fresh(uint64_t offset, uint64_t length);

  // DRAM bookkeeping that must follow the transaction's fate.
  void on_commit(std::function<void()> action) { m_commit_actions.push_back(std::move(action)); }
  void on_abort(std::function<void()> action) { m_abort_actions.push_back(std::move(action)); }

  // Makes every change durable and atomic; runs the commit actions.
  void commit();
  // Restores every logged range; runs the abort actions.
  void abort();

  uint64_t journal_bytes_used() const { return m_used; }
  uint64_t journal_bytes_free() const { return m_journal.capacity_bytes() - m_used; }
  uint64_t sequence() const { return m_sequence; }

 private:
  friend class Journal;
  explicit Transaction(Journal& journal) : m_journal(journal) {}
  void start();  // lazily, at the first log()

  Journal& m_journal;
  uint64_t m_sequence = 0;  // 0 until the first log()
  uint64_t m_used = 0;      // bytes of records written
  bool m_finished = false;
  std::map<uint64_t, uint64_t> m_logged;    // offset -> end of ranges already saved
  uint64_t m_low = UINT64_MAX, m_high = 0;  // span of changed bytes, for the final persist
  std::vector<std::function<void()>> m_commit_actions;
  std::vector<std::function<void()>> m_abort_actions;
};

}  // namespace pkfs::journal
