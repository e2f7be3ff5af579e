// tests/unit/namespace_test.cpp: the namespace operations of core::Filesystem
// (fs/core/namespace.cpp): create, lookup, link, symlink, mkdir, rmdir, the
// errors POSIX asks of them, readdir and its cookies, and setattr. Rename has
// rename_test.cpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <ctime>
#include <map>
#include <set>
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
// Creating and finding.

TEST_CASE("a new file takes the caller's ids and the umask", "[namespace]") {
  Mounted m;
  Caller user{1000, 100, 027};
  auto file = m->mknod(kRootIno, "f", S_IFREG | 0666, 0, user);
  REQUIRE(file.ok());
  CHECK(file->mode == (S_IFREG | 0640));
  CHECK(file->uid == 1000);
  CHECK(file->gid == 100);
  CHECK(file->nlink == 1);
  CHECK(file->size == 0);
  CHECK(file->blocks == 0);
  CHECK(file->generation >= 1);

  auto dir = m->mkdir(kRootIno, "d", 0777, user);
  REQUIRE(dir.ok());
  CHECK(dir->mode == (S_IFDIR | 0750));
  CHECK(dir->nlink == 2);

  // The umask touches permission bits only.
  auto setuid = m->mknod(kRootIno, "s", S_IFREG | 04755, 0, Caller{0, 0, 022});
  REQUIRE(setuid.ok());
  CHECK(setuid->mode == (S_IFREG | 04755));

  // A mode without a type makes a regular file.
  auto plain = m->mknod(kRootIno, "p", 0600, 0, kRoot);
  REQUIRE(plain.ok());
  CHECK(S_ISREG(plain->mode));
}

TEST_CASE("lookup and getattr agree with what create returned", "[namespace]") {
  Mounted m;
  auto made = m->mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot);
  REQUIRE(made.ok());
  auto looked = m->lookup(kRootIno, "f");
  REQUIRE(looked.ok());
  Attr got = attr_of(*m.fs, made->ino);
  CHECK(describe_attr(looked.value()) == describe_attr(made.value()));
  CHECK(describe_attr(got) == describe_attr(made.value()));
  CHECK(made->ino != kRootIno);
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  CHECK(std::abs(made->mtime.tv_sec - now.tv_sec) <= 5);
  CHECK(made->btime.tv_sec == made->mtime.tv_sec);

  auto fifo = m->mknod(kRootIno, "fifo", S_IFIFO | 0600, 0, kRoot);
  REQUIRE(fifo.ok());
  CHECK(S_ISFIFO(fifo->mode));
  auto device = m->mknod(kRootIno, "null", S_IFCHR | 0666, makedev(1, 3), kRoot);
  REQUIRE(device.ok());
  CHECK(device->rdev == makedev(1, 3));
  CHECK(attr_of(*m.fs, device->ino).rdev == makedev(1, 3));
  auto sock = m->mknod(kRootIno, "sock", S_IFSOCK | 0600, 0, kRoot);
  REQUIRE(sock.ok());
  CHECK(S_ISSOCK(sock->mode));
  CHECK(code_of(m->mknod(kRootIno, "dir", S_IFDIR | 0755, 0, kRoot)) == EINVAL);
  CHECK(code_of(m->mknod(kRootIno, "lnk", S_IFLNK | 0777, 0, kRoot)) == EINVAL);

  Attr root = attr_of(*m.fs, kRootIno);
  CHECK(S_ISDIR(root.mode));
  CHECK((root.mode & 07777) == 0755);
}

