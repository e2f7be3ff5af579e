// tests/unit/core_test.cpp: POSIX behaviour of core::Filesystem on a
// formatted MemoryRegion: the namespace, data, xattrs, space accounting,
// persistence across close and crash, and read-only opens.
//
// The filesystem always runs on a MemoryView of memory the test owns, so a
// case can drop it (cleanly or as a crash) and open the same bytes again.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/journal/journal.h"
#include "fs/region/region.h"
#include "support/memory_view.h"
#include "support/result_checks.h"

namespace {

using namespace pkfs;
using core::Attr;
using core::Caller;
using core::Filesystem;
using core::Ino;
using core::SetAttr;
using format::kBlockSize;
using format::kChunkSize;
using format::kRootIno;
using pkfs::test::code_of;
using pkfs::test::message_of;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kRegionBytes = 64 * kMiB;
constexpr uint64_t kSectorsPerBlock = kBlockSize / 512;  // Attr::blocks counts 512-byte units
const Caller kRoot{};
// The root directory as a link target's new parent (kRootIno reads like an
// inode argument to clang-tidy's swapped-argument check).
constexpr Ino kRootDir = kRootIno;

core::FormatOptions default_format() {
  core::FormatOptions options;
  options.data_known_zero = true;  // MemoryRegion starts zeroed
  options.label = "unit";
  return options;
}

// A formatted region the test owns and the filesystem mounted on it.
struct Mounted {
  std::unique_ptr<region::MemoryRegion> memory;
  format::Layout layout{};
  std::unique_ptr<Filesystem> fs;

  explicit Mounted(uint64_t bytes = kRegionBytes, const core::FormatOptions& options = default_format()) {
    memory = std::make_unique<region::MemoryRegion>(bytes);
    auto formatted = core::format_region(*memory, options);
    REQUIRE(formatted.ok());
    layout = formatted.value();
    mount();
  }

  Result<std::unique_ptr<Filesystem>> try_mount(const core::OpenOptions& options = {},
                                                bool read_only_region = false) const {
    return Filesystem::open(testing::MemoryView::of(*memory, read_only_region), options);
  }
  void mount(const core::OpenOptions& options = {}) {
    auto opened = try_mount(options);
    if (!opened) FAIL("open failed: " << opened.error().message());
    fs = std::move(opened).value();
  }
  void close_and_remount(const core::OpenOptions& options = {}) {
    REQUIRE(fs->close().ok());
    fs.reset();
    mount(options);
  }
  // Drops the filesystem without close(): what a killed process leaves.
  void crash_and_remount() {
    fs.reset();
    mount();
  }
  Filesystem* operator->() const { return fs.get(); }
};

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// Deterministic bytes that differ from offset to offset and seed to seed.
std::string pattern(size_t length, uint32_t seed) {
  std::string text(length, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < length; ++i) {
    state = state * 1103515245u + 12345u;
    text[i] = static_cast<char>(state >> 16);
  }
  return text;
}

bool all_zero(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c == 0; });
}

Ino create(Filesystem& fs, Ino parent, std::string_view name, uint32_t mode = 0644,
           const Caller& caller = kRoot) {
  auto attr = fs.mknod(parent, name, S_IFREG | mode, 0, caller);
  if (!attr) FAIL("mknod " << name << ": " << attr.error().message());
  return attr->ino;
}

Ino make_dir(Filesystem& fs, Ino parent, std::string_view name, uint32_t mode = 0755,
             const Caller& caller = kRoot) {
  auto attr = fs.mkdir(parent, name, mode, caller);
  if (!attr) FAIL("mkdir " << name << ": " << attr.error().message());
  return attr->ino;
}

void write_text(Filesystem& fs, Ino ino, uint64_t offset, std::string_view text) {
  auto written = fs.write(ino, offset, bytes_of(text));
  if (!written) FAIL("write: " << written.error().message());
  REQUIRE(written.value() == text.size());
}

std::string read_text(Filesystem& fs, Ino ino, uint64_t offset, size_t length) {
  std::string buffer(length, '\x7f');
  auto got = fs.read(ino, offset, std::as_writable_bytes(std::span<char>(buffer.data(), buffer.size())));
  if (!got) FAIL("read: " << got.error().message());
  buffer.resize(got.value());
  return buffer;
}

std::string read_all(Filesystem& fs, Ino ino) {
  auto attr = fs.getattr(ino);
  REQUIRE(attr.ok());
  return read_text(fs, ino, 0, attr->size);
}

Attr attr_of(Filesystem& fs, Ino ino) {
  auto attr = fs.getattr(ino);
  if (!attr) FAIL("getattr " << ino << ": " << attr.error().message());
  return attr.value();
}

Ino ino_of(Filesystem& fs, Ino parent, std::string_view name) {
  auto attr = fs.lookup(parent, name);
  if (!attr) FAIL("lookup " << name << ": " << attr.error().message());
  return attr->ino;
}

