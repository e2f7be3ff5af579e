// tests/unit/mount_test.cpp: opening and closing a core::Filesystem
// (fs/core/filesystem.cpp): everything survives close and reopen, a crash
// reopens unclean with everything committed, an interrupted transaction is
// rolled back, orphans are reclaimed, read-only opens, feature bits,
// recorded errors and damaged superblocks.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/journal/journal.h"
#include "fs/region/region.h"
#include "support/filesystem_fixture.h"
#include "support/memory_view.h"
#include "support/result_checks.h"

namespace {

using namespace pkfs;
using namespace pkfs::test::fixture;
using pkfs::test::code_of;

// Everything observable about the tree under `dir`, by path.
void describe_tree(Filesystem& fs, Ino dir, const std::string& path,
                   std::map<std::string, std::string>& out) {
  for (const Entry& entry : list_from(fs, dir, 0)) {
    if (entry.name == "." || entry.name == "..") continue;
    std::string child_path = path + "/" + entry.name;
    Attr attr = attr_of(fs, entry.ino);
    std::ostringstream text;
    text << describe_attr(attr) << " type=" << std::oct << entry.mode << std::dec;
    if (S_ISREG(attr.mode)) {
      std::string data = read_all(fs, entry.ino);
      text << " data=" << std::hex << format::xxh3(data.data(), data.size()) << std::dec;
      auto extents = fs.extents(entry.ino);
      REQUIRE(extents.ok());
      for (const format::Extent& extent : extents.value()) {
        text << " [" << extent.file_block << "," << extent.region_block << "," << extent.block_count << "]";
      }
    }
    if (S_ISLNK(attr.mode)) {
      auto target = fs.readlink(entry.ino);
      REQUIRE(target.ok());
      text << " target=" << target.value();
    }
    auto xattrs = fs.listxattr(entry.ino);
    REQUIRE(xattrs.ok());
    std::vector<std::string> names = xattrs.value();
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      auto value = fs.getxattr(entry.ino, name);
      REQUIRE(value.ok());
      text << " xattr:" << name << "=" << value.value();
    }
    if (S_ISDIR(attr.mode)) {
      text << " dotdot=" << dotdot_of(fs, entry.ino);
      describe_tree(fs, entry.ino, child_path, out);
    }
    out[child_path] = text.str();
  }
}

std::map<std::string, std::string> describe(Filesystem& fs) {
  std::map<std::string, std::string> tree;
  tree["/"] = describe_attr(attr_of(fs, kRootIno));
  describe_tree(fs, kRootIno, "", tree);
  auto stats = fs.statfs();
  REQUIRE(stats.ok());
  tree["statfs"] = std::to_string(stats->blocks) + " " + std::to_string(stats->free_blocks) + " " +
                   std::to_string(stats->files) + " " + std::to_string(stats->free_files);
  return tree;
}

// A tree with one of everything.
void populate(Filesystem& fs) {
  Ino dir = make_dir(fs, kRootIno, "dir", 0750);
  Ino sub = make_dir(fs, dir, "sub");
  make_dir(fs, sub, "deeper");
  Ino file = create(fs, dir, "file");
  write_text(fs, file, 3, pattern(10000, 1));
  Ino big = create(fs, kRootIno, "big");
  write_text(fs, big, 0, pattern(3 * kMiB + 123, 2));
  Ino sparse = create(fs, kRootIno, "sparse");
  write_text(fs, sparse, 5 * kMiB, "z");
  Ino frag = create(fs, kRootIno, "frag");  // more extents than fit in the inode
  for (uint64_t i = 0; i < 20; ++i)
    write_text(fs, frag, 2 * i * kBlockSize, pattern(kBlockSize, 100 + static_cast<uint32_t>(i)));
  REQUIRE(fs.symlink(kRootIno, "link", "dir/file", kRoot).ok());
  REQUIRE(fs.link(file, kRootDir, "hard").ok());
  REQUIRE(fs.setxattr(file, "user.one", "1", 0).ok());
  REQUIRE(fs.setxattr(file, "user.two", pattern(300, 3), 0).ok());
  REQUIRE(fs.setxattr(dir, "user.dir", "d", 0).ok());
  REQUIRE(fs.mknod(kRootIno, "fifo", S_IFIFO | 0600, 0, kRoot).ok());
  REQUIRE(fs.mknod(kRootIno, "tty", S_IFCHR | 0620, makedev(4, 1), kRoot).ok());
  SetAttr chown;
  chown.uid = 1234;
  chown.gid = 5678;
  REQUIRE(fs.setattr(big, chown, kRoot).ok());
  Ino gone = create(fs, kRootIno, "gone");
  write_text(fs, gone, 0, "bye");
  REQUIRE(fs.unlink(kRootIno, "gone").ok());
}

