// tests/unit/space_test.cpp: space and inode accounting of core::Filesystem
// (fs/core/filesystem.cpp): statfs, running out of blocks, inodes and
// directory entries, inode generations, and unlinked files kept alive by an
// open handle until their release.
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "support/filesystem_fixture.h"
#include "support/result_checks.h"

namespace {

using namespace pkfs;
using namespace pkfs::test::fixture;
using pkfs::test::code_of;

}  // namespace

// ---------------------------------------------------------------------------
// Space and inode accounting.

TEST_CASE("statfs reports the layout's space and inodes", "[space]") {
  Mounted m;
  auto stats = m->statfs();
  REQUIRE(stats.ok());
  CHECK(stats->block_size == kBlockSize);
  CHECK(stats->name_max == 255);
  CHECK(stats->blocks == m.layout.usable_bytes / kBlockSize);
  CHECK(stats->free_blocks == stats->blocks);
  CHECK(stats->files == m.layout.inode_count - 1);
  CHECK(stats->free_files == stats->files - 1);  // the root

  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, "x");
  auto after = m->statfs();
  REQUIRE(after.ok());
  CHECK(after->free_blocks == stats->blocks - 2);  // a split chunk's header and one block
  CHECK(after->free_files == stats->free_files - 1);
  make_dir(*m.fs, kRootIno, "d");
  CHECK(m->statfs()->free_blocks == after->free_blocks);  // directories take no blocks
  CHECK(m->statfs()->free_files == after->free_files - 1);
}

TEST_CASE("filling the region fails with ENOSPC and deleting makes room again", "[space]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  const std::string mebibyte = pattern(kMiB, 11);
  std::vector<std::string> names;
  bool full = false;
  for (int f = 0; !full && f < 100; ++f) {
    std::string name = "f" + std::to_string(f);
    Ino file = create(*m.fs, kRootIno, name);
    names.push_back(name);
    for (uint64_t i = 0; i < 8; ++i) {
      const uint64_t size_before = attr_of(*m.fs, file).size;
      auto written = m->write(file, i * kMiB, bytes_of(mebibyte));
      if (!written) {
        CHECK(written.error().code() == ENOSPC);
        CHECK(attr_of(*m.fs, file).size == size_before);  // a failed write changes nothing
        full = true;
        break;
      }
    }
  }
  REQUIRE(full);
  // Top up block by block until nothing is left.
  Ino tail = create(*m.fs, kRootIno, "tail");
  names.push_back("tail");
  for (uint64_t i = 0;; ++i) {
    auto written = m->write(tail, i * kBlockSize, bytes_of(mebibyte.substr(0, kBlockSize)));
    if (!written) {
      CHECK(written.error().code() == ENOSPC);
      break;
    }
    REQUIRE(i < 1000);
  }
  CHECK(free_blocks(*m.fs) < 8);
  // Everything written reads back after a remount.
  m.close_and_remount();
  CHECK(read_text(*m.fs, ino_of(*m.fs, kRootIno, "f0"), 0, kMiB) == mebibyte);
  for (const std::string& name : names) REQUIRE(m->unlink(kRootIno, name).ok());
  CHECK(free_blocks(*m.fs) == empty);
  Ino again = create(*m.fs, kRootIno, "again");
  write_text(*m.fs, again, 0, mebibyte);
  write_text(*m.fs, again, 20 * kMiB, mebibyte);
  CHECK(read_text(*m.fs, again, 20 * kMiB, kMiB) == mebibyte);
}

TEST_CASE("running out of inodes fails with ENOSPC", "[space]") {
  core::FormatOptions options = default_format();
  options.layout.inode_count = 20;
  Mounted m(kRegionBytes, options);
  CHECK(m->statfs()->files == 20);
  int made = 0;
  for (;; ++made) {
    auto file = m->mknod(kRootIno, "f" + std::to_string(made), S_IFREG | 0644, 0, kRoot);
    if (!file) {
      CHECK(file.error().code() == ENOSPC);
      break;
    }
    REQUIRE(made < 100);
  }
  CHECK(made == 19);
  CHECK(m->statfs()->free_files == 0);
  CHECK(code_of(m->mkdir(kRootIno, "d", 0755, kRoot)) == ENOSPC);
  CHECK(code_of(m->symlink(kRootIno, "l", "t", kRoot)) == ENOSPC);
  CHECK(code_of(m->lookup(kRootIno, "f19")) == ENOENT);
  REQUIRE(m->unlink(kRootIno, "f3").ok());
  CHECK(m->mknod(kRootIno, "again", S_IFREG | 0644, 0, kRoot).ok());
  m.close_and_remount();
  CHECK(names_in(*m.fs, kRootIno).size() == 19);
}

