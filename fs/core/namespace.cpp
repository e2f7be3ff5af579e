// fs/core/namespace.cpp: lookup, create, link, unlink, rename, readdir and
// setattr. Each is one transaction; freeing an unlinked inode's space follows
// in its own transactions (the inode is an orphan until then).
#include <linux/fs.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "fs/core/internal.h"

namespace pkfs::core {

using format::Dirent;
using format::Inode;

Result<Attr> Filesystem::lookup(Ino parent, std::string_view name) {
  std::shared_lock lock(m_mutex);
  TRY_ASSIGN(uint64_t slot, find_entry(parent, name));
  TRY_ASSIGN(Ino ino, entry_child(parent, slot));
  return attr_of(inode_copy(ino));
}

Result<Attr> Filesystem::make_node(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                                   const Caller& caller, std::string_view symlink_target) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY(check_name(name));
  TRY(directory(parent));
  if (inode_ref(parent).nlink == 0) return Error(ENOENT, "directory was removed");
  if (find_entry(parent, name)) return Error(EEXIST, "\"" + std::string(name) + "\" exists");
  uint32_t type = mode & S_IFMT;
  uint32_t permissions = mode & 07777 & ~(caller.umask & 0777);
  auto txn = m_journal->begin();
  TRY_ASSIGN(Ino ino, allocate_inode(*txn, type | permissions, caller, parent));
  Inode inode = inode_copy(ino);
  inode.rdev = (S_ISCHR(type) || S_ISBLK(type)) ? rdev : 0;
  if (S_ISLNK(type)) {
    std::vector<format::Extent> extents;
    TRY(allocate_range(*txn, inode, extents, 0, 1, symlink_target.size()));
    std::memcpy(m_region->base() + uint64_t{extents[0].region_block} * format::kBlockSize,
                symlink_target.data(), symlink_target.size());
    inode.size = symlink_target.size();
  }
  TRY(put_inode(*txn, inode));
  TRY(add_entry(*txn, parent, name, ino, type));
  TRY(touch_dir(*txn, parent, S_ISDIR(type) ? 1 : 0));
  txn->commit();
  return attr_of(inode_ref(ino));
}

Result<Attr> Filesystem::mknod(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                               const Caller& caller) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  if (type == S_IFDIR || type == S_IFLNK) return Error(EINVAL, "mknod cannot make directories or symlinks");
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK) {
    return Error(EINVAL, "unknown file type");
  }
  return make_node(parent, name, type | (mode & 07777), rdev, caller, {});
}

Result<Attr> Filesystem::mkdir(Ino parent, std::string_view name, uint32_t mode, const Caller& caller) {
  return make_node(parent, name, S_IFDIR | (mode & 07777), 0, caller, {});
}

Result<Attr> Filesystem::symlink(Ino parent, std::string_view name, std::string_view target,
                                 const Caller& caller) {
  if (target.empty()) return Error(ENOENT, "empty symlink target");
  if (target.size() > format::kSymlinkMax)
    return Error(ENAMETOOLONG, "symlink target longer than 4095 bytes");
  Caller no_umask = caller;
  no_umask.umask = 0;
  return make_node(parent, name, S_IFLNK | 0777, 0, no_umask, target);
}

Result<std::string> Filesystem::readlink(Ino ino) {
  std::shared_lock lock(m_mutex);
  TRY(node(ino));
  const Inode inode = inode_copy(ino);
  if (!S_ISLNK(inode.mode)) return Error(EINVAL, "not a symlink");
  if (inode.size == 0 || inode.size > format::kSymlinkMax) return Error(EUCLEAN, "symlink size out of range");
  TRY_ASSIGN(std::vector<format::Extent> extents, load_extents(inode));
  if (extents.size() != 1 || extents[0].file_block != 0 || extents[0].block_count != 1)
    return Error(EUCLEAN, "symlink target block missing");
  return std::string(reinterpret_cast<const char*>(m_region->base() +
                                                   uint64_t{extents[0].region_block} * format::kBlockSize),
                     inode.size);
}