TEST_CASE("files in a set-group-ID directory take its group", "[namespace]") {
  Mounted m;
  auto shared = m->mkdir(kRootIno, "shared", 02775, Caller{0, 50, 0});
  REQUIRE(shared.ok());
  CHECK(shared->gid == 50);
  CHECK((shared->mode & S_ISGID) != 0);
  Caller user{1000, 1000, 022};
  auto file = m->mknod(shared->ino, "f", S_IFREG | 0666, 0, user);
  REQUIRE(file.ok());
  CHECK(file->uid == 1000);
  CHECK(file->gid == 50);
  CHECK(file->mode == (S_IFREG | 0644));
  auto sub = m->mkdir(shared->ino, "sub", 0777, user);
  REQUIRE(sub.ok());
  CHECK(sub->gid == 50);
  CHECK(sub->mode == (S_IFDIR | S_ISGID | 0755));
  auto outside = m->mknod(kRootIno, "g", S_IFREG | 0666, 0, user);
  REQUIRE(outside.ok());
  CHECK(outside->gid == 1000);
}

TEST_CASE("creating an existing name fails with EEXIST", "[namespace]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  make_dir(*m.fs, kRootIno, "d");
  CHECK(code_of(m->mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot)) == EEXIST);
  CHECK(code_of(m->mkdir(kRootIno, "f", 0755, kRoot)) == EEXIST);
  CHECK(code_of(m->mkdir(kRootIno, "d", 0755, kRoot)) == EEXIST);
  CHECK(code_of(m->symlink(kRootIno, "d", "x", kRoot)) == EEXIST);
  CHECK(code_of(m->link(file, kRootDir, "d")) == EEXIST);
  CHECK(attr_of(*m.fs, kRootIno).nlink == 3);
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{"d", "f"});
}

TEST_CASE("missing names and inodes fail with ENOENT", "[namespace]") {
  Mounted m;
  CHECK(code_of(m->lookup(kRootIno, "nope")) == ENOENT);
  CHECK(code_of(m->getattr(9999)) == ENOENT);
  CHECK(code_of(m->getattr(0)) == ENOENT);
  CHECK(code_of(m->mknod(9999, "x", S_IFREG | 0644, 0, kRoot)) == ENOENT);
  CHECK(code_of(m->unlink(kRootIno, "nope")) == ENOENT);
  CHECK(code_of(m->rmdir(kRootIno, "nope")) == ENOENT);
  CHECK(code_of(m->rename(kRootIno, "nope", kRootIno, "other", 0)) == ENOENT);
  CHECK(code_of(m->readlink(9999)) == ENOENT);
  CHECK(code_of(m->symlink(kRootIno, "empty", "", kRoot)) == ENOENT);
  // A removed directory takes no new entries.
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  REQUIRE(m->rmdir(kRootIno, "d").ok());
  CHECK(code_of(m->mknod(dir, "x", S_IFREG | 0644, 0, kRoot)) == ENOENT);
  CHECK(code_of(m->getattr(dir)) == ENOENT);
}

TEST_CASE("a file used as a directory fails with ENOTDIR", "[namespace]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  CHECK(code_of(m->lookup(file, "x")) == ENOTDIR);
  CHECK(code_of(m->mknod(file, "x", S_IFREG | 0644, 0, kRoot)) == ENOTDIR);
  CHECK(code_of(m->mkdir(file, "x", 0755, kRoot)) == ENOTDIR);
  CHECK(code_of(m->readdir(file, 0, [](const core::DirEntry&) { return true; })) == ENOTDIR);
  CHECK(code_of(m->rmdir(kRootIno, "f")) == ENOTDIR);
  CHECK(code_of(m->rename(kRootIno, "d", file, "x", 0)) == ENOTDIR);
  CHECK(code_of(m->link(file, file, "x")) == ENOTDIR);
  (void)dir;
}

TEST_CASE("file operations on a directory fail with EISDIR", "[namespace]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  CHECK(code_of(m->unlink(kRootIno, "d")) == EISDIR);
  CHECK(code_of(m->write(dir, 0, bytes_of("x"))) == EISDIR);
  std::string buffer(10, '\0');
  CHECK(code_of(m->read(dir, 0, std::as_writable_bytes(std::span<char>(buffer.data(), buffer.size())))) ==
        EISDIR);
  CHECK(code_of(set_size(*m.fs, dir, 0)) == EISDIR);
  CHECK(code_of(m->fallocate(dir, 0, 0, 4096)) == EISDIR);
  CHECK(attr_of(*m.fs, dir).nlink == 2);
}

