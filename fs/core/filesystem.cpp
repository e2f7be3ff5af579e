// fs/core/filesystem.cpp: opening and closing a filesystem, the DRAM indexes,
// inode bookkeeping, error recording and reclaiming of unlinked inodes.
#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <mutex>

#include "fs/core/internal.h"
#include "fs/core/zeroing.h"

namespace pkfs::core {

using format::Dirent;
using format::Inode;
using format::Superblock;

Result<void> check_name(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return Error(EINVAL, "invalid name");
  if (name.size() > format::kNameMax) return Error(ENAMETOOLONG, "name longer than 255 bytes");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Error(EINVAL, "name contains '/' or NUL");
  }
  return success();
}

Result<Superblock> read_superblock(const region::Region& region, bool backup) {
  if (region.size() < format::kMinRegionBytes) {
    return Error(ENODATA, "region of " + std::to_string(region.size()) + " bytes is too small to hold pkfs");
  }
  uint64_t offset =
      backup ? format::locate_backup_superblock(region.base(), region.size(), region.info().page_size) : 0;
  Superblock sb;
  std::memcpy(&sb, region.base() + offset, sizeof sb);
  TRY(format::verify_superblock(sb));
  return sb;
}

Filesystem::Filesystem(std::unique_ptr<region::Region> region) : m_region(std::move(region)) {}

Filesystem::~Filesystem() = default;

Result<std::unique_ptr<Filesystem>> Filesystem::open(std::unique_ptr<region::Region> region,
                                                     const OpenOptions& options) {
  std::unique_ptr<Filesystem> fs(new Filesystem(std::move(region)));
  TRY(fs->load(options));
  return fs;
}

Result<void> Filesystem::load(const OpenOptions& options) {
  m_log = options.log;
  m_holder_alive = options.holder_alive;
  m_read_only = options.read_only || m_region->read_only();

  // The primary superblock locates the journal; if a crash tore it in the
  // middle of a transaction, the backup (same layout) does.
  auto primary = read_superblock(*m_region);
  Superblock sb{};
  if (primary) {
    sb = primary.value();
  } else {
    if (primary.error().code() != EUCLEAN) return std::move(primary).error();
    auto backup = read_superblock(*m_region, true);
    if (!backup) {
      return Error(EUCLEAN, "primary superblock: " + primary.error().message() +
                                "; backup superblock: " + backup.error().message() + "; run fsck.pkfs");
    }
    sb = backup.value();
  }
  format::Compatibility compatibility = format::check_compatibility(sb);
  if (compatibility.access == format::Access::kRefuse) return Error(EPROTONOSUPPORT, compatibility.reason);
  if (compatibility.access == format::Access::kReadOnly && !m_read_only) {
    return Error(EROFS, compatibility.reason);
  }
  auto layout = format::layout_from_superblock(sb, m_region->size());
  if (!layout) return layout.error().with_context("run fsck.pkfs");
  m_layout = layout.value();

  auto journal = journal::Journal::open(
      *m_region, m_layout.journal_offset, m_layout.journal_bytes,
      [layout = m_layout](uint64_t target, std::byte* image, uint64_t length, const std::byte* current) {
        alloc::Allocator::adjust_undo_image(layout, target, image, length, current);
      });
  if (!journal) return journal.error().with_context("run fsck.pkfs");
  m_journal = std::move(journal).value();
  if (m_journal->needs_recovery()) {
    if (m_read_only) {
      return Error(EROFS,
                   "the journal holds an interrupted transaction; open the region read-write (or run "
                   "fsck.pkfs) to recover it");
    }
    auto recovery = m_journal->recover();
    if (!recovery) return recovery.error().with_context("journal recovery failed; run fsck.pkfs");
    m_report.recovered_sequence = recovery->sequence;
    m_report.recovered_records = recovery->records;
    if (m_log) {
      m_log("recovered the journal: rolled back transaction " + std::to_string(recovery->sequence) + " (" +
            std::to_string(recovery->records) + " records)");
    }
  }
  // Recovery may have restored the superblock: read it again.
  auto current = read_superblock(*m_region);
  if (!current)
    return Error(current.error().code(),
                 "primary superblock: " + current.error().message() + "; run fsck.pkfs");
  sb = current.value();
  if ((sb.state & format::kStateError) && !options.ignore_error_state) {
    return Error(EUCLEAN, "the region has recorded errors (" + std::to_string(sb.error_count) + ", first: " +
                              std::string(sb.first_error_what, strnlen(sb.first_error_what, 32)) +
                              "); run fsck.pkfs");
  }
  // The backup must be intact too: it is what fsck falls back on. It lies
  // where the superblock's layout says (a backing that grew since mkfs puts
  // the end of the backing elsewhere).
  Superblock backup;
  std::memcpy(&backup, m_region->base() + layout->backup_offset, sizeof backup);
  if (auto verified = format::verify_superblock(backup); !verified) {
    return Error(EUCLEAN, "backup superblock: " + verified.error().message() + "; run fsck.pkfs");
  }
  m_report.was_clean = (sb.state & format::kStateClean) != 0;
  layout = format::layout_from_superblock(sb, m_region->size());
  if (!layout) return layout.error().with_context("run fsck.pkfs");
  m_layout = layout.value();
  m_inode_high_water = sb.inode_high_water;
  m_dirent_high_water = sb.dirent_high_water;

  auto allocator = alloc::Allocator::open(*m_region, m_layout);
  if (!allocator) return allocator.error().with_context("run fsck.pkfs");
  m_allocator = std::move(allocator).value();
  TRY(scan_inodes());
  TRY(scan_dirents());
  TRY(scan_holds());
  inherit_references(options);
  if (m_read_only) return success();

  // Holds whose holder is gone go first. Nothing is open at an ordinary
  // mount: every orphan goes but those a live holder still maps (or, after
  // a takeover, the kernel may still reach), every trim completes.
  std::unique_lock lock(m_mutex);
  TRY_ASSIGN(m_report.stale_holds_released, release_stale_locked(false));
  m_report.holds_kept = m_holds.size();
  std::vector<Ino> orphans, trimming;
  for (const auto& [ino, node] : m_nodes) {
    const uint16_t flags = inode_copy(ino).flags;
    if (flags & format::kInodeOrphan) {
      // After a takeover the kernel may still hold an orphan open.
      if (node->unreferenced()) orphans.push_back(ino);
    } else if (flags & format::kInodeTrimming) {
      trimming.push_back(ino);
    }
  }
  for (Ino ino : trimming) TRY(finish_trim(ino));
  for (Ino ino : orphans) TRY(reclaim(ino));
  m_report.orphans_reclaimed = orphans.size();
  if (!orphans.empty() && m_log) m_log("reclaimed " + std::to_string(orphans.size()) + " orphaned inodes");
  return stamp_mount();
}