Result<Attr> Filesystem::link(Ino ino, Ino new_parent, std::string_view new_name) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY(check_name(new_name));
  TRY(node(ino));
  TRY(directory(new_parent));
  Inode inode = inode_copy(ino);
  if (S_ISDIR(inode.mode)) return Error(EPERM, "hard links to directories are not allowed");
  if (inode.nlink == 0) return Error(ENOENT, "file was removed");
  if (inode.nlink >= 65000) return Error(EMLINK, "too many links");
  if (inode_ref(new_parent).nlink == 0) return Error(ENOENT, "directory was removed");
  if (find_entry(new_parent, new_name)) return Error(EEXIST, "\"" + std::string(new_name) + "\" exists");
  auto txn = m_journal->begin();
  inode.nlink += 1;
  inode.ctime_ns = now_ns();
  TRY(put_inode(*txn, inode));
  TRY(add_entry(*txn, new_parent, new_name, ino, inode.mode));
  TRY(touch_dir(*txn, new_parent, 0));
  txn->commit();
  return attr_of(inode_ref(ino));
}

Result<void> Filesystem::unlink(Ino parent, std::string_view name) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY_ASSIGN(uint64_t slot, find_entry(parent, name));
  TRY_ASSIGN(Ino ino, entry_child(parent, slot));
  if (S_ISDIR(inode_ref(ino).mode)) return Error(EISDIR, "is a directory");
  std::vector<Ino> to_reclaim;
  auto txn = m_journal->begin();
  TRY(remove_entry(*txn, parent, slot));
  TRY(touch_dir(*txn, parent, 0));
  TRY(drop_link(*txn, ino, false, to_reclaim));
  txn->commit();
  for (Ino victim : to_reclaim) TRY(note(reclaim(victim), victim, "reclaim"));
  return success();
}

Result<void> Filesystem::rmdir(Ino parent, std::string_view name) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  if (name == ".") return Error(EINVAL, "cannot remove .");
  if (name == "..") return Error(ENOTEMPTY, "cannot remove ..");
  TRY_ASSIGN(uint64_t slot, find_entry(parent, name));
  TRY_ASSIGN(Ino ino, entry_child(parent, slot));
  if (!S_ISDIR(inode_ref(ino).mode)) return Error(ENOTDIR, "not a directory");
  TRY_ASSIGN(Directory * dir, directory(ino));
  if (!dir->by_slot.empty()) return Error(ENOTEMPTY, "directory not empty");
  std::vector<Ino> to_reclaim;
  auto txn = m_journal->begin();
  TRY(remove_entry(*txn, parent, slot));
  TRY(touch_dir(*txn, parent, -1));
  TRY(drop_link(*txn, ino, true, to_reclaim));
  txn->commit();
  for (Ino victim : to_reclaim) TRY(note(reclaim(victim), victim, "reclaim"));
  return success();
}