// Leaves an open transaction in the region, as if the process died before
// committing it: it rewrote inode `ino` (size) and the superblock (mount
// count). REQUIRES: no filesystem is open on `memory`.
void leave_interrupted_transaction(region::Region& memory, const format::Layout& layout, Ino ino) {
  testing::MemoryView view(memory.base(), memory.size());
  auto journal = journal::Journal::open(view, layout.journal_offset, layout.journal_bytes);
  REQUIRE(journal.ok());
  REQUIRE_FALSE(journal.value()->needs_recovery());
  std::vector<std::byte> crashed;
  {
    auto txn = journal.value()->begin();
    const uint64_t inode_offset = layout.inode_table_offset + ino * sizeof(format::Inode);
    format::Inode inode;
    std::memcpy(&inode, memory.base() + inode_offset, sizeof inode);
    inode.size = 999999;
    format::seal(inode);
    REQUIRE(txn->put(inode_offset, inode).ok());
    format::Superblock sb;
    std::memcpy(&sb, memory.base(), sizeof sb);
    sb.mount_count += 100;
    format::seal(sb);
    REQUIRE(txn->put(0, sb).ok());
    crashed.assign(memory.base(), memory.base() + layout.data_offset);
  }  // the transaction aborts here; the snapshot keeps it open
  std::memcpy(memory.base(), crashed.data(), crashed.size());
}

// Rewrites the primary superblock of an unmounted region through `edit`.
template <typename Edit>
void edit_superblock(region::Region& memory, Edit edit) {
  format::Superblock sb;
  std::memcpy(&sb, memory.base(), sizeof sb);
  edit(sb);
  format::seal(sb);
  std::memcpy(memory.base(), &sb, sizeof sb);
}

}  // namespace

// ---------------------------------------------------------------------------
// Persistence, crashes and read-only opens.

TEST_CASE("everything survives close and reopen of the same memory", "[mount]") {
  Mounted m;
  populate(*m.fs);
  const auto before = describe(*m.fs);
  CHECK(before.contains("/dir/file"));
  CHECK_FALSE(before.contains("/gone"));
  const uint32_t mounts = m->superblock().mount_count;
  m.close_and_remount();
  CHECK(m->open_report().was_clean);
  CHECK(m->open_report().recovered_sequence == 0);
  CHECK(m->open_report().orphans_reclaimed == 0);
  CHECK(m->open_report().inodes_in_use == 11);  // root and ten more ("hard" shares "file")
  CHECK(m->superblock().mount_count == mounts + 1);
  CHECK((m->superblock().state & format::kStateClean) == 0);  // in use again
  const auto after = describe(*m.fs);
  CHECK(after == before);
  // And it keeps working.
  Ino more = create(*m.fs, kRootIno, "more");
  write_text(*m.fs, more, 0, "after reopen");
  m.close_and_remount();
  CHECK(read_all(*m.fs, ino_of(*m.fs, kRootIno, "more")) == "after reopen");
}

TEST_CASE("close marks the region clean and a second close fails with EIO", "[mount]") {
  Mounted m;
  CHECK((m->superblock().state & format::kStateClean) == 0);
  REQUIRE(m->close().ok());
  CHECK((m->superblock().state & format::kStateClean) != 0);
  auto backup = core::read_superblock(*m.memory, true);
  REQUIRE(backup.ok());
  CHECK((backup->state & format::kStateClean) != 0);
  CHECK(backup->mount_count == m->superblock().mount_count);
  CHECK(code_of(m->close()) == EIO);
}

TEST_CASE("a filesystem dropped without close reopens unclean with everything committed", "[mount]") {
  Mounted m;
  populate(*m.fs);
  const auto before = describe(*m.fs);
  m.crash_and_remount();
  CHECK_FALSE(m->open_report().was_clean);
  CHECK(m->open_report().recovered_sequence == 0);
  CHECK(describe(*m.fs) == before);
}

TEST_CASE("an interrupted transaction is rolled back at the next open", "[mount]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, "committed");
  const auto before = describe(*m.fs);
  const uint32_t mounts = m->superblock().mount_count;
  m.fs.reset();  // crash
  leave_interrupted_transaction(*m.memory, m.layout, file);
  m.mount();
  CHECK_FALSE(m->open_report().was_clean);
  CHECK(m->open_report().recovered_sequence != 0);
  CHECK(m->open_report().recovered_records == 2);
  CHECK(attr_of(*m.fs, file).size == 9);
  CHECK(m->superblock().mount_count == mounts + 1);
  CHECK(describe(*m.fs) == before);
}

