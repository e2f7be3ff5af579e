// fs/journal/journal.cpp: undo-log transactions. See FORMAT.md, "Journal"
// and "Crash consistency" for the argument that every prefix of the persist
// sequence below recovers to the old or the new state.
#include "fs/journal/journal.h"

#include <atomic>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace pkfs::journal {

using format::JournalHeader;
using format::kJournalRecordsOffset;
using format::UndoRecordHeader;

namespace {

// The commit words are single aligned 8-byte stores; a process kill lands
// before or after one, never inside it.
void store_word(uint64_t* word, uint64_t value) {
  std::atomic_ref<uint64_t>(*word).store(value, std::memory_order_release);
}

uint64_t record_checksum(const std::byte* record, uint64_t length) {
  return format::xxh3(record, format::undo_record_bytes(length) - sizeof(uint64_t));
}

}  // namespace

void Journal::format(region::Region& region, uint64_t offset, uint64_t bytes) {
  auto header = format::stamped<JournalHeader>();
  header.journal_bytes = bytes;
  format::seal(header);
  header.last_sequence = 0;
  header.open_sequence = 0;
  std::memcpy(region.base() + offset, &header, sizeof header);
  // A stale record from an earlier format must not look like ours: records
  // carry the sequence they belong to and sequences restart at 1, so the
  // record area starts empty.
  std::memset(region.base() + offset + kJournalRecordsOffset, 0, bytes - kJournalRecordsOffset);
  region.persist(offset, bytes);
}

Result<std::unique_ptr<Journal>> Journal::open(region::Region& region, uint64_t offset, uint64_t bytes,
                                               UndoFilter filter) {
  if (bytes > region.size() || offset > region.size() - bytes || bytes <= kJournalRecordsOffset) {
    return Error(EUCLEAN, "journal lies outside the region");
  }
  std::unique_ptr<Journal> journal(new Journal(region, offset, bytes));
  journal->m_filter = std::move(filter);
  // One copy, validated; its sequence words are what the journal uses after.
  const auto header = region::copy_from_region<JournalHeader>(region.base() + offset);
  if (!format::stamp_ok(header)) {
    return Error(EUCLEAN, "journal header: bad tag or version");
  }
  if (!format::checksum_ok(header)) return Error(EUCLEAN, "journal header: checksum mismatch");
  // Outside the checksum, so checked by value: reserved words are zero.
  for (uint64_t word : header.reserved2) {
    if (word != 0) return Error(EUCLEAN, "journal header: reserved words are not zero");
  }
  if (header.journal_bytes != bytes)
    return Error(EUCLEAN, "journal header: size does not match the superblock");
  uint64_t open = header.open_sequence;
  uint64_t last = header.last_sequence;
  if (open != 0 && open != last) {
    return Error(EUCLEAN, "journal header: open transaction " + std::to_string(open) +
                              " is not the last one begun (" + std::to_string(last) + ")");
  }
  // The next transaction is last + 1, and 0 means "none".
  if (last == UINT64_MAX) return Error(EUCLEAN, "journal header: last sequence leaves no next one");
  journal->m_open_sequence = open;
  journal->m_last_sequence = last;
  return journal;
}

JournalHeader* Journal::header() const {
  return reinterpret_cast<JournalHeader*>(m_region.base() + m_offset);
}

bool Journal::needs_recovery() const { return m_open_sequence != 0; }

uint64_t Journal::last_sequence() const { return m_last_sequence; }

void Journal::set_open_sequence(uint64_t sequence) {
  m_open_sequence = sequence;
  store_word(&header()->open_sequence, sequence);
}

void Journal::set_last_sequence(uint64_t sequence) {
  m_last_sequence = sequence;
  store_word(&header()->last_sequence, sequence);
}

uint64_t scan_undo_records(const std::byte* area, uint64_t bytes, uint64_t sequence,
                           const std::function<bool(const UndoRecord&)>& visit) {
  std::vector<std::byte> copy;
  uint64_t position = kJournalRecordsOffset;
  uint64_t index = 0;
  // Every step advances by at least one record header and checksum, and
  // stops at the end of the journal area.
  while (position + sizeof(UndoRecordHeader) + sizeof(uint64_t) <= bytes) {
    const auto record = region::copy_from_region<UndoRecordHeader>(area + position);
    if (!format::stamp_ok(record) || record.sequence != sequence) break;
    uint64_t total = format::undo_record_bytes(record.length);
    if (record.length == 0 || total > bytes - position) break;
    copy.resize(total);
    std::memcpy(copy.data(), area + position, total);
    asm volatile("" ::: "memory");
    // The header again from the copy: the region may have changed since.
    UndoRecordHeader copied;
    std::memcpy(&copied, copy.data(), sizeof copied);
    uint64_t stored;
    std::memcpy(&stored, copy.data() + total - sizeof stored, sizeof stored);
    UndoRecord found;
    found.index = index;
    found.position = position;
    found.target = record.target_offset;
    found.length = record.length;
    found.old_bytes = copy.data() + sizeof(UndoRecordHeader);
    found.checksum_ok = std::memcmp(&copied, &record, sizeof record) == 0 &&
                        stored == record_checksum(copy.data(), record.length);
    ++index;
    if (!visit(found)) break;
    position += total;
  }
  return index;
}

bool undo_target_ok(const UndoRecord& record, uint64_t region_size, uint64_t journal_offset,
                    uint64_t journal_bytes) {
  uint64_t end = record.target + record.length;
  bool outside = end < record.target || end > region_size;
  bool in_journal = record.target < journal_offset + journal_bytes && end > journal_offset;
  return !outside && !in_journal;
}