Result<void> Filesystem::scan_inodes() {
  m_free_inodes.clear();
  m_nodes.reserve(m_inode_high_water);
  const uint64_t max_extents = format::max_extent_count(m_layout);
  for (Ino ino = m_inode_high_water; ino-- > 1;) {
    const Inode inode = inode_copy(ino);
    if (format::inode_is_free(inode)) {
      std::string what;
      if (inode.tag != 0 && !format::inode_valid(inode, ino, &what)) {
        return Error(EUCLEAN, "free inode " + std::to_string(ino) + ": " + what + "; run fsck.pkfs");
      }
      m_free_inodes.push_back(ino);  // descending, so the lowest slot is reused first
      continue;
    }
    std::string what;
    if (!format::inode_valid(inode, ino, &what)) {
      return Error(EUCLEAN, "inode " + std::to_string(ino) + ": " + what + "; run fsck.pkfs");
    }
    // One comparison per inode, so mount stays fast; the chain itself is
    // checked, bounded, each time it is read (load_extents).
    if (inode.extent_count > max_extents) {
      return Error(EUCLEAN, "inode " + std::to_string(ino) + ": extent_count " +
                                std::to_string(inode.extent_count) + " is more than the region's " +
                                std::to_string(max_extents) + " data blocks could hold; run fsck.pkfs");
    }
    auto node = std::make_unique<Node>();
    if (S_ISDIR(inode.mode)) node->dir = std::make_unique<Directory>();
    m_nodes.emplace(ino, std::move(node));
  }
  auto root = m_nodes.find(format::kRootIno);
  if (root == m_nodes.end() || !root->second->dir) {
    return Error(EUCLEAN, "inode 1 (the root directory) is missing or not a directory; run fsck.pkfs");
  }
  m_report.inodes_in_use = m_nodes.size();
  return success();
}