TEST_CASE("removing a non-empty directory fails with ENOTEMPTY", "[namespace]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  create(*m.fs, dir, "f");
  CHECK(code_of(m->rmdir(kRootIno, "d")) == ENOTEMPTY);
  REQUIRE(m->unlink(dir, "f").ok());
  CHECK(m->rmdir(kRootIno, "d").ok());
  CHECK(code_of(m->rmdir(kRootIno, "..")) == ENOTEMPTY);
}

TEST_CASE("dot and dot-dot are not names: EINVAL", "[namespace]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  make_dir(*m.fs, kRootIno, "d");
  for (std::string_view name : {".", ".."}) {
    CAPTURE(name);
    CHECK(code_of(m->mknod(kRootIno, name, S_IFREG | 0644, 0, kRoot)) == EINVAL);
    CHECK(code_of(m->mkdir(kRootIno, name, 0755, kRoot)) == EINVAL);
    CHECK(code_of(m->symlink(kRootIno, name, "t", kRoot)) == EINVAL);
    CHECK(code_of(m->link(file, kRootDir, name)) == EINVAL);
    CHECK(code_of(m->rename(kRootIno, "f", kRootIno, name, 0)) == EINVAL);
  }
  CHECK(code_of(m->rmdir(kRootIno, ".")) == EINVAL);
  CHECK(code_of(m->mknod(kRootIno, "", S_IFREG | 0644, 0, kRoot)) == EINVAL);
  CHECK(code_of(m->mknod(kRootIno, "a/b", S_IFREG | 0644, 0, kRoot)) == EINVAL);
  CHECK(code_of(m->mknod(kRootIno, std::string_view("a\0b", 3), S_IFREG | 0644, 0, kRoot)) == EINVAL);
  CHECK(code_of(m->rename(kRootIno, "f", kRootIno, "x/y", 0)) == EINVAL);
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{"d", "f"});
}

TEST_CASE("names of 255 bytes work and 256 bytes fail with ENAMETOOLONG", "[namespace]") {
  Mounted m;
  const std::string longest(255, 'n');
  const std::string too_long(256, 'n');
  auto made = m->mknod(kRootIno, longest, S_IFREG | 0644, 0, kRoot);
  REQUIRE(made.ok());
  CHECK(ino_of(*m.fs, kRootIno, longest) == made->ino);
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{longest});
  CHECK(code_of(m->mknod(kRootIno, too_long, S_IFREG | 0644, 0, kRoot)) == ENAMETOOLONG);
  CHECK(code_of(m->mkdir(kRootIno, too_long, 0755, kRoot)) == ENAMETOOLONG);
  CHECK(code_of(m->symlink(kRootIno, too_long, "t", kRoot)) == ENAMETOOLONG);
  CHECK(code_of(m->link(made->ino, kRootDir, too_long)) == ENAMETOOLONG);
  CHECK(code_of(m->rename(kRootIno, longest, kRootIno, too_long, 0)) == ENAMETOOLONG);
  CHECK(code_of(m->lookup(kRootIno, too_long)) == ENAMETOOLONG);
  std::string other(255, 'o');
  REQUIRE(m->rename(kRootIno, longest, kRootIno, other, 0).ok());
  REQUIRE(m->mkdir(kRootIno, longest, 0755, kRoot).ok());
  m.close_and_remount();
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{longest, other});
}