Result<void> Filesystem::rename(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name,
                                unsigned flags) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  if ((flags & ~unsigned{RENAME_NOREPLACE | RENAME_EXCHANGE}) != 0)
    return Error(EINVAL, "unknown rename flags");
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
    return Error(EINVAL, "NOREPLACE with EXCHANGE");
  TRY(check_name(new_name));
  TRY_ASSIGN(uint64_t slot, find_entry(parent, name));
  TRY(directory(new_parent));
  if (inode_ref(new_parent).nlink == 0) return Error(ENOENT, "target directory was removed");
  TRY_ASSIGN(Ino ino, entry_child(parent, slot));
  const bool is_dir = S_ISDIR(inode_ref(ino).mode);
  auto target = find_entry(new_parent, new_name);
  if (!target && target.error().code() != ENOENT) return std::move(target).error();
  const bool exchange = flags & RENAME_EXCHANGE;
  if (exchange && !target) return Error(ENOENT, "nothing to exchange with");
  if (target && (flags & RENAME_NOREPLACE)) return Error(EEXIST, "\"" + std::string(new_name) + "\" exists");
  Ino victim = 0;
  if (target) {
    TRY_ASSIGN(victim, entry_child(new_parent, target.value()));
  }
  if (target && target.value() == slot) return success();  // same entry
  const bool victim_is_dir = victim != 0 && S_ISDIR(inode_ref(victim).mode);

  // A directory may not move into itself or below itself.
  // Walks parent links up from `dir`; bounded, since they come from the region.
  auto inside = [this](Ino dir, Ino ancestor) {
    Ino at = dir;
    for (uint64_t steps = 0; at != format::kRootIno && steps < m_layout.inode_count; ++steps) {
      if (at == ancestor) return true;
      at = inode_ref(at).parent;
      if (at == 0 || at >= m_layout.inode_count) return false;
    }
    return ancestor == at;
  };
  if (is_dir && parent != new_parent && inside(new_parent, ino)) {
    return Error(EINVAL, "cannot move a directory below itself");
  }
  if (exchange && victim_is_dir && parent != new_parent && inside(parent, victim)) {
    return Error(EINVAL, "cannot move a directory below itself");
  }
  if (!exchange && victim != 0) {
    if (victim == ino) return success();  // two links to one file: nothing to do
    if (is_dir && !victim_is_dir) return Error(ENOTDIR, "target is not a directory");
    if (!is_dir && victim_is_dir) return Error(EISDIR, "target is a directory");
    if (victim_is_dir) {
      TRY_ASSIGN(Directory * victim_dir, directory(victim));
      if (!victim_dir->by_slot.empty()) return Error(ENOTEMPTY, "target directory not empty");
    }
  }

  int64_t now = now_ns();
  std::vector<Ino> to_reclaim;
  auto txn = m_journal->begin();
  auto set_parent = [&](Ino child, Ino dir) -> Result<void> {
    Inode inode = inode_copy(child);
    inode.ctime_ns = now;
    if (S_ISDIR(inode.mode)) inode.parent = dir;
    return put_inode(*txn, inode);
  };
  // Rewrites dirent `at` in place to say (dir, entry_name) -> child, and
  // moves it between the DRAM directory indexes.
  auto rewrite_entry = [&](uint64_t at, Ino dir, std::string_view entry_name, Ino child) -> Result<void> {
    Dirent dirent = dirent_ref(at);
    Ino old_dir = dirent.parent_ino;
    std::string old_name(format::dirent_name(dirent));
    TRY_ASSIGN(Directory * from, directory(old_dir));
    TRY_ASSIGN(Directory * to, directory(dir));
    Dirent updated =
        format::make_dirent(dir, child, static_cast<uint8_t>(IFTODT(inode_ref(child).mode)), entry_name);
    TRY(txn->put(dirent_offset(at), updated));
    Ino old_child = dirent.ino;
    std::string new_name_key(entry_name);
    from->by_name.erase(old_name);
    from->by_slot.erase(at);
    to->by_name[new_name_key] = at;
    to->by_slot[at] = child;
    txn->on_abort([from, to, old_name, new_name_key, at, old_child] {
      to->by_name.erase(new_name_key);
      to->by_slot.erase(at);
      from->by_name[old_name] = at;
      from->by_slot[at] = old_child;
    });
    return success();
  };
  if (exchange) {
    // Each entry keeps its slot, parent and name and takes the other's inode.
    TRY(rewrite_entry(slot, parent, name, victim));
    TRY(rewrite_entry(target.value(), new_parent, new_name, ino));
    TRY(set_parent(ino, new_parent));
    TRY(set_parent(victim, parent));
    int64_t delta = (is_dir ? 1 : 0) - (victim_is_dir ? 1 : 0);
    if (parent == new_parent) {
      TRY(touch_dir(*txn, parent, 0));
    } else {
      TRY(touch_dir(*txn, parent, -delta));
      TRY(touch_dir(*txn, new_parent, delta));
    }
    txn->commit();
    return success();
  }
  if (victim != 0) {
    TRY(remove_entry(*txn, new_parent, target.value()));
    TRY(drop_link(*txn, victim, victim_is_dir, to_reclaim));
    if (victim_is_dir) TRY(touch_dir(*txn, new_parent, -1));
  }
  TRY(rewrite_entry(slot, new_parent, new_name, ino));
  TRY(set_parent(ino, new_parent));
  if (parent == new_parent) {
    TRY(touch_dir(*txn, parent, 0));
  } else {
    TRY(touch_dir(*txn, parent, is_dir ? -1 : 0));
    TRY(touch_dir(*txn, new_parent, is_dir ? 1 : 0));
  }
  txn->commit();
  for (Ino dead : to_reclaim) TRY(note(reclaim(dead), dead, "reclaim"));
  return success();
}

