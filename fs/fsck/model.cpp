// fs/fsck/model.cpp: the read-only model of a region (see model.h).
#include "fs/fsck/model.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "fs/alloc/allocator.h"
#include "fs/journal/journal.h"

namespace pkfs::fsck {

std::string type_name(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFSOCK: return "socket";
    default: return "file";
  }
}

bool label_terminated(const format::Superblock& sb) {
  return strnlen(sb.label, sizeof sb.label) != sizeof sb.label;
}

bool label_padded(const format::Superblock& sb) {
  const size_t length = strnlen(sb.label, sizeof sb.label);
  return all_zero(sb.label + length, sizeof sb.label - length);
}

bool reserved_zero(const format::Superblock& sb) {
  return sb.reserved0 == 0 && all_zero(sb.reserved1, sizeof sb.reserved1);
}

bool reserved_zero(const format::JournalHeader& header) {
  return header.reserved0 == 0 && header.reserved1 == 0 &&
         all_zero(header.reserved2, sizeof header.reserved2);
}

void Claims::reset(uint64_t chunk_count) {
  m_chunk_owner.assign(chunk_count, 0);
  m_split.clear();
}

bool Claims::block_claimed(uint64_t block) const {
  auto it = m_split.find(block / format::kBlocksPerChunk);
  if (it == m_split.end()) return false;
  const uint64_t bit = block % format::kBlocksPerChunk;
  return ((it->second[bit / 64] >> (bit % 64)) & 1) != 0;
}

void Claims::claim_block(uint64_t block) {
  const uint64_t bit = block % format::kBlocksPerChunk;
  m_split[block / format::kBlocksPerChunk][bit / 64] |= uint64_t{1} << (bit % 64);
}

void Claims::unclaim_block(uint64_t block) {
  auto it = m_split.find(block / format::kBlocksPerChunk);
  if (it == m_split.end()) return;
  const uint64_t bit = block % format::kBlocksPerChunk;
  it->second[bit / 64] &= ~(uint64_t{1} << (bit % 64));
  if (std::all_of(it->second.begin(), it->second.end(), [](uint64_t word) { return word == 0; }))
    m_split.erase(it);
}

const Claims::Bits* Claims::split_claims(uint64_t chunk) const {
  auto it = m_split.find(chunk);
  return it == m_split.end() ? nullptr : &it->second;
}

void Model::roll_back_into(std::byte* out, uint64_t offset, uint64_t length, size_t first) const {
  for (size_t i = m_rollback.size(); i-- > first;) {
    const Undo& undo = m_rollback[i];
    const uint64_t from = std::max(offset, undo.target);
    const uint64_t to = std::min(offset + length, undo.target + undo.length);
    if (from < to) {
      std::memcpy(out + (from - offset), m_rollback_bytes.data() + undo.image + (from - undo.target),
                  to - from);
    }
  }
}

std::optional<std::pair<uint64_t, uint64_t>> Model::load_rollback() {
  const auto header = read<format::JournalHeader>(m_layout.journal_offset);
  if (!format::stamp_ok(header) || !format::checksum_ok(header) ||
      header.journal_bytes != m_layout.journal_bytes || header.open_sequence == 0 ||
      header.open_sequence != header.last_sequence) {
    return std::nullopt;
  }
  const uint64_t journal_offset = m_layout.journal_offset;
  const uint64_t journal_bytes = m_layout.journal_bytes;
  std::vector<Undo> records;
  std::vector<std::byte> bytes;
  bool refused = false;
  journal::scan_undo_records(
      m_region.base() + journal_offset, journal_bytes, header.open_sequence,
      [&](const journal::UndoRecord& record) {
        if (!record.checksum_ok) return false;
        if (!journal::undo_target_ok(record, m_region.size(), journal_offset, journal_bytes)) {
          refused = true;  // a mount refuses it too
          return false;
        }
        records.push_back({record.target, bytes.size(), record.length});
        bytes.insert(bytes.end(), record.old_bytes, record.old_bytes + record.length);
        return true;
      });
  if (refused) return std::nullopt;
  m_rollback = std::move(records);
  m_rollback_bytes = std::move(bytes);
  // The undo filter, newest record first as the rollback applies them: each
  // sees the bytes in place with the newer records already restored.
  std::vector<std::byte> current;
  for (size_t i = m_rollback.size(); i-- > 0;) {
    const Undo& undo = m_rollback[i];
    current.assign(m_region.base() + undo.target, m_region.base() + undo.target + undo.length);
    roll_back_into(current.data(), undo.target, undo.length, i + 1);
    alloc::Allocator::adjust_undo_image(m_layout, undo.target, m_rollback_bytes.data() + undo.image,
                                        undo.length, current.data());
  }
  m_names_loaded = false;  // names read before are of the region not rolled back
  m_names.clear();
  return std::pair{header.open_sequence, uint64_t{m_rollback.size()}};
}

std::string Model::describe_by_names(uint64_t ino) const {
  if (!m_names_loaded) {
    m_names_loaded = true;
    for (uint64_t slot = 0; slot < m_sb.dirent_high_water; ++slot) {
      const auto dirent = read<format::Dirent>(dirent_offset(slot));
      if (!format::dirent_valid(dirent)) continue;
      m_names.try_emplace(dirent.ino, dirent.parent_ino, std::string(format::dirent_name(dirent)));
    }
  }
  std::string path;
  uint64_t at = ino;
  for (int depth = 0; at != format::kRootIno && depth < 256; ++depth) {
    auto it = m_names.find(at);
    if (it == m_names.end()) return "inode " + std::to_string(ino);
    path.insert(0, it->second.second).insert(0, 1, '/');
    at = it->second.first;
  }
  if (at != format::kRootIno) return "inode " + std::to_string(ino);
  return "inode " + std::to_string(ino) + " (" + (path.empty() ? "/" : path) + ")";
}

}  // namespace pkfs::fsck