TEST_CASE("mkdir and rmdir keep directory link counts", "[namespace]") {
  Mounted m;
  CHECK(attr_of(*m.fs, kRootIno).nlink == 2);
  Ino a = make_dir(*m.fs, kRootIno, "a");
  CHECK(attr_of(*m.fs, kRootIno).nlink == 3);
  CHECK(attr_of(*m.fs, a).nlink == 2);
  Ino b = make_dir(*m.fs, a, "b");
  make_dir(*m.fs, a, "c");
  create(*m.fs, a, "file");  // files do not count
  CHECK(attr_of(*m.fs, a).nlink == 4);
  CHECK(attr_of(*m.fs, b).nlink == 2);
  CHECK(attr_of(*m.fs, kRootIno).nlink == 3);
  CHECK(dotdot_of(*m.fs, b) == a);
  CHECK(dotdot_of(*m.fs, kRootIno) == kRootIno);
  REQUIRE(m->rmdir(a, "b").ok());
  CHECK(attr_of(*m.fs, a).nlink == 3);
  REQUIRE(m->rmdir(a, "c").ok());
  REQUIRE(m->unlink(a, "file").ok());
  CHECK(attr_of(*m.fs, a).nlink == 2);
  REQUIRE(m->rmdir(kRootIno, "a").ok());
  CHECK(attr_of(*m.fs, kRootIno).nlink == 2);
}

TEST_CASE("hard links share the inode and count links", "[namespace]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, "shared data");
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  auto linked = m->link(file, dir, "g");
  REQUIRE(linked.ok());
  CHECK(linked->ino == file);
  CHECK(linked->nlink == 2);
  CHECK(ino_of(*m.fs, dir, "g") == file);
  REQUIRE(m->link(file, kRootDir, "h").ok());
  CHECK(attr_of(*m.fs, file).nlink == 3);
  CHECK(attr_of(*m.fs, dir).nlink == 2);  // a file link does not count
  REQUIRE(m->unlink(kRootIno, "f").ok());
  CHECK(attr_of(*m.fs, file).nlink == 2);
  CHECK(read_all(*m.fs, file) == "shared data");
  REQUIRE(m->unlink(dir, "g").ok());
  REQUIRE(m->unlink(kRootIno, "h").ok());
  CHECK(code_of(m->getattr(file)) == ENOENT);
}

TEST_CASE("hard links to directories fail with EPERM", "[namespace]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  CHECK(code_of(m->link(dir, kRootDir, "e")) == EPERM);
  CHECK(code_of(m->link(kRootIno, dir, "root")) == EPERM);
  CHECK(attr_of(*m.fs, dir).nlink == 2);
}

TEST_CASE("symlinks keep targets of up to 4095 bytes", "[namespace]") {
  Mounted m;
  auto link = m->symlink(kRootIno, "l", "some/where", Caller{1000, 1000, 077});
  REQUIRE(link.ok());
  CHECK(link->mode == (S_IFLNK | 0777));  // umask does not apply
  CHECK(link->size == 10);
  CHECK(link->uid == 1000);
  auto target = m->readlink(link->ino);
  REQUIRE(target.ok());
  CHECK(target.value() == "some/where");

  const std::string longest(format::kSymlinkMax, 't');
  auto long_link = m->symlink(kRootIno, "long", longest, kRoot);
  REQUIRE(long_link.ok());
  CHECK(long_link->size == 4095);
  CHECK(m->readlink(long_link->ino).value() == longest);
  CHECK(code_of(m->symlink(kRootIno, "too_long", std::string(4096, 't'), kRoot)) == ENAMETOOLONG);
  CHECK(code_of(m->lookup(kRootIno, "too_long")) == ENOENT);

  Ino file = create(*m.fs, kRootIno, "f");
  CHECK(code_of(m->readlink(file)) == EINVAL);
  CHECK(code_of(m->write(link->ino, 0, bytes_of("x"))) == EINVAL);

  // Removing a symlink gives its block back.
  uint64_t before = free_blocks(*m.fs);
  REQUIRE(m->unlink(kRootIno, "long").ok());
  CHECK(free_blocks(*m.fs) == before + 1);
}

// ---------------------------------------------------------------------------
// readdir.

