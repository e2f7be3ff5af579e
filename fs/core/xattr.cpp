// fs/core/xattr.cpp: extended attributes, one XattrBlock per inode holding
// packed (name, value) entries; see FORMAT.md, "Extended attributes".
#include <sys/xattr.h>

#include <cstring>
#include <mutex>

#include "fs/core/internal.h"

namespace pkfs::core {

using format::Inode;
using format::XattrBlock;
using format::XattrEntryHeader;

namespace {

struct Entry {
  std::string name;
  std::string value;
};

std::vector<Entry> unpack(const XattrBlock& block) {
  std::vector<Entry> entries;
  uint32_t position = 0;
  for (uint16_t i = 0; i < block.entry_count; ++i) {
    XattrEntryHeader header;
    std::memcpy(&header, block.payload + position, sizeof header);
    position += sizeof header;
    const char* text = reinterpret_cast<const char*>(block.payload + position);
    entries.push_back(
        {std::string(text, header.name_length), std::string(text + header.name_length, header.value_length)});
    position += header.name_length + header.value_length;
  }
  return entries;
}

// Packs entries into `block`; false when they do not fit.
bool pack(const std::vector<Entry>& entries, XattrBlock& block) {
  uint32_t position = 0;
  for (const Entry& entry : entries) {
    uint64_t need = sizeof(XattrEntryHeader) + entry.name.size() + entry.value.size();
    if (position + need > format::kXattrPayloadBytes) return false;
    XattrEntryHeader header{static_cast<uint8_t>(entry.name.size()), 0,
                            static_cast<uint16_t>(entry.value.size())};
    std::memcpy(block.payload + position, &header, sizeof header);
    position += sizeof header;
    std::memcpy(block.payload + position, entry.name.data(), entry.name.size());
    position += static_cast<uint32_t>(entry.name.size());
    std::memcpy(block.payload + position, entry.value.data(), entry.value.size());
    position += static_cast<uint32_t>(entry.value.size());
  }
  block.entry_count = static_cast<uint16_t>(entries.size());
  block.used_bytes = position;
  return true;
}

}  // namespace

// The block is copied out of the region once, and the copy validated and
// returned: unpack() walks entries the validator proved fit, which holds
// only for bytes no other process can change meanwhile.
Result<std::optional<XattrBlock>> Filesystem::xattr_block(const Inode& inode) const {
  const uint64_t offset = inode.xattr_block;  // read once
  const uint64_t ino = inode.ino;
  if (offset == 0) return std::optional<XattrBlock>();
  if (offset % format::kBlockSize != 0 || offset / format::kBlockSize > UINT32_MAX ||
      !m_allocator->in_data_area({static_cast<uint32_t>(offset / format::kBlockSize), 1})) {
    return Error(EUCLEAN, "inode " + std::to_string(ino) + ": xattr block outside the data area");
  }
  std::optional<XattrBlock> block(copy_from_region<XattrBlock>(m_region->base() + offset));
  std::string what;
  if (!format::xattr_block_valid(*block, &what) || block->owner_ino != ino) {
    return Error(EUCLEAN, "inode " + std::to_string(ino) +
                              ": xattr block: " + (what.empty() ? "owned by another inode" : what));
  }
  return block;
}

bool is_reserved_xattr(std::string_view name) { return name.starts_with(kReservedXattrPrefix); }

Result<std::optional<std::string>> Filesystem::find_xattr_locked(Ino ino, std::string_view name) {
  TRY(node(ino));
  TRY_ASSIGN(std::optional<XattrBlock> block, xattr_block(inode_copy(ino)));
  if (block) {
    for (Entry& entry : unpack(*block)) {
      if (entry.name == name) return std::optional<std::string>(std::move(entry.value));
    }
  }
  return std::optional<std::string>();
}

Result<std::string> Filesystem::getxattr(Ino ino, std::string_view name) {
  std::shared_lock lock(m_mutex);
  TRY(node(ino));
  if (name.empty() || name.size() > format::kXattrNameMax)
    return Error(ERANGE, "attribute name length out of range");
  // Reserved names are pkfs's own records: to callers they do not exist.
  if (!is_reserved_xattr(name)) {
    auto found = find_xattr_locked(ino, name);
    if (!found) {
      // Recorded in the superblock (under the write lock) so the next mount
      // asks for fsck.pkfs, as a damaged extent block is on read.
      lock.unlock();
      std::unique_lock write_lock(m_mutex);
      if (found.error().code() == EUCLEAN) record_error(EUCLEAN, ino, "getxattr");
      return std::move(found).error();
    }
    if (found.value()) return std::move(*found.value());
  }
  return Error(ENODATA, "no attribute \"" + std::string(name) + "\"");
}

Result<std::vector<std::string>> Filesystem::listxattr(Ino ino) {
  std::shared_lock lock(m_mutex);
  TRY(node(ino));
  auto loaded = xattr_block(inode_copy(ino));
  if (!loaded) {
    lock.unlock();
    std::unique_lock write_lock(m_mutex);
    if (loaded.error().code() == EUCLEAN) record_error(EUCLEAN, ino, "listxattr");
    return std::move(loaded).error();
  }
  const std::optional<XattrBlock>& block = loaded.value();
  std::vector<std::string> names;
  if (block) {
    for (Entry& entry : unpack(*block)) {
      if (!is_reserved_xattr(entry.name)) names.push_back(std::move(entry.name));
    }
  }
  return names;
}

Result<void> Filesystem::setxattr(Ino ino, std::string_view name, std::string_view value, int flags) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY(node(ino));
  if (name.empty() || name.size() > format::kXattrNameMax)
    return Error(ERANGE, "attribute name length out of range");
  if (is_reserved_xattr(name)) {
    return Error(EPERM, "attribute names starting with \"" + std::string(kReservedXattrPrefix) +
                            "\" are reserved for pkfs");
  }
  return store_xattr_locked(ino, name, value, flags, Ctime::kTouch);
}