TEST_CASE("an unlinked file still open at a crash is reclaimed at the next open", "[mount]") {
  Mounted m;
  const auto empty = m->statfs();
  REQUIRE(empty.ok());
  Ino keep = create(*m.fs, kRootIno, "keep");
  write_text(*m.fs, keep, 0, "kept");
  const uint64_t with_keep = free_blocks(*m.fs);
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, pattern(3 * kMiB, 13));  // chunks and blocks
  REQUIRE(m->setxattr(file, "user.x", "y", 0).ok());
  REQUIRE(m->open_file(file).ok());
  REQUIRE(m->unlink(kRootIno, "f").ok());
  SECTION("after a crash") { m.crash_and_remount(); }
  SECTION("after a clean close") { m.close_and_remount(); }
  CHECK(m->open_report().orphans_reclaimed == 1);
  CHECK(code_of(m->getattr(file)) == ENOENT);
  CHECK(free_blocks(*m.fs) == with_keep);
  CHECK(m->statfs()->free_files == empty->free_files - 1);
  CHECK(read_all(*m.fs, keep) == "kept");
  m.close_and_remount();
  CHECK(m->open_report().orphans_reclaimed == 0);
}

TEST_CASE("a read-only open refuses every change with EROFS", "[mount]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  Ino file = create(*m.fs, dir, "f");
  write_text(*m.fs, file, 0, "data");
  REQUIRE(m->setxattr(file, "user.a", "b", 0).ok());
  auto link = m->symlink(kRootIno, "l", "d/f", kRoot);
  REQUIRE(link.ok());
  REQUIRE(m->close().ok());
  m.fs.reset();
  const std::vector<std::byte> metadata(m.memory->base(), m.memory->base() + m.layout.data_offset);

  core::OpenOptions options;
  options.read_only = true;
  bool read_only_region = GENERATE(false, true);
  CAPTURE(read_only_region);
  auto opened = m.try_mount(read_only_region ? core::OpenOptions{} : options, read_only_region);
  REQUIRE(opened.ok());
  Filesystem& fs = *opened.value();
  CHECK(fs.open_report().was_clean);

  CHECK(code_of(fs.mknod(kRootIno, "x", S_IFREG | 0644, 0, kRoot)) == EROFS);
  CHECK(code_of(fs.mkdir(kRootIno, "x", 0755, kRoot)) == EROFS);
  CHECK(code_of(fs.symlink(kRootIno, "x", "t", kRoot)) == EROFS);
  CHECK(code_of(fs.link(file, kRootDir, "x")) == EROFS);
  CHECK(code_of(fs.unlink(dir, "f")) == EROFS);
  CHECK(code_of(fs.rmdir(kRootIno, "d")) == EROFS);
  CHECK(code_of(fs.rename(dir, "f", kRootIno, "x", 0)) == EROFS);
  SetAttr chmod;
  chmod.mode = 0600;
  CHECK(code_of(fs.setattr(file, chmod, kRoot)) == EROFS);
  CHECK(code_of(fs.write(file, 0, bytes_of("x"))) == EROFS);
  CHECK(code_of(fs.fallocate(file, 0, 0, 4096)) == EROFS);
  CHECK(code_of(fs.setxattr(file, "user.c", "d", 0)) == EROFS);
  CHECK(code_of(fs.removexattr(file, "user.a")) == EROFS);

  CHECK(read_all(fs, file) == "data");
  CHECK(fs.getxattr(file, "user.a").value() == "b");
  CHECK(fs.listxattr(file)->size() == 1);
  CHECK(fs.readlink(link->ino).value() == "d/f");
  CHECK(ino_of(fs, dir, "f") == file);
  CHECK(names_in(fs, kRootIno) == std::vector<std::string>{"d", "l"});
  CHECK(fs.statfs().ok());
  CHECK(fs.extents(file).ok());
  REQUIRE(fs.open_file(file).ok());
  REQUIRE(fs.release_file(file).ok());
  CHECK(fs.close().ok());
  opened.value().reset();
  // Not one byte of metadata changed.
  CHECK(std::memcmp(metadata.data(), m.memory->base(), metadata.size()) == 0);
}

TEST_CASE("a read-only open of a region needing recovery fails with EROFS", "[mount]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  m.fs.reset();
  leave_interrupted_transaction(*m.memory, m.layout, file);
  core::OpenOptions options;
  options.read_only = true;
  auto opened = m.try_mount(options);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EROFS);
  // A read-write open recovers it.
  m.mount();
  CHECK(m->open_report().recovered_records == 2);
  CHECK(attr_of(*m.fs, file).size == 0);
}

