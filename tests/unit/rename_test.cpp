// tests/unit/rename_test.cpp: rename of core::Filesystem (fs/core/namespace.cpp):
// within and across directories, over files and directories, the errors POSIX
// asks of it, and RENAME_NOREPLACE and RENAME_EXCHANGE.
#include <fcntl.h>
#include <linux/fs.h>
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

TEST_CASE("rename moves an entry within and across directories", "[namespace][rename]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "a");
  REQUIRE(m->rename(kRootIno, "a", kRootIno, "b", 0).ok());
  CHECK(code_of(m->lookup(kRootIno, "a")) == ENOENT);
  CHECK(ino_of(*m.fs, kRootIno, "b") == file);

  Ino dir = make_dir(*m.fs, kRootIno, "d");
  REQUIRE(m->rename(kRootIno, "b", dir, "c", 0).ok());
  CHECK(ino_of(*m.fs, dir, "c") == file);
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{"d"});
  CHECK(attr_of(*m.fs, file).nlink == 1);

  // A directory moves with its contents; link counts and .. follow.
  Ino moving = make_dir(*m.fs, kRootIno, "e");
  Ino inner = make_dir(*m.fs, moving, "x");
  CHECK(attr_of(*m.fs, kRootIno).nlink == 4);
  REQUIRE(m->rename(kRootIno, "e", dir, "e2", 0).ok());
  CHECK(attr_of(*m.fs, kRootIno).nlink == 3);
  CHECK(attr_of(*m.fs, dir).nlink == 3);
  CHECK(dotdot_of(*m.fs, moving) == dir);
  CHECK(ino_of(*m.fs, moving, "x") == inner);
  CHECK(dotdot_of(*m.fs, inner) == moving);

  m.close_and_remount();
  CHECK(ino_of(*m.fs, dir, "e2") == moving);
  CHECK(dotdot_of(*m.fs, moving) == dir);
  CHECK(attr_of(*m.fs, dir).nlink == 3);
}

TEST_CASE("rename over an existing file replaces and frees it", "[namespace][rename]") {
  Mounted m;
  Ino source = create(*m.fs, kRootIno, "src");
  write_text(*m.fs, source, 0, pattern(kBlockSize, 1));
  Ino victim = create(*m.fs, kRootIno, "victim");
  write_text(*m.fs, victim, 0, pattern(16 * kBlockSize, 2));
  auto stats = m->statfs();
  REQUIRE(stats.ok());
  REQUIRE(m->rename(kRootIno, "src", kRootIno, "victim", 0).ok());
  CHECK(ino_of(*m.fs, kRootIno, "victim") == source);
  CHECK(code_of(m->lookup(kRootIno, "src")) == ENOENT);
  CHECK(code_of(m->getattr(victim)) == ENOENT);
  CHECK(free_blocks(*m.fs) == stats->free_blocks + 16);
  CHECK(m->statfs()->free_files == stats->free_files + 1);
  CHECK(read_all(*m.fs, source) == pattern(kBlockSize, 1));
}

TEST_CASE("rename of a directory over an empty directory replaces it", "[namespace][rename]") {
  Mounted m;
  SECTION("in one directory") {
    Ino d1 = make_dir(*m.fs, kRootIno, "d1");
    Ino d2 = make_dir(*m.fs, kRootIno, "d2");
    create(*m.fs, d1, "inside");
    CHECK(attr_of(*m.fs, kRootIno).nlink == 4);
    REQUIRE(m->rename(kRootIno, "d1", kRootIno, "d2", 0).ok());
    CHECK(ino_of(*m.fs, kRootIno, "d2") == d1);
    CHECK(code_of(m->getattr(d2)) == ENOENT);
    CHECK(attr_of(*m.fs, kRootIno).nlink == 3);
    CHECK(ino_of(*m.fs, d1, "inside") != 0);
  }
  SECTION("across directories") {
    Ino p = make_dir(*m.fs, kRootIno, "p");
    Ino q = make_dir(*m.fs, kRootIno, "q");
    Ino moving = make_dir(*m.fs, p, "m");
    Ino target = make_dir(*m.fs, q, "t");
    REQUIRE(m->rename(p, "m", q, "t", 0).ok());
    CHECK(attr_of(*m.fs, p).nlink == 2);
    CHECK(attr_of(*m.fs, q).nlink == 3);
    CHECK(ino_of(*m.fs, q, "t") == moving);
    CHECK(dotdot_of(*m.fs, moving) == q);
    CHECK(code_of(m->getattr(target)) == ENOENT);
  }
  m.close_and_remount();
}