Result<uint64_t> Journal::roll_back(uint64_t sequence) {
  // Collect the valid records of this transaction in order; the first record
  // that is torn, stale or of another transaction ends the log. Each is
  // applied from scan_undo_records' private copy, never from the region.
  struct Found {
    uint64_t copy_offset, target, length;  // copy_offset: of the old bytes in `copies`
  };
  std::vector<Found> records;
  std::vector<std::byte> copies;
  bool refused = false;
  scan_undo_records(m_region.base() + m_offset, m_bytes, sequence, [&](const UndoRecord& record) {
    if (!record.checksum_ok) return false;  // torn (or changed under us): never applied
    if (!undo_target_ok(record, m_region.size(), m_offset, m_bytes)) {
      refused = true;
      return false;
    }
    uint64_t copy_offset = copies.size();
    copies.insert(copies.end(), record.old_bytes, record.old_bytes + record.length);
    records.push_back({copy_offset, record.target, record.length});
    return true;
  });
  if (refused) {
    return Error(EUCLEAN, "journal record " + std::to_string(records.size()) + " of transaction " +
                              std::to_string(sequence) + " targets bytes outside the metadata");
  }
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    // The private copy is the image: the filter may rewrite it in place.
    std::byte* old_bytes = copies.data() + it->copy_offset;
    if (m_filter) m_filter(it->target, old_bytes, it->length, m_region.base() + it->target);
    std::memcpy(m_region.base() + it->target, old_bytes, it->length);
  }
  m_region.persist(0, m_region.size());
  set_open_sequence(0);
  m_region.persist(m_offset, sizeof(JournalHeader));
  return records.size();
}

Result<Journal::Recovery> Journal::recover() {
  uint64_t open = m_open_sequence;
  if (open == 0) return Recovery{};
  TRY_ASSIGN(uint64_t count, roll_back(open));
  return Recovery{open, count};
}

std::unique_ptr<Transaction> Journal::begin() {
  if (m_open) std::abort();  // broken invariant: the caller serialises transactions
  m_open = true;
  return std::unique_ptr<Transaction>(new Transaction(*this));
}

void Transaction::start() {
  // From DRAM: a last_sequence changed in the region must not make this
  // transaction's records look like another's (or like "none", 0).
  if (m_journal.m_last_sequence == UINT64_MAX) std::abort();  // refused at open; +1 per transaction
  m_sequence = m_journal.m_last_sequence + 1;
  m_journal.set_last_sequence(m_sequence);
  m_journal.set_open_sequence(m_sequence);
  m_journal.m_region.persist(m_journal.m_offset, sizeof(JournalHeader));
}

Result<void> Transaction::log(uint64_t offset, uint64_t length) {
  if (m_finished) std::abort();
  if (length == 0) return success();
  // Already saved by this transaction? The first save holds the old bytes.
  auto next = m_logged.upper_bound(offset);
  if (next != m_logged.begin()) {
    auto previous = std::prev(next);
    if (previous->first <= offset && previous->second >= offset + length) return success();
  }
  uint64_t total = format::undo_record_bytes(length);
  if (m_used + total > m_journal.capacity_bytes()) {
    return Error(ENOSPC, "journal full: transaction needs more than " +
                             std::to_string(m_journal.capacity_bytes()) + " bytes");
  }
  if (m_sequence == 0) start();
  region::Region& region = m_journal.m_region;
  uint64_t position = m_journal.m_offset + kJournalRecordsOffset + m_used;
  // Built in private memory and copied in one piece: the checksum covers the
  // bytes we saved, whatever the region holds in the meantime.
  std::vector<std::byte>& buffer = m_journal.m_record;
  buffer.assign(total, std::byte{0});
  std::byte* record = buffer.data();
  auto header = format::stamped<UndoRecordHeader>();
  header.sequence = m_sequence;
  header.target_offset = offset;
  header.length = static_cast<uint32_t>(length);
  std::memcpy(record, &header, sizeof header);
  std::memcpy(record + sizeof header, region.base() + offset, length);
  uint64_t checksum = record_checksum(record, length);
  std::memcpy(record + total - sizeof checksum, &checksum, sizeof checksum);
  std::memcpy(region.base() + position, record, total);
  // The record must be durable before the caller changes the bytes in place.
  region.persist(position, total);
  m_used += total;
  m_logged[offset] = std::max(m_logged[offset], offset + length);
  m_low = std::min(m_low, offset);
  m_high = std::max(m_high, offset + length);
  return success();
}

void Transaction::fresh(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  m_logged[offset] = std::max(m_logged[offset], offset + length);
  m_low = std::min(m_low, offset);
  m_high = std::max(m_high, offset + length);
}

void Transaction::commit() {
  if (m_finished) std::abort();
  m_finished = true;
  if (m_sequence != 0) {
    region::Region& region = m_journal.m_region;
    region.persist(m_low, m_high - m_low);  // every in-place change before the commit word
    m_journal.set_open_sequence(0);
    region.persist(m_journal.m_offset, sizeof(JournalHeader));
  }
  m_journal.m_open = false;
  for (auto& action : m_commit_actions) action();
}

void Transaction::abort() {
  if (m_finished) return;
  m_finished = true;
  if (m_sequence != 0) {
    auto result = m_journal.roll_back(m_sequence);
    // Our own records were just written: a failure here means memory corruption.
    if (!result) std::abort();
  }
  m_journal.m_open = false;
  for (auto it = m_abort_actions.rbegin(); it != m_abort_actions.rend(); ++it) (*it)();
}

Transaction::~Transaction() { abort(); }

}  // namespace pkfs::journal