Result<void> Filesystem::scan_dirents() {
  m_free_dirents.clear();
  for (uint64_t slot = m_dirent_high_water; slot-- > 0;) {
    const Dirent dirent = copy_from_region<Dirent>(m_region->base() + dirent_offset(slot));
    if (format::dirent_is_free(dirent)) {
      m_free_dirents.push_back(slot);
      continue;
    }
    std::string what;
    if (!format::dirent_valid(dirent, &what)) {
      return Error(EUCLEAN, "directory entry " + std::to_string(slot) + ": " + what + "; run fsck.pkfs");
    }
    auto parent = m_nodes.find(dirent.parent_ino);
    auto child = m_nodes.find(dirent.ino);
    std::string name(format::dirent_name(dirent));
    if (parent == m_nodes.end() || !parent->second->dir || child == m_nodes.end()) {
      return Error(EUCLEAN, "directory entry " + std::to_string(slot) + " (\"" + name +
                                "\") links inodes that are not in use; run fsck.pkfs");
    }
    if (dirent.file_type != IFTODT(inode_copy(dirent.ino).mode)) {
      return Error(EUCLEAN, "directory entry " + std::to_string(slot) + " (\"" + name +
                                "\"): file type does not match inode " + std::to_string(dirent.ino) +
                                "; run fsck.pkfs");
    }
    if (!child->second->dir && child->second->directory == 0) child->second->directory = dirent.parent_ino;
    Directory& dir = *parent->second->dir;
    if (!dir.by_name.try_emplace(std::move(name), slot).second) {
      return Error(EUCLEAN, "directory " + std::to_string(dirent.parent_ino) + " has two entries named \"" +
                                std::string(format::dirent_name(dirent)) + "\"; run fsck.pkfs");
    }
    dir.by_slot.emplace_hint(dir.by_slot.begin(), slot, dirent.ino);
    ++m_report.dirents_in_use;
  }
  return success();
}

Result<void> Filesystem::stamp_mount() {
  auto txn = m_journal->begin();
  Superblock sb = superblock();
  sb.state &= ~format::kStateClean;
  sb.mount_count += 1;
  sb.mount_time_ns = now_ns();
  sb.write_time_ns = sb.mount_time_ns;
  TRY(put_superblock(*txn, sb));
  format::seal(sb);
  TRY(txn->put(m_layout.backup_offset, sb));
  txn->commit();
  return success();
}

Result<void> Filesystem::close() {
  stop_background_zeroing();
  std::unique_lock lock(m_mutex);
  if (m_closed) return Error(EIO, "filesystem already closed");
  m_closed = true;
  if (m_read_only) return success();
  auto txn = m_journal->begin();
  Superblock sb = superblock();
  sb.state |= format::kStateClean;
  sb.write_time_ns = now_ns();
  TRY(put_superblock(*txn, sb));
  format::seal(sb);
  TRY(txn->put(m_layout.backup_offset, sb));
  txn->commit();
  return success();
}

Superblock Filesystem::superblock() const {
  Superblock sb;
  std::memcpy(&sb, m_region->base(), sizeof sb);
  return sb;
}

Result<void> Filesystem::put_superblock(journal::Transaction& txn, const Superblock& sb) {
  Superblock copy = sb;
  format::seal(copy);
  return txn.put(0, copy);
}

Inode& Filesystem::inode_ref(Ino ino) const {
  return *reinterpret_cast<Inode*>(m_region->base() + inode_offset(ino));
}
Inode Filesystem::inode_copy(Ino ino) const {
  return copy_from_region<Inode>(m_region->base() + inode_offset(ino));
}
uint64_t Filesystem::inode_offset(Ino ino) const { return m_layout.inode_table_offset + ino * sizeof(Inode); }
Dirent& Filesystem::dirent_ref(uint64_t slot) const {
  return *reinterpret_cast<Dirent*>(m_region->base() + dirent_offset(slot));
}
uint64_t Filesystem::dirent_offset(uint64_t slot) const {
  return m_layout.dirent_table_offset + slot * sizeof(Dirent);
}

Result<void> Filesystem::put_inode(journal::Transaction& txn, Inode inode) {
  format::seal(inode);
  return txn.put(inode_offset(inode.ino), inode);
}