TEST_CASE("rename over a non-empty directory fails with ENOTEMPTY", "[namespace][rename]") {
  Mounted m;
  make_dir(*m.fs, kRootIno, "a");
  Ino b = make_dir(*m.fs, kRootIno, "b");
  create(*m.fs, b, "f");
  CHECK(code_of(m->rename(kRootIno, "a", kRootIno, "b", 0)) == ENOTEMPTY);
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{"a", "b"});
  CHECK(attr_of(*m.fs, kRootIno).nlink == 4);
}

TEST_CASE("rename between a file and a directory fails with ENOTDIR or EISDIR", "[namespace][rename]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  Ino file = create(*m.fs, kRootIno, "f");
  CHECK(code_of(m->rename(kRootIno, "d", kRootIno, "f", 0)) == ENOTDIR);
  CHECK(code_of(m->rename(kRootIno, "f", kRootIno, "d", 0)) == EISDIR);
  CHECK(ino_of(*m.fs, kRootIno, "d") == dir);
  CHECK(ino_of(*m.fs, kRootIno, "f") == file);
}

TEST_CASE("rename of a directory into its own subtree fails with EINVAL", "[namespace][rename]") {
  Mounted m;
  Ino a = make_dir(*m.fs, kRootIno, "a");
  Ino b = make_dir(*m.fs, a, "b");
  Ino c = make_dir(*m.fs, b, "c");
  CHECK(code_of(m->rename(kRootIno, "a", a, "x", 0)) == EINVAL);
  CHECK(code_of(m->rename(kRootIno, "a", b, "x", 0)) == EINVAL);
  CHECK(code_of(m->rename(kRootIno, "a", c, "x", 0)) == EINVAL);
  CHECK(code_of(m->rename(a, "b", c, "x", 0)) == EINVAL);
  CHECK(code_of(m->rename(kRootIno, "a", b, "c", RENAME_EXCHANGE)) == EINVAL);
  CHECK(code_of(m->rename(b, "c", kRootIno, "a", RENAME_EXCHANGE)) == EINVAL);
  CHECK(dotdot_of(*m.fs, a) == kRootIno);
  CHECK(dotdot_of(*m.fs, b) == a);
  CHECK(ino_of(*m.fs, b, "c") == c);
  // Moving a directory up or sideways is fine.
  REQUIRE(m->rename(b, "c", kRootIno, "c", 0).ok());
  CHECK(dotdot_of(*m.fs, c) == kRootIno);
}

TEST_CASE("rename with RENAME_NOREPLACE refuses to replace with EEXIST", "[namespace][rename]") {
  Mounted m;
  Ino a = create(*m.fs, kRootIno, "a");
  Ino b = create(*m.fs, kRootIno, "b");
  CHECK(code_of(m->rename(kRootIno, "a", kRootIno, "b", RENAME_NOREPLACE)) == EEXIST);
  CHECK(ino_of(*m.fs, kRootIno, "a") == a);
  CHECK(ino_of(*m.fs, kRootIno, "b") == b);
  REQUIRE(m->rename(kRootIno, "a", kRootIno, "c", RENAME_NOREPLACE).ok());
  CHECK(ino_of(*m.fs, kRootIno, "c") == a);
  CHECK(code_of(m->rename(kRootIno, "c", kRootIno, "d", RENAME_NOREPLACE | RENAME_EXCHANGE)) == EINVAL);
  CHECK(code_of(m->rename(kRootIno, "c", kRootIno, "d", RENAME_WHITEOUT)) == EINVAL);
}

TEST_CASE("rename with RENAME_EXCHANGE swaps two files", "[namespace][rename]") {
  Mounted m;
  Ino a = create(*m.fs, kRootIno, "a");
  Ino b = create(*m.fs, kRootIno, "b");
  write_text(*m.fs, a, 0, "contents of a");
  write_text(*m.fs, b, 0, "contents of b");
  REQUIRE(m->rename(kRootIno, "a", kRootIno, "b", RENAME_EXCHANGE).ok());
  CHECK(ino_of(*m.fs, kRootIno, "a") == b);
  CHECK(ino_of(*m.fs, kRootIno, "b") == a);
  CHECK(read_all(*m.fs, ino_of(*m.fs, kRootIno, "a")) == "contents of b");
  CHECK(attr_of(*m.fs, a).nlink == 1);
  CHECK(attr_of(*m.fs, b).nlink == 1);
  CHECK(attr_of(*m.fs, kRootIno).nlink == 2);
  CHECK(code_of(m->rename(kRootIno, "a", kRootIno, "missing", RENAME_EXCHANGE)) == ENOENT);
  m.close_and_remount();
  CHECK(ino_of(*m.fs, kRootIno, "a") == b);
}