Result<void> Filesystem::readdir(Ino dir_ino, uint64_t cookie,
                                 const std::function<bool(const DirEntry&)>& emit) {
  std::shared_lock lock(m_mutex);
  TRY_ASSIGN(Directory * dir, directory(dir_ino));
  const Inode& inode = inode_ref(dir_ino);
  if (cookie == 0 && !emit({".", dir_ino, S_IFDIR, 1})) return success();
  if (cookie <= 1) {
    Ino parent = dir_ino == format::kRootIno ? dir_ino : inode.parent;
    if (!emit({"..", parent, S_IFDIR, 2})) return success();
  }
  uint64_t first_slot = cookie >= 3 ? cookie - 3 : 0;
  for (auto it = dir->by_slot.lower_bound(first_slot); it != dir->by_slot.end(); ++it) {
    // A copy: the name the caller gets cannot change while it reads it.
    const Dirent dirent = copy_from_region<Dirent>(m_region->base() + dirent_offset(it->first));
    DirEntry entry{format::dirent_name(dirent), it->second, inode_ref(it->second).mode & S_IFMT,
                   it->first + 4};
    if (!emit(entry)) break;
  }
  return success();
}

Result<Attr> Filesystem::setattr(Ino ino, const SetAttr& changes, [[maybe_unused]] const Caller& caller) {
  std::unique_lock lock(m_mutex);
  if (m_read_only) return Error(EROFS, "read-only filesystem");
  TRY(node(ino));
  if (changes.size) TRY(note(truncate_locked(ino, *changes.size), ino, "truncate"));
  Inode inode = inode_copy(ino);
  int64_t now = now_ns();
  bool changed = changes.size.has_value();
  if (changes.mode) {
    inode.mode = (inode.mode & S_IFMT) | (*changes.mode & 07777);
    changed = true;
  }
  // Permission checks and the clearing of set-user-ID on chown are the
  // kernel's (default_permissions); they arrive here as plain changes.
  if (changes.uid) inode.uid = *changes.uid;
  if (changes.gid) inode.gid = *changes.gid;
  if (changes.uid || changes.gid) changed = true;
  auto time_of = [now](const TimeSet& time) { return time.now ? now : from_timespec(time.value); };
  if (changes.atime) inode.atime_ns = time_of(*changes.atime);
  if (changes.mtime) inode.mtime_ns = time_of(*changes.mtime);
  if (changes.atime || changes.mtime) changed = true;
  if (changes.ctime) {
    inode.ctime_ns = time_of(*changes.ctime);
  } else if (changed) {
    inode.ctime_ns = now;
  }
  auto txn = m_journal->begin();
  TRY(put_inode(*txn, inode));
  txn->commit();
  return attr_of(inode_ref(ino));
}

}  // namespace pkfs::core