Result<Filesystem::Node*> Filesystem::node(Ino ino) {
  auto it = m_nodes.find(ino);
  if (it == m_nodes.end()) return Error(ENOENT, "no inode " + std::to_string(ino));
  return it->second.get();
}

Result<Filesystem::Directory*> Filesystem::directory(Ino ino) {
  TRY_ASSIGN(Node * n, node(ino));
  if (!n->dir) return Error(ENOTDIR, "inode " + std::to_string(ino) + " is not a directory");
  return n->dir.get();
}

Result<uint64_t> Filesystem::find_entry(Ino parent, std::string_view name) {
  TRY_ASSIGN(Directory * dir, directory(parent));
  if (name.size() > format::kNameMax) return Error(ENAMETOOLONG, "name longer than 255 bytes");
  auto it = dir->by_name.find(std::string(name));
  if (it == dir->by_name.end()) return Error(ENOENT, "no entry named \"" + std::string(name) + "\"");
  return it->second;
}

Result<Ino> Filesystem::entry_child(Ino parent, uint64_t slot) {
  TRY_ASSIGN(Directory * dir, directory(parent));
  auto it = dir->by_slot.find(slot);
  if (it == dir->by_slot.end() || m_nodes.find(it->second) == m_nodes.end())
    return Error(EUCLEAN, "directory " + std::to_string(parent) + ": index out of step at entry " +
                              std::to_string(slot));
  return it->second;
}

Attr Filesystem::attr_of(const Inode& inode) {
  Attr attr;
  attr.ino = inode.ino;
  attr.generation = inode.generation;
  attr.mode = inode.mode;
  attr.nlink = inode.nlink;
  attr.uid = inode.uid;
  attr.gid = inode.gid;
  attr.size = inode.size;
  attr.blocks = inode.allocated_blocks * (format::kBlockSize / 512);
  attr.rdev = inode.rdev;
  attr.atime = to_timespec(inode.atime_ns);
  attr.mtime = to_timespec(inode.mtime_ns);
  attr.ctime = to_timespec(inode.ctime_ns);
  attr.btime = to_timespec(inode.btime_ns);
  return attr;
}

Result<Attr> Filesystem::getattr(Ino ino) {
  std::shared_lock lock(m_mutex);
  TRY(node(ino));
  return attr_of(inode_ref(ino));
}

Result<StatFs> Filesystem::statfs() {
  std::shared_lock lock(m_mutex);
  alloc::Usage usage = m_allocator->usage();
  StatFs result;
  result.blocks = usage.total_blocks;
  result.free_blocks = usage.free_blocks;
  result.files = m_layout.inode_count - 1;
  result.free_files = result.files - m_nodes.size();
  return result;
}

Result<Ino> Filesystem::allocate_inode(journal::Transaction& txn, uint32_t mode, const Caller& caller,
                                       Ino parent) {
  Ino ino = 0;
  bool from_free_list = !m_free_inodes.empty();
  if (from_free_list) {
    ino = m_free_inodes.back();
  } else if (m_inode_high_water < m_layout.inode_count) {
    ino = m_inode_high_water;
  } else {
    return Error(ENOSPC, "no free inode (the region was formatted with " +
                             std::to_string(m_layout.inode_count - 1) + "; see mkfs.pkfs -N)");
  }
  const Inode& old = inode_ref(ino);
  const Inode& parent_inode = inode_ref(parent);
  int64_t now = now_ns();
  auto inode = format::stamped<Inode>();
  inode.ino = ino;
  inode.generation = old.tag == format::kInodeTag ? old.generation + 1 : 1;
  inode.mode = mode;
  inode.nlink = S_ISDIR(mode) ? 2 : 1;
  inode.uid = caller.uid;
  inode.gid = caller.gid;
  if (parent_inode.mode & S_ISGID) {  // BSD group semantics in set-group-ID directories
    inode.gid = parent_inode.gid;
    if (S_ISDIR(mode)) inode.mode |= S_ISGID;
  }
  inode.atime_ns = inode.mtime_ns = inode.ctime_ns = inode.btime_ns = now;
  inode.parent = S_ISDIR(mode) ? parent : 0;
  TRY(put_inode(txn, inode));
  if (!from_free_list) {
    Superblock sb = superblock();
    sb.inode_high_water = ino + 1;
    TRY(put_superblock(txn, sb));
    m_inode_high_water = ino + 1;
    txn.on_abort([this, ino] { m_inode_high_water = ino; });
  } else {
    m_free_inodes.pop_back();
    txn.on_abort([this, ino] { m_free_inodes.push_back(ino); });
  }
  auto node = std::make_unique<Node>();
  if (S_ISDIR(mode)) node->dir = std::make_unique<Directory>();
  if (!S_ISDIR(mode)) node->directory = parent;
  m_nodes.emplace(ino, std::move(node));
  txn.on_abort([this, ino] { m_nodes.erase(ino); });
  return ino;
}

