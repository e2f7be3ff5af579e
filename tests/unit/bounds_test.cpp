// tests/unit/bounds_test.cpp: damaged regions cost bounded work. Counted and
// chained structures read from the region (an inode's extent_count and its
// extent chain, xattr and extent block offsets, directory entries) are
// bounded by what the region can hold and checked as they are walked, so a
// damaged or hostile region fails with EUCLEAN at once instead of looping,
// allocating without bound or reading outside the region. Damage is made
// the way a process with write access to the shared region could: bytes
// changed, checksums resealed; before the mount or while it is open.
#include <linux/falloc.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "fs/region/region.h"
#include "support/memory_view.h"
#include "support/result_checks.h"

namespace {

using namespace pkfs;
using core::Filesystem;
using core::Ino;
using format::ExtentBlock;
using format::Inode;
using format::kBlockSize;
using format::kRootIno;
using pkfs::test::code_of;
using pkfs::test::message_of;

constexpr uint64_t kMiB = uint64_t{1} << 20;
// What "promptly" means here: the old code took minutes, or ran out of
// memory, on the same regions.
constexpr auto kPromptly = std::chrono::seconds(5);

struct Region {
  std::unique_ptr<region::MemoryRegion> memory;
  std::unique_ptr<Filesystem> fs;

  explicit Region(uint64_t bytes = 64 * kMiB) {
    memory = std::make_unique<region::MemoryRegion>(bytes);
    core::FormatOptions options;
    options.data_known_zero = true;
    REQUIRE_OK(core::format_region(*memory, options));
    mount();
  }
  Result<std::unique_ptr<Filesystem>> try_mount(const core::OpenOptions& options = {}) const {
    return Filesystem::open(testing::MemoryView::of(*memory), options);
  }
  void mount() {
    auto opened = try_mount();
    if (!opened) FAIL("open failed: " << opened.error().message());
    fs = std::move(opened).value();
  }
  void unmount() {
    REQUIRE_OK(fs->close());
    fs.reset();
  }
  format::Superblock superblock() const {
    format::Superblock sb;
    std::memcpy(&sb, memory->base(), sizeof sb);
    return sb;
  }
  format::Layout layout() const {
    auto layout = format::layout_from_superblock(superblock(), memory->size());
    REQUIRE_OK(layout);
    return layout.value();
  }
  // Typed access to region bytes, and a write that reseals the checksum as
  // a hostile writer would.
  template <typename T>
  T get(uint64_t offset) const {
    T value;
    std::memcpy(&value, memory->base() + offset, sizeof value);
    return value;
  }
  template <typename T>
  void put_sealed(uint64_t offset, T value) {
    format::seal(value);
    std::memcpy(memory->base() + offset, &value, sizeof value);
  }
  uint64_t inode_offset(Ino ino) const { return superblock().inode_table_offset + ino * sizeof(Inode); }
  Inode inode(Ino ino) const { return get<Inode>(inode_offset(ino)); }
  void put_inode(const Inode& inode) { put_sealed(inode_offset(inode.ino), inode); }
};

// A regular file of `count` extents: its first block written, then one
// 4 KiB block allocated every other block past its size (KEEP_SIZE, so the
// file stays small and gets 4 KiB blocks, not whole chunks), so no two
// extents merge.
Ino fragmented_file(Filesystem& fs, std::string_view name, uint32_t count) {
  auto attr = fs.mknod(kRootIno, name, S_IFREG | 0644, 0, {});
  REQUIRE_OK(attr);
  std::vector<std::byte> block(kBlockSize, std::byte{0x5a});
  REQUIRE_OK(fs.write(attr->ino, 0, block));
  for (uint32_t i = 1; i < count; ++i)
    REQUIRE_OK(fs.fallocate(attr->ino, FALLOC_FL_KEEP_SIZE, uint64_t{2} * i * kBlockSize, kBlockSize));
  auto extents = fs.extents(attr->ino);
  REQUIRE_OK(extents);
  REQUIRE(extents->size() == count);
  return attr->ino;
}

Result<size_t> read_some(Filesystem& fs, Ino ino) {
  std::vector<std::byte> out(size_t{64} * 1024);
  return fs.read(ino, 0, out);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---------------------------------------------------------------------------
// Extent lists.

TEST_CASE("an extent chain that points back to itself with a huge extent_count fails at once", "[bounds]") {
  // Old code: load_extents walked the loop until it had read extent_count
  // (4 Gi) extents, growing a 64 GiB vector: out of memory, or minutes.
  Region r;
  Ino file = fragmented_file(*r.fs, "f", 300);
  Inode inode = r.inode(file);
  REQUIRE(inode.extent_block != 0);
  auto block = r.get<ExtentBlock>(inode.extent_block);
  block.next = inode.extent_block;
  r.put_sealed(inode.extent_block, block);
  inode.extent_count = UINT32_MAX;
  r.put_inode(inode);  // under the open filesystem: what a hostile writer does

  auto start = std::chrono::steady_clock::now();
  auto read = read_some(*r.fs, file);
  CHECK(seconds_since(start) < kPromptly.count());
  CHECK(code_of(read) == EUCLEAN);
  CHECK_THAT(message_of(read), Catch::Contains("extent_count"));
  CHECK(code_of(r.fs->extents(file)) == EUCLEAN);
  r.fs.reset();

  // The next mount refuses the inode (one comparison per inode), and fsck
  // reports it without walking the loop more than once. (The failed read
  // recorded an error in the superblock; past that, as fsck opens.)
  start = std::chrono::steady_clock::now();
  core::OpenOptions past_error;
  past_error.ignore_error_state = true;
  auto opened = r.try_mount(past_error);
  CHECK(seconds_since(start) < kPromptly.count());
  REQUIRE(code_of(opened) == EUCLEAN);
  CHECK_THAT(message_of(opened), Catch::Contains("extent_count"));
  start = std::chrono::steady_clock::now();
  auto report = fsck::check_region(*testing::MemoryView::of(*r.memory, true));
  CHECK(seconds_since(start) < kPromptly.count());
  REQUIRE_OK(report);
  CHECK_FALSE(report->clean());
}

TEST_CASE("an extent chain that loops within a plausible extent_count fails at its first repeat",
          "[bounds]") {
  // The count the region could hold passes the mount's bound; the walk
  // itself must notice the loop. Old code walked extent_count / 254 blocks
  // before it noticed (EUCLEAN "more extents than extent_count").
  Region r;
  Ino file = fragmented_file(*r.fs, "f", 300);
  r.unmount();
  Inode inode = r.inode(file);
  auto block = r.get<ExtentBlock>(inode.extent_block);
  REQUIRE(block.count == format::kExtentsPerBlock);
  block.next = inode.extent_block;
  r.put_sealed(inode.extent_block, block);
  inode.extent_count = static_cast<uint32_t>(format::max_extent_count(r.layout()));
  r.put_inode(inode);
  r.mount();  // mount reads no chain
  auto start = std::chrono::steady_clock::now();
  auto read = read_some(*r.fs, file);
  CHECK(seconds_since(start) < kPromptly.count());
  CHECK(code_of(read) == EUCLEAN);
  CHECK_THAT(message_of(read), Catch::Contains("out of order"));
}

TEST_CASE("an extent_count one past what the region holds is refused and one at it is walked", "[bounds]") {
  Region r;
  Ino file = fragmented_file(*r.fs, "f", 20);
  r.unmount();
  const uint64_t max = format::max_extent_count(r.layout());
  Inode inode = r.inode(file);
  inode.extent_count = static_cast<uint32_t>(max + 1);
  r.put_inode(inode);
  auto opened = r.try_mount();
  REQUIRE(code_of(opened) == EUCLEAN);
  CHECK_THAT(message_of(opened), Catch::Contains("inode " + std::to_string(file)));
  // At the bound the mount passes; the chain (too short for it) fails on read.
  inode.extent_count = static_cast<uint32_t>(max);
  r.put_inode(inode);
  r.mount();
  CHECK(code_of(read_some(*r.fs, file)) == EUCLEAN);
}

TEST_CASE("an extent list out of order or overlapping or with an empty extent is EUCLEAN", "[bounds]") {
  // Old code checked these too, after the whole chain was read.
  Region r;
  Ino file = fragmented_file(*r.fs, "f", 5);
  const Inode good = r.inode(file);
  SECTION("out of order") {
    Inode inode = good;
    std::swap(inode.extents[1], inode.extents[3]);
    r.put_inode(inode);
  }
  SECTION("overlapping") {
    Inode inode = good;
    inode.extents[2].file_block = inode.extents[1].file_block;
    r.put_inode(inode);
  }
  SECTION("repeated") {
    Inode inode = good;
    inode.extents[4] = inode.extents[3];
    r.put_inode(inode);
  }
  SECTION("empty") {
    Inode inode = good;
    inode.extents[2].block_count = 0;
    r.put_inode(inode);
  }
  CHECK(code_of(read_some(*r.fs, file)) == EUCLEAN);
}

TEST_CASE("an extent chain block that is short or does not end the chain is EUCLEAN", "[bounds]") {
  // The writer fills every chain block but the last, and the last has no
  // next: the walk needs exactly ceil((extent_count - 7) / 254) blocks.
  Region r;
  Ino file = fragmented_file(*r.fs, "f", 300);
  Inode inode = r.inode(file);
  auto first = r.get<ExtentBlock>(inode.extent_block);
  REQUIRE(first.next != 0);
  SECTION("a block before the last holds fewer than 254 extents") {
    first.count = 100;
    r.put_sealed(inode.extent_block, first);
  }
  SECTION("the last block points on") {
    auto last = r.get<ExtentBlock>(first.next);
    REQUIRE(last.next == 0);
    last.next = inode.extent_block;
    r.put_sealed(first.next, last);
  }
  CHECK(code_of(read_some(*r.fs, file)) == EUCLEAN);
}

TEST_CASE("an extent or xattr block offset past 16 TiB fails with EUCLEAN and no wild read", "[bounds]") {
  // Old code truncated offset / 4096 to 32 bits before the data-area check,
  // so (2^32 + b) * 4096 passed as block b and was read at its real offset,
  // far outside the region: SIGSEGV.
  Region r;
  Ino file = fragmented_file(*r.fs, "f", 10);
  REQUIRE_OK(r.fs->setxattr(file, "user.a", "value", 0));
  Inode inode = r.inode(file);
  const uint64_t past = (uint64_t{1} << 32) * kBlockSize;
  SECTION("extent block") {
    inode.extent_block += past;
    r.put_inode(inode);
    CHECK(code_of(read_some(*r.fs, file)) == EUCLEAN);
  }
  SECTION("xattr block") {
    inode.xattr_block += past;
    r.put_inode(inode);
    CHECK(code_of(r.fs->getxattr(file, "user.a")) == EUCLEAN);
    CHECK(code_of(r.fs->listxattr(file)) == EUCLEAN);
  }
}

// ---------------------------------------------------------------------------
// Directory entries: the inode an entry names comes from the index built at
// mount, never again from the region.

TEST_CASE("a directory entry changed under the mount cannot send lookup or unlink outside the region",
          "[bounds]") {
  // Old code read the entry's ino from the region and indexed the inode
  // table with it: an ino of 2^40 read far outside the region (SIGSEGV).
  Region r;
  auto attr = r.fs->mknod(kRootIno, "f", S_IFREG | 0644, 0, {});
  REQUIRE_OK(attr);
  const auto sb = r.superblock();
  uint64_t offset = 0;
  for (uint64_t slot = 0; slot < sb.dirent_high_water; ++slot) {
    uint64_t at = sb.dirent_table_offset + slot * sizeof(format::Dirent);
    auto dirent = r.get<format::Dirent>(at);
    if (dirent.tag == format::kDirentTag && format::dirent_name(dirent) == "f") offset = at;
  }
  REQUIRE(offset != 0);
  auto dirent = r.get<format::Dirent>(offset);
  dirent.ino = uint64_t{1} << 40;
  r.put_sealed(offset, dirent);
  auto found = r.fs->lookup(kRootIno, "f");
  REQUIRE_OK(found);
  CHECK(found->ino == attr->ino);
  REQUIRE_OK(r.fs->unlink(kRootIno, "f"));
  CHECK(code_of(r.fs->getattr(attr->ino)) == ENOENT);
}

}  // namespace