Result<void> Filesystem::store_xattr_locked(Ino ino, std::string_view name, std::string_view value, int flags,
                                            Ctime ctime) {
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY(node(ino));
  if (name.empty() || name.size() > format::kXattrNameMax)
    return Error(ERANGE, "attribute name length out of range");
  if (value.size() > format::kXattrPayloadBytes) return Error(E2BIG, "attribute value too large");
  if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0) return Error(EINVAL, "unknown setxattr flags");
  Inode inode = inode_copy(ino);
  TRY_ASSIGN(std::optional<XattrBlock> current, xattr_block(inode));
  std::vector<Entry> entries = current ? unpack(*current) : std::vector<Entry>{};
  auto it = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.name == name; });
  if (it != entries.end() && (flags & XATTR_CREATE)) return Error(EEXIST, "attribute exists");
  if (it == entries.end() && (flags & XATTR_REPLACE)) return Error(ENODATA, "no such attribute");
  if (it != entries.end()) {
    it->value = std::string(value);
  } else {
    entries.push_back({std::string(name), std::string(value)});
  }
  auto block = format::stamped<XattrBlock>();
  block.owner_ino = ino;
  if (!pack(entries, block)) return Error(ENOSPC, "no room left in the inode's attribute block (4 KiB)");
  format::seal(block);
  auto txn = m_journal->begin();
  if (inode.xattr_block == 0) {
    TRY_ASSIGN(alloc::BlockRun run, m_allocator->allocate_blocks(*txn, 1));
    inode.xattr_block = uint64_t{run.region_block} * format::kBlockSize;
    inode.allocated_blocks += 1;
    txn->fresh(inode.xattr_block, format::kBlockSize);
  }
  TRY(txn->put(inode.xattr_block, block));
  if (ctime == Ctime::kTouch) inode.ctime_ns = now_ns();
  TRY(put_inode(*txn, inode));
  txn->commit();
  return success();
}

Result<void> Filesystem::removexattr(Ino ino, std::string_view name) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY(node(ino));
  if (is_reserved_xattr(name)) return Error(ENODATA, "no attribute \"" + std::string(name) + "\"");
  Inode inode = inode_copy(ino);
  TRY_ASSIGN(std::optional<XattrBlock> current, xattr_block(inode));
  std::vector<Entry> entries = current ? unpack(*current) : std::vector<Entry>{};
  auto it = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.name == name; });
  if (it == entries.end()) return Error(ENODATA, "no attribute \"" + std::string(name) + "\"");
  entries.erase(it);
  auto txn = m_journal->begin();
  if (entries.empty()) {
    TRY(m_allocator->free(*txn, {static_cast<uint32_t>(inode.xattr_block / format::kBlockSize), 1}));
    inode.xattr_block = 0;
    inode.allocated_blocks -= 1;
  } else {
    auto block = format::stamped<XattrBlock>();
    block.owner_ino = ino;
    pack(entries, block);
    format::seal(block);
    TRY(txn->put(inode.xattr_block, block));
  }
  inode.ctime_ns = now_ns();
  TRY(put_inode(*txn, inode));
  txn->commit();
  return success();
}

}  // namespace pkfs::core