TEST_CASE("running out of directory entries fails with ENOSPC", "[space]") {
  core::FormatOptions options = default_format();
  options.layout.inode_count = 20;
  Mounted m(kRegionBytes, options);
  const uint64_t entries = m.layout.dirent_count;
  Ino file = create(*m.fs, kRootIno, "f");
  uint64_t linked = 1;
  for (;; ++linked) {
    auto link = m->link(file, kRootDir, "l" + std::to_string(linked));
    if (!link) {
      CHECK(link.error().code() == ENOSPC);
      break;
    }
    REQUIRE(linked < 1000);
  }
  CHECK(linked == entries);
  CHECK(attr_of(*m.fs, file).nlink == entries);  // the failed link changed nothing
  CHECK(names_in(*m.fs, kRootIno).size() == entries);
  REQUIRE(m->unlink(kRootIno, "l1").ok());
  CHECK(m->link(file, kRootDir, "again").ok());
  m.close_and_remount();
  CHECK(attr_of(*m.fs, file).nlink == entries);
}

TEST_CASE("a reused inode slot gets a new generation", "[space]") {
  Mounted m;
  auto first = m->mknod(kRootIno, "a", S_IFREG | 0644, 0, kRoot);
  REQUIRE(first.ok());
  REQUIRE(m->unlink(kRootIno, "a").ok());
  auto second = m->mknod(kRootIno, "b", S_IFREG | 0644, 0, kRoot);
  REQUIRE(second.ok());
  CHECK(second->ino == first->ino);
  CHECK(second->generation == first->generation + 1);
}

TEST_CASE("an unlinked open file lives until its release", "[space]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  Ino file = create(*m.fs, kRootIno, "f");
  const std::string data = pattern(size_t{64} * 1024, 12);
  write_text(*m.fs, file, 0, data);
  const uint64_t used = free_blocks(*m.fs);
  REQUIRE(m->open_file(file).ok());
  REQUIRE(m->open_file(file).ok());
  REQUIRE(m->unlink(kRootIno, "f").ok());
  CHECK(code_of(m->lookup(kRootIno, "f")) == ENOENT);
  Attr attr = attr_of(*m.fs, file);
  CHECK(attr.nlink == 0);
  CHECK(read_all(*m.fs, file) == data);
  write_text(*m.fs, file, 0, "still writable");
  CHECK(free_blocks(*m.fs) == used);
  REQUIRE(m->release_file(file).ok());
  CHECK(attr_of(*m.fs, file).nlink == 0);  // one handle left
  REQUIRE(m->release_file(file).ok());
  CHECK(code_of(m->getattr(file)) == ENOENT);
  CHECK(free_blocks(*m.fs) == empty);
  CHECK(code_of(m->release_file(file)) == ENOENT);
  // Release without open is refused.
  Ino other = create(*m.fs, kRootIno, "g");
  CHECK(code_of(m->release_file(other)) == EINVAL);
}

TEST_CASE("an unlinked open file cannot be linked again", "[space]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  REQUIRE(m->open_file(file).ok());
  REQUIRE(m->unlink(kRootIno, "f").ok());
  CHECK(code_of(m->link(file, kRootDir, "back")) == ENOENT);
  REQUIRE(m->release_file(file).ok());
}

TEST_CASE("renaming over an open file keeps it until its release", "[space]") {
  Mounted m;
  Ino victim = create(*m.fs, kRootIno, "victim");
  write_text(*m.fs, victim, 0, "old data");
  create(*m.fs, kRootIno, "new");
  REQUIRE(m->open_file(victim).ok());
  REQUIRE(m->rename(kRootIno, "new", kRootIno, "victim", 0).ok());
  CHECK(read_all(*m.fs, victim) == "old data");
  REQUIRE(m->release_file(victim).ok());
  CHECK(code_of(m->getattr(victim)) == ENOENT);
}