TEST_CASE("readdir lists . and .. first and resumes from every cookie", "[namespace]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  std::set<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    std::string name = "f" + std::to_string(i);
    create(*m.fs, dir, name);
    expected.insert(name);
  }
  std::vector<Entry> all = list_from(*m.fs, dir, 0);
  REQUIRE(all.size() == 22);
  CHECK(all[0].name == ".");
  CHECK(all[0].ino == dir);
  CHECK(all[1].name == "..");
  CHECK(all[1].ino == kRootIno);
  CHECK(S_ISDIR(all[0].mode));
  std::set<std::string> listed;
  for (size_t i = 2; i < all.size(); ++i) {
    listed.insert(all[i].name);
    CHECK(S_ISREG(all[i].mode));
    CHECK(all[i].ino == ino_of(*m.fs, dir, all[i].name));
  }
  CHECK(listed == expected);
  // The same order again, and from every cookie exactly the rest.
  const std::vector<std::string> all_names = names_of(all);
  CHECK(names_of(list_from(*m.fs, dir, 0)) == all_names);
  for (size_t i = 0; i < all.size(); ++i) {
    CAPTURE(i);
    std::vector<std::string> rest = names_of(list_from(*m.fs, dir, all[i].next_cookie));
    CHECK(rest ==
          std::vector<std::string>(all_names.begin() + static_cast<ptrdiff_t>(i) + 1, all_names.end()));
  }
  // emit can stop early.
  CHECK(list_from(*m.fs, dir, 0, 3).size() == 3);
  // Cookies are unique and never 0.
  std::set<uint64_t> cookies;
  for (const Entry& entry : all) cookies.insert(entry.next_cookie);
  CHECK(cookies.size() == all.size());
  CHECK_FALSE(cookies.contains(0));
}

TEST_CASE("readdir cookies survive entries added and removed during iteration", "[namespace]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  for (int i = 0; i < 20; ++i) create(*m.fs, dir, "f" + std::to_string(i));
  std::vector<Entry> all = list_from(*m.fs, dir, 0);
  REQUIRE(all.size() == 22);
  std::vector<Entry> first = list_from(*m.fs, dir, 0, 7);
  REQUIRE(first.size() == 7);
  const std::string seen_removed = first[4].name;
  const std::string unseen_removed = all[12].name;
  REQUIRE(m->unlink(dir, seen_removed).ok());
  REQUIRE(m->unlink(dir, unseen_removed).ok());
  create(*m.fs, dir, "new1");
  create(*m.fs, dir, "new2");
  create(*m.fs, dir, "new3");

  std::vector<Entry> rest = list_from(*m.fs, dir, first.back().next_cookie);
  std::map<std::string, int> count;
  for (const Entry& entry : first) count[entry.name] += 1;
  for (const Entry& entry : rest) count[entry.name] += 1;
  for (const Entry& entry : all) {
    CAPTURE(entry.name);
    if (entry.name == unseen_removed) {
      CHECK(count[entry.name] == 0);
    } else {
      CHECK(count[entry.name] == 1);  // every survivor exactly once
    }
  }
  for (const std::string name : {"new1", "new2", "new3"}) CHECK(count[name] <= 1);
  // A full listing now has exactly the survivors and the new names.
  std::vector<std::string> now = names_in(*m.fs, dir);
  CHECK(now.size() == 21);
}

TEST_CASE("readdir of a subdirectory names its parent as ..", "[namespace]") {
  Mounted m;
  Ino a = make_dir(*m.fs, kRootIno, "a");
  Ino b = make_dir(*m.fs, a, "b");
  std::vector<Entry> entries = list_from(*m.fs, b, 0);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].ino == b);
  CHECK(entries[1].ino == a);
  // Resuming after .. of an empty directory yields nothing.
  CHECK(list_from(*m.fs, b, entries[1].next_cookie).empty());
}

// ---------------------------------------------------------------------------
// setattr.