TEST_CASE("rename with RENAME_EXCHANGE swaps a file and a directory across directories",
          "[namespace][rename]") {
  Mounted m;
  Ino d1 = make_dir(*m.fs, kRootIno, "d1");
  Ino d2 = make_dir(*m.fs, kRootIno, "d2");
  Ino file = create(*m.fs, d1, "f");
  Ino sub = make_dir(*m.fs, d2, "sub");
  Ino kid = create(*m.fs, sub, "kid");
  CHECK(attr_of(*m.fs, d1).nlink == 2);
  CHECK(attr_of(*m.fs, d2).nlink == 3);
  REQUIRE(m->rename(d1, "f", d2, "sub", RENAME_EXCHANGE).ok());
  auto in_d1 = m->lookup(d1, "f");
  auto in_d2 = m->lookup(d2, "sub");
  REQUIRE(in_d1.ok());
  REQUIRE(in_d2.ok());
  CHECK(in_d1->ino == sub);
  CHECK(S_ISDIR(in_d1->mode));
  CHECK(in_d2->ino == file);
  CHECK(S_ISREG(in_d2->mode));
  CHECK(attr_of(*m.fs, d1).nlink == 3);
  CHECK(attr_of(*m.fs, d2).nlink == 2);
  CHECK(attr_of(*m.fs, kRootIno).nlink == 4);
  CHECK(dotdot_of(*m.fs, sub) == d1);
  CHECK(ino_of(*m.fs, sub, "kid") == kid);
  for (const Entry& entry : list_from(*m.fs, d1, 2)) {
    if (entry.name == "f") CHECK(S_ISDIR(entry.mode));
  }
  // The region agrees: reopening checks each entry's file type.
  m.close_and_remount();
  CHECK(ino_of(*m.fs, d1, "f") == sub);
  CHECK(ino_of(*m.fs, d2, "sub") == file);
  CHECK(attr_of(*m.fs, d1).nlink == 3);
  CHECK(attr_of(*m.fs, d2).nlink == 2);
  CHECK(dotdot_of(*m.fs, sub) == d1);
}

TEST_CASE("rename with RENAME_EXCHANGE swaps two directories across parents", "[namespace][rename]") {
  Mounted m;
  Ino p = make_dir(*m.fs, kRootIno, "p");
  Ino q = make_dir(*m.fs, kRootIno, "q");
  Ino a = make_dir(*m.fs, p, "a");
  Ino b = make_dir(*m.fs, q, "b");
  make_dir(*m.fs, b, "inner");
  REQUIRE(m->rename(p, "a", q, "b", RENAME_EXCHANGE).ok());
  CHECK(ino_of(*m.fs, p, "a") == b);
  CHECK(ino_of(*m.fs, q, "b") == a);
  CHECK(dotdot_of(*m.fs, a) == q);
  CHECK(dotdot_of(*m.fs, b) == p);
  CHECK(attr_of(*m.fs, p).nlink == 3);
  CHECK(attr_of(*m.fs, q).nlink == 3);
  CHECK(attr_of(*m.fs, b).nlink == 3);
  m.close_and_remount();
  CHECK(dotdot_of(*m.fs, b) == p);
}

TEST_CASE("rename between two hard links of one inode does nothing", "[namespace][rename]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  REQUIRE(m->link(file, kRootDir, "g").ok());
  REQUIRE(m->rename(kRootIno, "f", kRootIno, "g", 0).ok());
  CHECK(ino_of(*m.fs, kRootIno, "f") == file);
  CHECK(ino_of(*m.fs, kRootIno, "g") == file);
  CHECK(attr_of(*m.fs, file).nlink == 2);
  // So does a rename onto itself.
  REQUIRE(m->rename(kRootIno, "f", kRootIno, "f", 0).ok());
  CHECK(ino_of(*m.fs, kRootIno, "f") == file);
  CHECK(attr_of(*m.fs, file).nlink == 2);
  m.close_and_remount();
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{"f", "g"});
}
