// fs/core/mkfs.cpp: writing a new, empty filesystem (mkfs.pkfs is a thin
// main over format_region).
#include <sys/random.h>

#include <cstring>

#include "fs/core/internal.h"

namespace pkfs::core {

using format::Inode;
using format::Superblock;

Result<format::Layout> format_region(region::Region& region, const FormatOptions& options) {
  if (region.read_only()) return Error(EROFS, "region is read-only");
  TRY_ASSIGN(format::Layout layout, format::compute_layout(region.size(), options.layout));
  if (options.label.size() > 63) return Error(EINVAL, "label longer than 63 bytes");
  int64_t now = now_ns();

  Superblock sb = format::make_superblock(layout);
  if (options.uuid) {
    std::memcpy(sb.uuid, options.uuid->data(), sizeof sb.uuid);
  } else if (getrandom(sb.uuid, sizeof sb.uuid, 0) != static_cast<ssize_t>(sizeof sb.uuid)) {
    return Error::from_errno(errno, "generating a UUID");
  } else {
    sb.uuid[6] = static_cast<uint8_t>((sb.uuid[6] & 0x0f) | 0x40);  // RFC 4122 version 4
    sb.uuid[8] = static_cast<uint8_t>((sb.uuid[8] & 0x3f) | 0x80);
  }
  std::memcpy(sb.label, options.label.data(), options.label.size());
  sb.created_time_ns = now;
  sb.write_time_ns = now;

  std::byte* base = region.base();
  // Invalidate any old superblock first, so a crash mid-format leaves no
  // half-new filesystem that looks valid; the superblock is written last.
  std::memset(base, 0, format::kBlockSize);
  std::memset(base + layout.backup_offset, 0, format::kBlockSize);
  region.persist(0, format::kBlockSize);

  journal::Journal::format(region, layout.journal_offset, layout.journal_bytes);
  // Slots at or past the high-water marks are never trusted (only a slot's
  // old tag and generation are looked at when it is first used), so the
  // inode and dirent tables need no clearing: a 1 TiB region formats in
  // milliseconds.
  std::memset(base + layout.inode_table_offset, 0, 2 * sizeof(Inode));
  auto root = format::stamped<Inode>();
  root.ino = format::kRootIno;
  root.generation = 1;
  root.mode = S_IFDIR | (options.root_mode & 07777);
  root.nlink = 2;
  root.uid = options.root_uid;
  root.gid = options.root_gid;
  root.atime_ns = root.mtime_ns = root.ctime_ns = root.btime_ns = now;
  root.parent = format::kRootIno;
  format::seal(root);
  std::memcpy(base + layout.inode_table_offset + format::kRootIno * sizeof(Inode), &root, sizeof root);
  std::memset(base + layout.hold_table_offset, 0, layout.hold_count * sizeof(format::Hold));
  alloc::Allocator::format(region, layout, options.data_known_zero);
  region.persist(0, layout.data_offset);

  format::seal(sb);
  std::memcpy(base + layout.backup_offset, &sb, sizeof sb);
  region.persist(layout.backup_offset, sizeof sb);
  std::memcpy(base, &sb, sizeof sb);
  region.persist(0, sizeof sb);
  return layout;
}

}  // namespace pkfs::core