TEST_CASE("setattr changes mode and owner as asked", "[namespace]") {
  // Permission checks and the clearing of set-user-ID on chown belong to the
  // kernel (default_permissions): it sends the cleared mode in the same
  // setattr. Core applies what it is given, whoever the caller is.
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f", 06755);
  SetAttr chmod;
  chmod.mode = 0640;
  auto changed = m->setattr(file, chmod, kRoot);
  REQUIRE(changed.ok());
  CHECK(changed->mode == (S_IFREG | 0640));
  chmod.mode = S_IFDIR | 06755;  // type bits in the request are ignored
  changed = m->setattr(file, chmod, kRoot);
  REQUIRE(changed.ok());
  CHECK(changed->mode == (S_IFREG | 06755));

  SetAttr chown;
  chown.uid = 1000;
  chown.gid = 1000;
  changed = m->setattr(file, chown, kRoot);
  REQUIRE(changed.ok());
  CHECK(changed->uid == 1000);
  CHECK(changed->gid == 1000);
  CHECK(changed->mode == (S_IFREG | 06755));

  // A non-root chgrp as the kernel sends it: the new group and the mode
  // without set-user-ID and set-group-ID, in one call.
  SetAttr chgrp;
  chgrp.gid = 2000;
  chgrp.mode = 0755;
  changed = m->setattr(file, chgrp, Caller{1000, 1000, 0});
  REQUIRE(changed.ok());
  CHECK(changed->gid == 2000);
  CHECK(changed->uid == 1000);
  CHECK(changed->mode == (S_IFREG | 0755));

  // Only the fields asked for change.
  SetAttr only_uid;
  only_uid.uid = 7;
  changed = m->setattr(file, only_uid, kRoot);
  REQUIRE(changed.ok());
  CHECK(changed->uid == 7);
  CHECK(changed->gid == 2000);
  CHECK(changed->mode == (S_IFREG | 0755));
  m.close_and_remount();
  Attr after = attr_of(*m.fs, file);
  CHECK(after.uid == 7);
  CHECK(after.gid == 2000);
}

TEST_CASE("setattr sets times to values or to now", "[namespace]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  SetAttr times;
  times.atime = core::TimeSet{false, {1000, 5}};
  times.mtime = core::TimeSet{false, {2000, 999999999}};
  auto changed = m->setattr(file, times, kRoot);
  REQUIRE(changed.ok());
  CHECK(changed->atime.tv_sec == 1000);
  CHECK(changed->atime.tv_nsec == 5);
  CHECK(changed->mtime.tv_sec == 2000);
  CHECK(changed->mtime.tv_nsec == 999999999);
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  CHECK(std::abs(changed->ctime.tv_sec - now.tv_sec) <= 5);

  SetAttr touch;
  touch.atime = core::TimeSet{true, {}};
  touch.mtime = core::TimeSet{true, {}};
  changed = m->setattr(file, touch, kRoot);
  REQUIRE(changed.ok());
  CHECK(std::abs(changed->atime.tv_sec - now.tv_sec) <= 5);
  CHECK(std::abs(changed->mtime.tv_sec - now.tv_sec) <= 5);

  SetAttr negative;
  negative.mtime = core::TimeSet{false, {-5, 250}};  // before 1970
  changed = m->setattr(file, negative, kRoot);
  REQUIRE(changed.ok());
  CHECK(changed->mtime.tv_sec == -5);
  CHECK(changed->mtime.tv_nsec == 250);
  m.close_and_remount();
  CHECK(attr_of(*m.fs, file).mtime.tv_sec == -5);
  CHECK(attr_of(*m.fs, file).mtime.tv_nsec == 250);
}

TEST_CASE("a write leaves set-user-ID to the kernel", "[namespace]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f", 06755);
  write_text(*m.fs, file, 0, "x");
  CHECK(attr_of(*m.fs, file).mode == (S_IFREG | 06755));
}