Result<uint64_t> Filesystem::add_entry(journal::Transaction& txn, Ino parent, std::string_view name,
                                       Ino child, uint32_t mode) {
  TRY_ASSIGN(Directory * dir, directory(parent));
  uint64_t slot = 0;
  bool from_free_list = !m_free_dirents.empty();
  if (from_free_list) {
    slot = m_free_dirents.back();
  } else if (m_dirent_high_water < m_layout.dirent_count) {
    slot = m_dirent_high_water;
  } else {
    return Error(ENOSPC,
                 "no free directory entry slot (" + std::to_string(m_layout.dirent_count) + " in use)");
  }
  Dirent dirent = format::make_dirent(parent, child, static_cast<uint8_t>(IFTODT(mode)), name);
  TRY(txn.put(dirent_offset(slot), dirent));
  if (!from_free_list) {
    Superblock sb = superblock();
    sb.dirent_high_water = slot + 1;
    TRY(put_superblock(txn, sb));
    m_dirent_high_water = slot + 1;
    txn.on_abort([this, slot] { m_dirent_high_water = slot; });
  } else {
    m_free_dirents.pop_back();
    txn.on_abort([this, slot] { m_free_dirents.push_back(slot); });
  }
  std::string key(name);
  dir->by_name.emplace(key, slot);
  dir->by_slot.emplace(slot, child);
  txn.on_abort([dir, key, slot] {
    dir->by_name.erase(key);
    dir->by_slot.erase(slot);
  });
  return slot;
}

Result<void> Filesystem::remove_entry(journal::Transaction& txn, Ino parent, uint64_t slot) {
  TRY_ASSIGN(Directory * dir, directory(parent));
  std::string key(format::dirent_name(dirent_ref(slot)));
  Ino child = dirent_ref(slot).ino;
  TRY(txn.put(dirent_offset(slot), Dirent{}));
  dir->by_name.erase(key);
  dir->by_slot.erase(slot);
  txn.on_abort([dir, key, slot, child] {
    dir->by_name.emplace(key, slot);
    dir->by_slot.emplace(slot, child);
  });
  txn.on_commit([this, slot] { m_free_dirents.push_back(slot); });
  return success();
}

Result<void> Filesystem::touch_dir(journal::Transaction& txn, Ino dir, int64_t nlink_delta) {
  Inode inode = inode_copy(dir);
  inode.mtime_ns = inode.ctime_ns = now_ns();
  inode.nlink = static_cast<uint32_t>(inode.nlink + nlink_delta);
  return put_inode(txn, inode);
}

Result<void> Filesystem::drop_link(journal::Transaction& txn, Ino ino, bool is_dir,
                                   std::vector<Ino>& to_reclaim) {
  Inode inode = inode_copy(ino);
  inode.nlink = (is_dir || inode.nlink == 0) ? 0 : inode.nlink - 1;
  inode.ctime_ns = now_ns();
  if (inode.nlink == 0) {
    // Orphan until reclaimed, so a crash before the reclaim loses nothing
    // and leaks nothing: mount reclaims orphans.
    inode.flags |= format::kInodeOrphan;
    TRY_ASSIGN(Node * n, node(ino));
    if (n->unreferenced()) to_reclaim.push_back(ino);
  }
  return put_inode(txn, inode);
}

Result<void> Filesystem::reclaim(Ino ino) {
  TRY(free_from(ino, 0));
  auto txn = m_journal->begin();
  Inode inode = inode_copy(ino);
  if (inode.xattr_block != 0) {
    TRY(m_allocator->free(*txn, {static_cast<uint32_t>(inode.xattr_block / format::kBlockSize), 1}));
  }
  auto freed = format::stamped<Inode>();
  freed.ino = ino;
  freed.generation = inode.generation;
  TRY(put_inode(*txn, freed));
  txn->on_commit([this, ino] {
    m_nodes.erase(ino);
    m_free_inodes.push_back(ino);
  });
  txn->commit();
  return success();
}