uint64_t free_blocks(Filesystem& fs) {
  auto stats = fs.statfs();
  REQUIRE(stats.ok());
  return stats->free_blocks;
}

Result<Attr> set_size(Filesystem& fs, Ino ino, uint64_t size) {
  SetAttr changes;
  changes.size = size;
  return fs.setattr(ino, changes, kRoot);
}

struct Entry {
  std::string name;
  Ino ino;
  uint32_t mode;
  uint64_t next_cookie;
};

// Entries from `cookie` on; at most `limit`.
std::vector<Entry> list_from(Filesystem& fs, Ino dir, uint64_t cookie, size_t limit = SIZE_MAX) {
  std::vector<Entry> entries;
  auto result = fs.readdir(dir, cookie, [&](const core::DirEntry& entry) {
    entries.push_back({std::string(entry.name), entry.ino, entry.mode, entry.next_cookie});
    return entries.size() < limit;
  });
  if (!result) FAIL("readdir: " << result.error().message());
  return entries;
}

// Names in a directory, without . and .., sorted.
std::vector<std::string> names_in(Filesystem& fs, Ino dir) {
  std::vector<std::string> names;
  for (const Entry& entry : list_from(fs, dir, 0)) {
    if (entry.name != "." && entry.name != "..") names.push_back(entry.name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> names_of(const std::vector<Entry>& entries) {
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (const Entry& entry : entries) names.push_back(entry.name);
  return names;
}

Ino dotdot_of(Filesystem& fs, Ino dir) {
  for (const Entry& entry : list_from(fs, dir, 0)) {
    if (entry.name == "..") return entry.ino;
  }
  FAIL("no .. entry");
  return 0;
}

std::string describe_attr(const Attr& a) {
  std::ostringstream out;
  out << "ino=" << a.ino << " gen=" << a.generation << " mode=" << std::oct << a.mode << std::dec
      << " nlink=" << a.nlink << " uid=" << a.uid << " gid=" << a.gid << " size=" << a.size
      << " blocks=" << a.blocks << " rdev=" << a.rdev << " atime=" << a.atime.tv_sec << "." << a.atime.tv_nsec
      << " mtime=" << a.mtime.tv_sec << "." << a.mtime.tv_nsec << " ctime=" << a.ctime.tv_sec << "."
      << a.ctime.tv_nsec << " btime=" << a.btime.tv_sec << "." << a.btime.tv_nsec;
  return out.str();
}

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

// A huge, sparse, zero region for the few cases that need a terabyte of
// address space: private anonymous memory without a swap reservation, so
// only the pages a case touches cost anything.
struct SparseMemory {
  std::byte* base = nullptr;
  uint64_t size = 0;
  explicit SparseMemory(uint64_t bytes) : size(bytes) {
    void* mapped =
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapped != MAP_FAILED) base = static_cast<std::byte*>(mapped);
  }
  ~SparseMemory() {
    if (base != nullptr) ::munmap(base, size);
  }
  SparseMemory(const SparseMemory&) = delete;
  SparseMemory& operator=(const SparseMemory&) = delete;
};

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
// Creating and finding.

TEST_CASE("a new file takes the caller's ids and the umask", "[core]") {
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

TEST_CASE("lookup and getattr agree with what create returned", "[core]") {
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

TEST_CASE("files in a set-group-ID directory take its group", "[core]") {
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

TEST_CASE("creating an existing name fails with EEXIST", "[core]") {
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

TEST_CASE("missing names and inodes fail with ENOENT", "[core]") {
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

TEST_CASE("a file used as a directory fails with ENOTDIR", "[core]") {
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

TEST_CASE("file operations on a directory fail with EISDIR", "[core]") {
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

TEST_CASE("removing a non-empty directory fails with ENOTEMPTY", "[core]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  create(*m.fs, dir, "f");
  CHECK(code_of(m->rmdir(kRootIno, "d")) == ENOTEMPTY);
  REQUIRE(m->unlink(dir, "f").ok());
  CHECK(m->rmdir(kRootIno, "d").ok());
  CHECK(code_of(m->rmdir(kRootIno, "..")) == ENOTEMPTY);
}

TEST_CASE("dot and dot-dot are not names: EINVAL", "[core]") {
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

TEST_CASE("names of 255 bytes work and 256 bytes fail with ENAMETOOLONG", "[core]") {
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

TEST_CASE("mkdir and rmdir keep directory link counts", "[core]") {
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

TEST_CASE("hard links share the inode and count links", "[core]") {
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

TEST_CASE("hard links to directories fail with EPERM", "[core]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  CHECK(code_of(m->link(dir, kRootDir, "e")) == EPERM);
  CHECK(code_of(m->link(kRootIno, dir, "root")) == EPERM);
  CHECK(attr_of(*m.fs, dir).nlink == 2);
}

TEST_CASE("symlinks keep targets of up to 4095 bytes", "[core]") {
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
// Rename.

TEST_CASE("rename moves an entry within and across directories", "[core]") {
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

TEST_CASE("rename over an existing file replaces and frees it", "[core]") {
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

TEST_CASE("rename of a directory over an empty directory replaces it", "[core]") {
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

TEST_CASE("rename over a non-empty directory fails with ENOTEMPTY", "[core]") {
  Mounted m;
  make_dir(*m.fs, kRootIno, "a");
  Ino b = make_dir(*m.fs, kRootIno, "b");
  create(*m.fs, b, "f");
  CHECK(code_of(m->rename(kRootIno, "a", kRootIno, "b", 0)) == ENOTEMPTY);
  CHECK(names_in(*m.fs, kRootIno) == std::vector<std::string>{"a", "b"});
  CHECK(attr_of(*m.fs, kRootIno).nlink == 4);
}

TEST_CASE("rename between a file and a directory fails with ENOTDIR or EISDIR", "[core]") {
  Mounted m;
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  Ino file = create(*m.fs, kRootIno, "f");
  CHECK(code_of(m->rename(kRootIno, "d", kRootIno, "f", 0)) == ENOTDIR);
  CHECK(code_of(m->rename(kRootIno, "f", kRootIno, "d", 0)) == EISDIR);
  CHECK(ino_of(*m.fs, kRootIno, "d") == dir);
  CHECK(ino_of(*m.fs, kRootIno, "f") == file);
}

TEST_CASE("rename of a directory into its own subtree fails with EINVAL", "[core]") {
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

TEST_CASE("rename with RENAME_NOREPLACE refuses to replace with EEXIST", "[core]") {
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

TEST_CASE("rename with RENAME_EXCHANGE swaps two files", "[core]") {
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

TEST_CASE("rename with RENAME_EXCHANGE swaps a file and a directory across directories", "[core]") {
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

TEST_CASE("rename with RENAME_EXCHANGE swaps two directories across parents", "[core]") {
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

TEST_CASE("rename between two hard links of one inode does nothing", "[core]") {
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

// ---------------------------------------------------------------------------
// readdir.

TEST_CASE("readdir lists . and .. first and resumes from every cookie", "[core]") {
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

TEST_CASE("readdir cookies survive entries added and removed during iteration", "[core]") {
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

TEST_CASE("readdir of a subdirectory names its parent as ..", "[core]") {
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
// Data.

TEST_CASE("data written at odd offsets reads back, with holes as zeros", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  const std::string data = pattern(10000, 7);
  write_text(*m.fs, file, 12345, data);
  Attr attr = attr_of(*m.fs, file);
  CHECK(attr.size == 22345);
  CHECK(attr.blocks > 0);
  CHECK(all_zero(read_text(*m.fs, file, 0, 12345)));
  CHECK(read_text(*m.fs, file, 12345, 10000) == data);
  CHECK(read_text(*m.fs, file, 12345 + 777, 3001) == data.substr(777, 3001));
  // Reads past the end are short.
  CHECK(read_text(*m.fs, file, 20000, 5000) == data.substr(20000 - 12345));
  CHECK(read_text(*m.fs, file, 22345, 100).empty());
  CHECK(read_text(*m.fs, file, kGiB, 100).empty());
  // Overwrite in the middle.
  write_text(*m.fs, file, 15000, "hello");
  std::string expected = data;
  expected.replace(15000 - 12345, 5, "hello");
  CHECK(read_text(*m.fs, file, 12345, 10000) == expected);
  CHECK(attr_of(*m.fs, file).size == 22345);
  CHECK(m->write(file, 0, {}).value() == 0);
}

TEST_CASE("a large write spans chunks and reads back in pieces", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  const std::string data = pattern(3 * kMiB + 5, 8);
  write_text(*m.fs, file, kMiB + 7, data);
  CHECK(attr_of(*m.fs, file).size == 4 * kMiB + 12);
  std::string back;
  for (uint64_t offset = kMiB + 7; offset < 4 * kMiB + 12; offset += 333333) {
    back += read_text(*m.fs, file, offset, 333333);
  }
  CHECK(back == data);
  CHECK(all_zero(read_text(*m.fs, file, 0, kMiB + 7)));
}

TEST_CASE("sparse files read zeros in their holes", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 10 * kMiB, "z");
  Attr attr = attr_of(*m.fs, file);
  CHECK(attr.size == 10 * kMiB + 1);
  CHECK(attr.blocks * 512 <= kChunkSize);
  CHECK(all_zero(read_text(*m.fs, file, 3 * kMiB, kMiB)));
  CHECK(read_text(*m.fs, file, 10 * kMiB - 2, 10) == std::string("\0\0z", 3));
}

TEST_CASE("growing a file zeroes the gap, even over blocks used before", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, std::string(8192, '\xaa'));
  REQUIRE(set_size(*m.fs, file, 100).ok());

  SECTION("by a write past the end") {
    write_text(*m.fs, file, 8000, "x");
    CHECK(attr_of(*m.fs, file).size == 8001);
    CHECK(read_text(*m.fs, file, 0, 100) == std::string(100, '\xaa'));
    CHECK(all_zero(read_text(*m.fs, file, 100, 7900)));
  }
  SECTION("by truncate") {
    REQUIRE(set_size(*m.fs, file, 8192).ok());
    CHECK(all_zero(read_text(*m.fs, file, 100, 8092)));
  }
  SECTION("by fallocate") {
    REQUIRE(m->fallocate(file, 0, 0, 8192).ok());
    CHECK(attr_of(*m.fs, file).size == 8192);
    CHECK(all_zero(read_text(*m.fs, file, 100, 8092)));
  }
  SECTION("by fallocate ZERO_RANGE past the end") {
    REQUIRE(m->fallocate(file, FALLOC_FL_ZERO_RANGE, 4000, 1000).ok());
    CHECK(attr_of(*m.fs, file).size == 5000);
    CHECK(all_zero(read_text(*m.fs, file, 100, 4900)));
  }
}

TEST_CASE("growing a large file zeroes the gap inside its chunks", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, std::string(4 * kMiB, '\xbb'));
  REQUIRE(set_size(*m.fs, file, kMiB).ok());
  write_text(*m.fs, file, 3 * kMiB, "end");
  CHECK(read_text(*m.fs, file, kMiB - 1, 1) == "\xbb");
  CHECK(all_zero(read_text(*m.fs, file, kMiB, 2 * kMiB)));
  CHECK(read_text(*m.fs, file, 3 * kMiB, 10) == "end");
}

TEST_CASE("truncate shrinks and grows files and gives space back", "[core]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  Ino file = create(*m.fs, kRootIno, "f");
  const std::string data = pattern(40000, 9);
  write_text(*m.fs, file, 0, data);
  const uint64_t full = free_blocks(*m.fs);
  CHECK(full < empty);
  auto shrunk = set_size(*m.fs, file, 5000);
  REQUIRE(shrunk.ok());
  CHECK(shrunk->size == 5000);
  CHECK(shrunk->blocks == 2 * kSectorsPerBlock);  // two 4 KiB blocks left
  CHECK(free_blocks(*m.fs) == full + 8);          // ten blocks were used
  CHECK(read_all(*m.fs, file) == data.substr(0, 5000));
  REQUIRE(set_size(*m.fs, file, 30000).ok());
  std::string grown = read_all(*m.fs, file);
  CHECK(grown.size() == 30000);
  CHECK(grown.substr(0, 5000) == data.substr(0, 5000));
  CHECK(all_zero(grown.substr(5000)));
  REQUIRE(set_size(*m.fs, file, 0).ok());
  CHECK(attr_of(*m.fs, file).blocks == 0);
  CHECK(read_all(*m.fs, file).empty());
  REQUIRE(m->unlink(kRootIno, "f").ok());
  CHECK(free_blocks(*m.fs) == empty);
}

TEST_CASE("growing an empty file to 4 MiB allocates whole chunks", "[core]") {
  Mounted m;
  const uint64_t before = free_blocks(*m.fs);
  Ino file = create(*m.fs, kRootIno, "f");
  auto grown = set_size(*m.fs, file, 4 * kMiB);
  REQUIRE(grown.ok());
  CHECK(grown->size == 4 * kMiB);
  CHECK(grown->blocks == 4 * kMiB / 512);
  auto extents = m->extents(file);
  REQUIRE(extents.ok());
  REQUIRE_FALSE(extents->empty());
  uint64_t next_file_block = 0;
  for (const format::Extent& extent : extents.value()) {
    CHECK(extent.file_block == next_file_block);
    CHECK(extent.region_block % format::kBlocksPerChunk == 0);
    CHECK(extent.block_count % format::kBlocksPerChunk == 0);
    next_file_block += extent.block_count;
  }
  CHECK(next_file_block == 4 * kMiB / kBlockSize);
  CHECK(free_blocks(*m.fs) == before - 4 * kMiB / kBlockSize);
  CHECK(all_zero(read_all(*m.fs, file)));
}

TEST_CASE("truncating an empty file past the free space leaves it sparse", "[core]") {
  Mounted m;
  const uint64_t before = free_blocks(*m.fs);
  Ino file = create(*m.fs, kRootIno, "f");
  auto grown = set_size(*m.fs, file, kGiB);
  REQUIRE(grown.ok());
  CHECK(grown->size == kGiB);
  CHECK(grown->blocks == 0);
  CHECK(free_blocks(*m.fs) == before);
  CHECK(m->extents(file)->empty());
  CHECK(all_zero(read_text(*m.fs, file, kGiB - 4096, 8192)));
  // The space is all there for the next file.
  Ino other = create(*m.fs, kRootIno, "g");
  REQUIRE(set_size(*m.fs, other, 8 * kMiB).ok());
  CHECK(attr_of(*m.fs, other).blocks == 8 * kMiB / 512);
}

TEST_CASE("files reach the largest file size and no further", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, format::kMaxFileBytes - 3, "end");
  CHECK(attr_of(*m.fs, file).size == format::kMaxFileBytes);
  CHECK(read_text(*m.fs, file, format::kMaxFileBytes - 3, 10) == "end");
  CHECK(code_of(m->write(file, format::kMaxFileBytes - 1, bytes_of("xy"))) == EFBIG);
  CHECK(code_of(m->write(file, UINT64_MAX - 1, bytes_of("xy"))) == EFBIG);
  CHECK(code_of(set_size(*m.fs, file, format::kMaxFileBytes + 1)) == EFBIG);
  m.close_and_remount();
  CHECK(read_text(*m.fs, file, format::kMaxFileBytes - 3, 10) == "end");
}

TEST_CASE("an allocation too large for one transaction fails with ENOSPC or stays sparse", "[core]") {
  // With the smallest journal, one transaction can log about 109 chunk-map
  // blocks; a run starting on a map-block boundary that fills 107 of them
  // leaves room for exactly two more, and the next run must not come out
  // as an allocation of zero chunks (EINVAL).
  SparseMemory memory(uint64_t{1} << 40);
  if (memory.base == nullptr) {
    WARN("cannot map 1 TiB of address space; skipped");
    return;
  }
  testing::MemoryView backing(memory.base, memory.size);
  core::FormatOptions options = default_format();
  options.layout.inode_count = 1024;
  options.layout.journal_bytes = format::kMinJournalBytes;
  auto layout = core::format_region(backing, options);
  REQUIRE(layout.ok());
  REQUIRE(layout->metadata_chunks == 1);
  // Nothing here may write file data (every chunk is known zero, and no
  // small file is made): fence the data chunks off, so a change that
  // zeroed them fails here instead of filling the machine's memory.
  REQUIRE(::mprotect(memory.base + kChunkSize, (layout->chunk_count - 2) * kChunkSize, PROT_NONE) == 0);
  auto opened = Filesystem::open(std::make_unique<testing::MemoryView>(memory.base, memory.size));
  REQUIRE(opened.ok());
  Filesystem& fs = *opened.value();
  // Fill the data area up to the second chunk-map block.
  Ino pad = create(fs, kRootIno, "pad");
  REQUIRE(fs.fallocate(pad, 0, 0, (format::kChunksPerMapBlock - 1) * kChunkSize).ok());
  const uint64_t before = free_blocks(fs);
  const uint64_t huge = 440000 * kChunkSize;  // more than 107 map blocks' worth
  Ino file = create(fs, kRootIno, "f");
  // Each section starts from the same fresh state. (An aborted allocation
  // leaves the chunks it took dirty, and allocating dirty chunks zeroes
  // them: never follow one huge allocation with another here.)
  SECTION("fallocate") {
    auto allocated = fs.fallocate(file, 0, 0, huge);
    if (!allocated) {
      CHECK(allocated.error().code() == ENOSPC);
      CHECK(attr_of(fs, file).size == 0);
      CHECK(free_blocks(fs) == before);
    }
  }
  SECTION("truncate of an empty file (guest RAM)") {
    auto truncated = set_size(fs, file, huge);  // allocated whole, or sparse
    if (!truncated) FAIL_CHECK("truncate failed: " << truncated.error().message());
    CHECK(attr_of(fs, file).size == huge);
  }
}

TEST_CASE("files with many extents keep them in extent blocks", "[core]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  Ino file = create(*m.fs, kRootIno, "f");
  for (uint64_t i = 0; i < 20; ++i)
    write_text(*m.fs, file, 2 * i * kBlockSize, pattern(kBlockSize, static_cast<uint32_t>(i)));
  auto extents = m->extents(file);
  REQUIRE(extents.ok());
  CHECK(extents->size() == 20);
  CHECK(attr_of(*m.fs, file).blocks == (20 + 1) * kSectorsPerBlock);  // and one extent block
  m.close_and_remount();
  for (uint64_t i = 0; i < 20; ++i) {
    CHECK(read_text(*m.fs, file, 2 * i * kBlockSize, kBlockSize) ==
          pattern(kBlockSize, static_cast<uint32_t>(i)));
    CHECK(all_zero(read_text(*m.fs, file, (2 * i + 1) * kBlockSize, i < 19 ? kBlockSize : 0)));
  }
  REQUIRE(set_size(*m.fs, file, 3 * kBlockSize).ok());
  CHECK(m->extents(file)->size() == 2);
  CHECK(attr_of(*m.fs, file).blocks == 2 * kSectorsPerBlock);
  REQUIRE(m->unlink(kRootIno, "f").ok());
  CHECK(free_blocks(*m.fs) == empty);
}

// ---------------------------------------------------------------------------
// fallocate.

TEST_CASE("fallocate allocates and grows the size unless told to keep it", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  REQUIRE(m->fallocate(file, 0, 0, 100000).ok());
  Attr attr = attr_of(*m.fs, file);
  CHECK(attr.size == 100000);
  CHECK(attr.blocks >= 100000 / 512);
  CHECK(all_zero(read_all(*m.fs, file)));

  Ino kept = create(*m.fs, kRootIno, "k");
  const uint64_t before = free_blocks(*m.fs);
  REQUIRE(m->fallocate(kept, FALLOC_FL_KEEP_SIZE, 0, 65536).ok());
  attr = attr_of(*m.fs, kept);
  CHECK(attr.size == 0);
  CHECK(attr.blocks == 65536 / 512);
  CHECK(free_blocks(*m.fs) < before);
  CHECK(read_all(*m.fs, kept).empty());
  // Writing into preallocated space allocates nothing more.
  const uint64_t after = free_blocks(*m.fs);
  write_text(*m.fs, kept, 1000, "inside");
  CHECK(free_blocks(*m.fs) == after);
  CHECK(attr_of(*m.fs, kept).size == 1006);
}

TEST_CASE("fallocate PUNCH_HOLE zeroes the range and frees whole blocks", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  const std::string data = pattern(16 * kBlockSize, 4);
  write_text(*m.fs, file, 0, data);
  const uint64_t before = free_blocks(*m.fs);
  REQUIRE(
      m->fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * kBlockSize, 4 * kBlockSize).ok());
  CHECK(free_blocks(*m.fs) == before + 4);
  Attr attr = attr_of(*m.fs, file);
  CHECK(attr.size == 16 * kBlockSize);
  CHECK(attr.blocks == 12 * kSectorsPerBlock);
  std::string back = read_all(*m.fs, file);
  CHECK(back.substr(0, 2 * kBlockSize) == data.substr(0, 2 * kBlockSize));
  CHECK(all_zero(back.substr(2 * kBlockSize, 4 * kBlockSize)));
  CHECK(back.substr(6 * kBlockSize) == data.substr(6 * kBlockSize));

  // A range inside one block zeroes bytes and frees nothing.
  REQUIRE(m->fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * kBlockSize + 100, 1000).ok());
  CHECK(free_blocks(*m.fs) == before + 4);
  back = read_all(*m.fs, file);
  CHECK(all_zero(back.substr(8 * kBlockSize + 100, 1000)));
  CHECK(back.substr(8 * kBlockSize, 100) == data.substr(8 * kBlockSize, 100));
  CHECK(back.substr(8 * kBlockSize + 1100) == data.substr(8 * kBlockSize + 1100));
  m.close_and_remount();
  CHECK(read_all(*m.fs, file) == back);
}

TEST_CASE("fallocate PUNCH_HOLE frees whole chunks of a large file", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, std::string(6 * kMiB, '\x11'));
  const uint64_t before = free_blocks(*m.fs);
  REQUIRE(m->fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kMiB, 4 * kMiB).ok());
  CHECK(free_blocks(*m.fs) == before + kChunkSize / kBlockSize);  // only [2 MiB, 4 MiB) is whole
  std::string back = read_all(*m.fs, file);
  CHECK(back.size() == 6 * kMiB);
  CHECK(back.substr(0, kMiB) == std::string(kMiB, '\x11'));
  CHECK(all_zero(back.substr(kMiB, 4 * kMiB)));
  CHECK(back.substr(5 * kMiB) == std::string(kMiB, '\x11'));
}

TEST_CASE("fallocate ZERO_RANGE zeroes and keeps the blocks", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  const std::string data = pattern(8 * kBlockSize, 5);
  write_text(*m.fs, file, 0, data);
  const Attr before = attr_of(*m.fs, file);
  REQUIRE(m->fallocate(file, FALLOC_FL_ZERO_RANGE, 1000, 3 * kBlockSize).ok());
  Attr after = attr_of(*m.fs, file);
  CHECK(after.size == before.size);
  CHECK(after.blocks == before.blocks);
  std::string back = read_all(*m.fs, file);
  CHECK(back.substr(0, 1000) == data.substr(0, 1000));
  CHECK(all_zero(back.substr(1000, 3 * kBlockSize)));
  CHECK(back.substr(1000 + 3 * kBlockSize) == data.substr(1000 + 3 * kBlockSize));
  // Past the end it grows the file, unless KEEP_SIZE.
  REQUIRE(m->fallocate(file, FALLOC_FL_ZERO_RANGE, 8 * kBlockSize, kBlockSize).ok());
  CHECK(attr_of(*m.fs, file).size == 9 * kBlockSize);
  REQUIRE(m->fallocate(file, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 9 * kBlockSize, kBlockSize).ok());
  CHECK(attr_of(*m.fs, file).size == 9 * kBlockSize);
  CHECK(attr_of(*m.fs, file).blocks == 10 * kSectorsPerBlock);
}

TEST_CASE("fallocate refuses unsupported modes with EOPNOTSUPP", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, pattern(3 * kBlockSize, 1));
  for (int mode :
       {FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE,
        FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0x400}) {
    CAPTURE(mode);
    CHECK(code_of(m->fallocate(file, mode, 0, kBlockSize)) == EOPNOTSUPP);
  }
  CHECK(code_of(m->fallocate(file, 0, 0, 0)) == EINVAL);
  CHECK(code_of(m->fallocate(file, 0, format::kMaxFileBytes, 1)) == EFBIG);
  auto link = m->symlink(kRootIno, "l", "f", kRoot);
  REQUIRE(link.ok());
  CHECK(code_of(m->fallocate(link->ino, 0, 0, kBlockSize)) == ENODEV);
  CHECK(read_all(*m.fs, file) == pattern(3 * kBlockSize, 1));
}

TEST_CASE("a 1 GiB fallocate on a large region is 1 GiB aligned", "[core]") {
  Mounted m(3 * kGiB);
  Ino file = create(*m.fs, kRootIno, "vm-ram");
  REQUIRE(m->fallocate(file, 0, 0, kGiB).ok());
  auto extents = m->extents(file);
  REQUIRE(extents.ok());
  REQUIRE(extents->size() == 1);
  const format::Extent& extent = extents->front();
  CHECK(extent.file_block == 0);
  CHECK(extent.block_count == kGiB / kBlockSize);
  CHECK((uint64_t{extent.region_block} * kBlockSize) % kGiB == 0);
  CHECK(attr_of(*m.fs, file).size == kGiB);
}

// ---------------------------------------------------------------------------
// Extended attributes.

TEST_CASE("xattrs can be set, read, listed and removed", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  const uint64_t blocks = attr_of(*m.fs, file).blocks;
  REQUIRE(m->setxattr(file, "user.a", "1", 0).ok());
  CHECK(attr_of(*m.fs, file).blocks == blocks + kSectorsPerBlock);
  REQUIRE(m->setxattr(file, "user.b", "twenty-two", 0).ok());
  REQUIRE(m->setxattr(file, "user.empty", "", 0).ok());
  CHECK(m->getxattr(file, "user.a").value() == "1");
  CHECK(m->getxattr(file, "user.b").value() == "twenty-two");
  CHECK(m->getxattr(file, "user.empty").value().empty());
  auto names = m->listxattr(file);
  REQUIRE(names.ok());
  std::vector<std::string> sorted = names.value();
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::string>{"user.a", "user.b", "user.empty"});
  REQUIRE(m->setxattr(file, "user.a", "replaced", 0).ok());
  CHECK(m->getxattr(file, "user.a").value() == "replaced");
  REQUIRE(m->removexattr(file, "user.a").ok());
  CHECK(code_of(m->getxattr(file, "user.a")) == ENODATA);
  REQUIRE(m->removexattr(file, "user.b").ok());
  REQUIRE(m->removexattr(file, "user.empty").ok());
  CHECK(m->listxattr(file)->empty());
  CHECK(attr_of(*m.fs, file).blocks == blocks);

  // Directories have them too, and they persist.
  Ino dir = make_dir(*m.fs, kRootIno, "d");
  REQUIRE(m->setxattr(dir, "trusted.x", std::string("\0bin\xff", 5), 0).ok());
  m.close_and_remount();
  CHECK(m->getxattr(dir, "trusted.x").value() == std::string("\0bin\xff", 5));
}

TEST_CASE("xattr create and replace flags are enforced", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  CHECK(code_of(m->setxattr(file, "user.a", "v", XATTR_REPLACE)) == ENODATA);
  REQUIRE(m->setxattr(file, "user.a", "v", XATTR_CREATE).ok());
  CHECK(code_of(m->setxattr(file, "user.a", "w", XATTR_CREATE)) == EEXIST);
  REQUIRE(m->setxattr(file, "user.a", "w", XATTR_REPLACE).ok());
  CHECK(m->getxattr(file, "user.a").value() == "w");
  CHECK(code_of(m->removexattr(file, "user.none")) == ENODATA);
  CHECK(code_of(m->getxattr(file, "user.none")) == ENODATA);
  CHECK(code_of(m->setxattr(file, "user.a", "x", 0x100)) == EINVAL);
}

TEST_CASE("xattrs too large fail with E2BIG or ENOSPC", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  CHECK(code_of(m->setxattr(file, "user.big", std::string(format::kXattrPayloadBytes + 1, 'v'), 0)) == E2BIG);
  CHECK(code_of(m->setxattr(file, "", "v", 0)) == ERANGE);
  CHECK(code_of(m->setxattr(file, std::string(256, 'n'), "v", 0)) == ERANGE);
  CHECK(code_of(m->getxattr(file, std::string(256, 'n'))) == ERANGE);
  // The largest value that fits with a one-byte name fills the block exactly.
  const size_t largest = format::kXattrPayloadBytes - sizeof(format::XattrEntryHeader) - 1;
  REQUIRE(m->setxattr(file, "a", std::string(largest, 'v'), 0).ok());
  CHECK(code_of(m->setxattr(file, "b", "", 0)) == ENOSPC);
  REQUIRE(m->removexattr(file, "a").ok());
  for (int i = 0; i < 4; ++i)
    REQUIRE(m->setxattr(file, "user." + std::to_string(i), std::string(1000, 'x'), 0).ok());
  CHECK(code_of(m->setxattr(file, "user.4", std::string(1000, 'x'), 0)) == ENOSPC);
  CHECK(m->listxattr(file)->size() == 4);
  CHECK(m->getxattr(file, "user.3").value() == std::string(1000, 'x'));
}

// ---------------------------------------------------------------------------
// setattr.

TEST_CASE("setattr changes mode and owner as asked", "[core]") {
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

TEST_CASE("setattr sets times to values or to now", "[core]") {
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

TEST_CASE("a write leaves set-user-ID to the kernel", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f", 06755);
  write_text(*m.fs, file, 0, "x");
  CHECK(attr_of(*m.fs, file).mode == (S_IFREG | 06755));
}

// ---------------------------------------------------------------------------
// Space and inode accounting.

TEST_CASE("statfs reports the layout's space and inodes", "[core]") {
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

TEST_CASE("filling the region fails with ENOSPC and deleting makes room again", "[core]") {
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

TEST_CASE("running out of inodes fails with ENOSPC", "[core]") {
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

TEST_CASE("running out of directory entries fails with ENOSPC", "[core]") {
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

TEST_CASE("a reused inode slot gets a new generation", "[core]") {
  Mounted m;
  auto first = m->mknod(kRootIno, "a", S_IFREG | 0644, 0, kRoot);
  REQUIRE(first.ok());
  REQUIRE(m->unlink(kRootIno, "a").ok());
  auto second = m->mknod(kRootIno, "b", S_IFREG | 0644, 0, kRoot);
  REQUIRE(second.ok());
  CHECK(second->ino == first->ino);
  CHECK(second->generation == first->generation + 1);
}

TEST_CASE("an unlinked open file lives until its release", "[core]") {
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

TEST_CASE("an unlinked open file cannot be linked again", "[core]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  REQUIRE(m->open_file(file).ok());
  REQUIRE(m->unlink(kRootIno, "f").ok());
  CHECK(code_of(m->link(file, kRootDir, "back")) == ENOENT);
  REQUIRE(m->release_file(file).ok());
}

TEST_CASE("renaming over an open file keeps it until its release", "[core]") {
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

// ---------------------------------------------------------------------------
// Persistence, crashes and read-only opens.

TEST_CASE("everything survives close and reopen of the same memory", "[core]") {
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

TEST_CASE("close marks the region clean and a second close fails with EIO", "[core]") {
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

TEST_CASE("a filesystem dropped without close reopens unclean with everything committed", "[core]") {
  Mounted m;
  populate(*m.fs);
  const auto before = describe(*m.fs);
  m.crash_and_remount();
  CHECK_FALSE(m->open_report().was_clean);
  CHECK(m->open_report().recovered_sequence == 0);
  CHECK(describe(*m.fs) == before);
}

TEST_CASE("an interrupted transaction is rolled back at the next open", "[core]") {
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

TEST_CASE("an unlinked file still open at a crash is reclaimed at the next open", "[core]") {
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

TEST_CASE("a read-only open refuses every change with EROFS", "[core]") {
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

TEST_CASE("a read-only open of a region needing recovery fails with EROFS", "[core]") {
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

TEST_CASE("feature bits decide how a region may be opened", "[core]") {
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

TEST_CASE("a region with recorded errors opens only when told to ignore them", "[core]") {
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

TEST_CASE("a region whose backing grew after mkfs still opens", "[core]") {
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

TEST_CASE("a damaged backup superblock fails open with EUCLEAN", "[core]") {
  Mounted m;
  REQUIRE(m->close().ok());
  m.fs.reset();
  m.memory->base()[m.layout.backup_offset + 0x90] ^= std::byte{1};
  auto opened = m.try_mount();
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EUCLEAN);
  CHECK(opened.error().message().find("backup") != std::string::npos);
}

TEST_CASE("mount and close keep the backup superblock equal to the primary", "[core]") {
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

TEST_CASE("a damaged primary superblock fails open with EUCLEAN", "[core]") {
  Mounted m;
  REQUIRE(m->close().ok());
  m.fs.reset();
  m.memory->base()[0x90] ^= std::byte{1};  // chunk_count, checksum now wrong
  auto opened = m.try_mount();
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EUCLEAN);
}

TEST_CASE("opening memory without pkfs fails with ENODATA", "[core]") {
  region::MemoryRegion memory(kRegionBytes);
  auto opened = Filesystem::open(testing::MemoryView::of(memory));
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == ENODATA);
}