TEST_CASE("feature bits decide how a region may be opened", "[mount]") {
  Mounted m;
  create(*m.fs, kRootIno, "f");
  REQUIRE(m->close().ok());
  m.fs.reset();
  core::OpenOptions read_only;
  read_only.read_only = true;
  SECTION("unknown incompatible feature: refused") {
    edit_superblock(*m.memory, [](format::Superblock& sb) { sb.feature_incompat = 2; });
    CHECK(code_of(m.try_mount()) == EPROTONOSUPPORT);
    CHECK(code_of(m.try_mount(read_only)) == EPROTONOSUPPORT);
  }
  SECTION("unknown read-only-compatible feature: read-only only") {
    edit_superblock(*m.memory, [](format::Superblock& sb) { sb.feature_ro_compat = 1; });
    CHECK(code_of(m.try_mount()) == EROFS);
    auto opened = m.try_mount(read_only);
    REQUIRE(opened.ok());
    CHECK(opened.value()->lookup(kRootIno, "f").ok());
  }
  SECTION("unknown compatible feature: read-write") {
    edit_superblock(*m.memory, [](format::Superblock& sb) { sb.feature_compat = 1; });
    auto opened = m.try_mount();
    REQUIRE(opened.ok());
    CHECK(opened.value()->mknod(kRootIno, "g", S_IFREG | 0644, 0, kRoot).ok());
  }
}

TEST_CASE("a region with recorded errors opens only when told to ignore them", "[mount]") {
  Mounted m;
  REQUIRE(m->close().ok());
  m.fs.reset();
  edit_superblock(*m.memory, [](format::Superblock& sb) {
    sb.state |= format::kStateError;
    sb.error_count = 1;
    std::strcpy(sb.first_error_what, "read");
  });
  auto refused = m.try_mount();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == EUCLEAN);
  CHECK(refused.error().message().find("fsck") != std::string::npos);
  core::OpenOptions options;
  options.ignore_error_state = true;
  CHECK(m.try_mount(options).ok());
}

TEST_CASE("a region whose backing grew after mkfs still opens", "[mount]") {
  // The superblock, not the backing, sizes the region: trailing bytes are
  // left unused, whether less than a chunk or more.
  const uint64_t growth = GENERATE(as<uint64_t>{}, kMiB, 2 * kMiB, 16 * kMiB);
  CAPTURE(growth);
  region::MemoryRegion memory(kRegionBytes + growth);
  {
    testing::MemoryView formatted(memory.base(), kRegionBytes);
    REQUIRE(core::format_region(formatted, default_format()).ok());
  }
  {
    auto opened = Filesystem::open(std::make_unique<testing::MemoryView>(memory.base(), kRegionBytes));
    REQUIRE(opened.ok());
    Ino file = create(*opened.value(), kRootIno, "f");
    write_text(*opened.value(), file, 0, "before growth");
    REQUIRE(opened.value()->close().ok());
  }
  auto grown = Filesystem::open(testing::MemoryView::of(memory));
  if (!grown) FAIL_CHECK("open after growth: " << grown.error().message());
  if (grown) {
    CHECK(read_all(*grown.value(), ino_of(*grown.value(), kRootIno, "f")) == "before growth");
    CHECK(grown.value()->statfs()->blocks * kBlockSize ==
          format::compute_layout(kRegionBytes, {})->usable_bytes);
    REQUIRE(grown.value()->close().ok());
  }
}

TEST_CASE("a damaged backup superblock fails open with EUCLEAN", "[mount]") {
  Mounted m;
  REQUIRE(m->close().ok());
  m.fs.reset();
  m.memory->base()[m.layout.backup_offset + 0x90] ^= std::byte{1};
  auto opened = m.try_mount();
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EUCLEAN);
  CHECK(opened.error().message().find("backup") != std::string::npos);
}

TEST_CASE("mount and close keep the backup superblock equal to the primary", "[mount]") {
  Mounted m;
  auto backup = core::read_superblock(*m.memory, true);
  REQUIRE(backup.ok());
  format::Superblock primary = m->superblock();
  CHECK(std::memcmp(&backup.value(), &primary, sizeof primary) == 0);
  create(*m.fs, kRootIno, "f");
  m.close_and_remount();
  backup = core::read_superblock(*m.memory, true);
  REQUIRE(backup.ok());
  primary = m->superblock();
  CHECK(backup->mount_count == primary.mount_count);
  CHECK(backup->inode_high_water == primary.inode_high_water);
}

TEST_CASE("a damaged primary superblock fails open with EUCLEAN", "[mount]") {
  Mounted m;
  REQUIRE(m->close().ok());
  m.fs.reset();
  m.memory->base()[0x90] ^= std::byte{1};  // chunk_count, checksum now wrong
  auto opened = m.try_mount();
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EUCLEAN);
}

TEST_CASE("opening memory without pkfs fails with ENODATA", "[mount]") {
  region::MemoryRegion memory(kRegionBytes);
  auto opened = Filesystem::open(testing::MemoryView::of(memory));
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == ENODATA);
}