Result<void> Filesystem::open_file(Ino ino) {
  std::unique_lock lock(m_mutex);
  TRY_ASSIGN(Node * n, node(ino));
  n->open_count += 1;
  return success();
}

Result<void> Filesystem::release_file(Ino ino) {
  std::unique_lock lock(m_mutex);
  TRY_ASSIGN(Node * n, node(ino));
  // A handle opened before a takeover whose counts were unknown: the
  // inode stays pinned, nothing to count down.
  if (n->open_count == 0 && n->pinned) return success();
  if (n->open_count == 0)
    return Error(EINVAL, "release of inode " + std::to_string(ino) + " that is not open");
  n->open_count -= 1;
  if (n->unreferenced() && inode_ref(ino).nlink == 0 && !m_read_only) {
    return note(reclaim(ino), ino, "reclaim");
  }
  return success();
}

void Filesystem::add_references(Ino ino, uint64_t count) {
  std::unique_lock lock(m_mutex);
  auto it = m_nodes.find(ino);
  if (it != m_nodes.end()) it->second->references += count;
}

void Filesystem::drop_references(Ino ino, uint64_t count) {
  std::unique_lock lock(m_mutex);
  auto it = m_nodes.find(ino);
  if (it == m_nodes.end()) return;
  Node& n = *it->second;
  n.references = count >= n.references ? 0 : n.references - count;
  if (n.unreferenced() && inode_ref(ino).nlink == 0 && !m_read_only && !m_closed) {
    (void)note(reclaim(ino), ino, "reclaim");  // on failure mount reclaims it
  }
}

void Filesystem::inherit_references(const OpenOptions& options) {
  if (options.takeover == Takeover::kUnknown) {
    for (auto& [ino, node] : m_nodes) node->pinned = true;
    return;
  }
  if (options.takeover != Takeover::kExact) return;
  for (const InheritedReferences& inherited : options.inherited) {
    auto it = m_nodes.find(inherited.ino);
    if (it == m_nodes.end() || inode_ref(inherited.ino).generation != inherited.generation) continue;
    it->second->open_count = inherited.open_count;
    it->second->references = inherited.references;
    it->second->pinned = inherited.pinned;
  }
}

std::vector<InheritedReferences> Filesystem::export_references() const {
  std::shared_lock lock(m_mutex);
  std::vector<InheritedReferences> result;
  for (const auto& [ino, node] : m_nodes) {
    if (node->open_count == 0 && node->references == 0 && !node->pinned) continue;
    result.push_back({ino, inode_ref(ino).generation, node->open_count, node->references, node->pinned});
  }
  return result;
}

void Filesystem::record_error(int code, Ino ino, const char* what) {
  if (m_log) m_log("error " + errno_text(code) + " in " + what + " (inode " + std::to_string(ino) + ")");
  if (m_read_only || m_closed) return;
  auto txn = m_journal->begin();
  Superblock sb = superblock();
  int64_t now = now_ns();
  sb.state |= format::kStateError;
  if (sb.error_count == 0) {
    sb.first_error_code = static_cast<uint32_t>(code);
    sb.first_error_time_ns = now;
    sb.first_error_ino = ino;
    std::strncpy(sb.first_error_what, what, sizeof sb.first_error_what - 1);
  }
  sb.error_count += 1;
  sb.last_error_code = static_cast<uint32_t>(code);
  sb.last_error_time_ns = now;
  sb.last_error_ino = ino;
  std::memset(sb.last_error_what, 0, sizeof sb.last_error_what);
  std::strncpy(sb.last_error_what, what, sizeof sb.last_error_what - 1);
  if (put_superblock(*txn, sb)) txn->commit();
}

template <typename T>
Result<T> Filesystem::note(Result<T> result, Ino ino, const char* what) {
  if (!result.ok() && result.error().code() == EUCLEAN) record_error(EUCLEAN, ino, what);
  return result;
}
template Result<void> Filesystem::note(Result<void>, Ino, const char*);
template Result<size_t> Filesystem::note(Result<size_t>, Ino, const char*);

}  // namespace pkfs::core
