// tests/unit/check_test.cpp: behaviour of core::check_region, and of mount
// and lazy readers on damaged regions.
//
// A region is formatted, populated through core::Filesystem and closed; its
// bytes are then copied, damaged (a flipped byte, LevelDB SetByte style, or a
// resealed struct that passes its checksum but breaks an invariant) and
// handed to check_region, and to Filesystem::open, which must refuse eagerly
// read structures with EUCLEAN and a message naming the structure and
// fsck.pkfs. Lazily read structures (extent and xattr blocks) must make the
// operation that reads them fail with EUCLEAN instead.
#include "fs/core/check.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/journal/journal.h"
#include "fs/region/region.h"
#include "support/data_pattern.h"
#include "support/test_region.h"

namespace {

using namespace pkfs;
using namespace pkfs::test;
using Catch::Matchers::Contains;
using core::Filesystem;
using core::Ino;
using format::Dirent;
using format::Inode;

constexpr uint64_t kRegionBytes = uint64_t{64} << 20;
constexpr uint64_t kBlock = format::kBlockSize;

// ---------------------------------------------------------------------------
// Helpers.

bool has_code(const core::CheckReport& report, const std::string& code) {
  for (const auto& problem : report.problems) {
    if (problem.code == code) return true;
  }
  return false;
}

std::string describe(const core::CheckReport& report) {
  std::string text = std::to_string(report.problems.size()) + " problems";
  for (const auto& problem : report.problems) text += "\n  " + problem.code + ": " + problem.message;
  return text;
}

core::CheckReport check(Bytes& bytes, const core::CheckOptions& options = {}) {
  BufferRegion region(bytes, true);
  auto report = core::check_region(region, options);
  INFO((report ? std::string() : report.error().message()));
  REQUIRE(report);
  return std::move(report).value();
}

Ino make_file(Filesystem& fs, Ino parent, const std::string& name, uint32_t mode = S_IFREG | 0644) {
  auto attr = fs.mknod(parent, name, mode, 0, {});
  INFO(name << ": " << (attr ? std::string() : attr.error().message()));
  REQUIRE(attr);
  return attr->ino;
}

Ino make_dir(Filesystem& fs, Ino parent, const std::string& name) {
  auto attr = fs.mkdir(parent, name, 0755, {});
  REQUIRE(attr);
  return attr->ino;
}

// A populated region, built once: directories, small and large files, a
// file with more extents than fit inline (so it has an extent block), a
// symlink, a hard link, a FIFO and an xattr block.
struct Populated {
  Bytes image;
  format::Layout layout{};
  Ino docs = 0, readme = 0, many = 0, big = 0, link = 0, fifo = 0, sub = 0;
  uint64_t many_extents = 0;

  uint64_t inode_offset(Ino ino) const { return layout.inode_table_offset + ino * sizeof(Inode); }
  Inode inode(Ino ino) const { return get<Inode>(image, inode_offset(ino)); }
  uint64_t dirent_offset(uint64_t slot) const { return layout.dirent_table_offset + slot * sizeof(Dirent); }
  uint64_t hold_offset(uint64_t slot) const { return layout.hold_table_offset + slot * sizeof(format::Hold); }
  format::Superblock superblock() const { return get<format::Superblock>(image, 0); }

  // The slot of the entry `name` in directory `parent`.
  uint64_t dirent_slot(Ino parent, const std::string& name) const {
    for (uint64_t slot = 0; slot < superblock().dirent_high_water; ++slot) {
      auto dirent = get<Dirent>(image, dirent_offset(slot));
      if (dirent.tag == format::kDirentTag && dirent.parent_ino == parent &&
          format::dirent_name(dirent) == name) {
        return slot;
      }
    }
    FAIL("no entry " << name << " in inode " << parent);
    return 0;
  }

  // The first chunk in state `state`.
  uint64_t chunk_in_state(uint8_t state) const {
    auto map = get<format::ChunkMapBlock>(image, layout.chunk_map_offset);
    for (uint64_t chunk = 0; chunk < layout.chunk_count; ++chunk) {
      if (map.state[chunk] == state) return chunk;
    }
    FAIL("no chunk in state " << int(state));
    return 0;
  }
};

Populated build_populated() {
  Populated p;
  auto memory = std::make_unique<region::MemoryRegion>(kRegionBytes);
  core::FormatOptions options;
  options.data_known_zero = true;
  REQUIRE(core::format_region(*memory, options));
  auto opened = Filesystem::open(std::move(memory));
  REQUIRE(opened);
  Filesystem& fs = *opened.value();
  constexpr Ino root = format::kRootIno;

  p.docs = make_dir(fs, root, "docs");
  p.sub = make_dir(fs, p.docs, "sub");
  p.readme = make_file(fs, p.docs, "readme");
  write_pattern(fs, p.readme, 0, 10000, 1);
  REQUIRE(fs.setxattr(p.readme, "user.color", "blue", 0));
  REQUIRE(fs.setxattr(p.readme, "user.size", "large", 0));
  REQUIRE(fs.link(p.readme, p.sub, "readme-link"));
  // Every other block: each write is its own extent.
  p.many = make_file(fs, root, "many");
  for (uint64_t block = 0; block < 40; block += 2) write_pattern(fs, p.many, block * kBlock, kBlock, 2);
  auto many_extents = fs.extents(p.many);
  REQUIRE(many_extents);
  p.many_extents = many_extents->size();
  REQUIRE(p.many_extents > format::kInlineExtents);
  // Grown from empty past 2 MiB: whole chunks.
  p.big = make_file(fs, root, "big");
  core::SetAttr grow;
  grow.size = 3 << 20;
  REQUIRE(fs.setattr(p.big, grow, {}));
  write_pattern(fs, p.big, 1 << 20, 100000, 3);
  auto link = fs.symlink(root, "link", "docs/readme", {});
  REQUIRE(link);
  p.link = link->ino;
  p.fifo = make_file(fs, p.sub, "fifo", S_IFIFO | 0600);
  REQUIRE(fs.close());
  p.image = snapshot(fs.region());
  auto layout = format::layout_from_superblock(p.superblock(), p.image.size());
  REQUIRE(layout);
  p.layout = layout.value();
  return p;
}

const Populated& populated() {
  static const Populated p = build_populated();
  return p;
}

// A valid hold on `ino`, as a direct-mapping client would write it.
format::Hold make_hold(const Populated& p, Ino ino) {
  format::Hold hold{};
  hold.tag = format::kHoldTag;
  hold.version = 1;
  hold.ino = ino;
  hold.generation = p.inode(ino).generation;
  hold.pid = 4242;
  hold.uid = 0;
  hold.start_ticks = 12345;
  hold.boot_id[0] = 0x5a;
  format::seal(hold);
  return hold;
}

// ---------------------------------------------------------------------------
// Clean regions.

TEST_CASE("a freshly formatted region is clean", "[check]") {
  region::MemoryRegion memory(kRegionBytes);
  core::FormatOptions options;
  options.data_known_zero = true;
  REQUIRE(core::format_region(memory, options));
  auto report = core::check_region(memory, {.verify_known_zero = true});
  REQUIRE(report);
  INFO(describe(*report));
  CHECK(report->clean());
  CHECK(report->inodes_in_use == 1);
  CHECK(report->dirents_in_use == 0);
  CHECK(report->data_blocks_in_use == 0);
}

TEST_CASE("a populated region is clean and its counts match", "[check]") {
  const Populated& p = populated();
  Bytes image = p.image;
  auto report = check(image, {.verify_known_zero = true});
  INFO(describe(report));
  CHECK(report.clean());
  // root, docs, sub, readme, many, big, link, fifo
  CHECK(report.inodes_in_use == 8);
  // docs, sub, readme, readme-link, many, big, link, fifo
  CHECK(report.dirents_in_use == 8);
  CHECK(report.orphan_inodes == 0);
  // readme 3 + xattr 1; many 20 + 1 extent block; big 2 chunks; link 1.
  CHECK(report.data_blocks_in_use == 3 + 1 + 20 + 1 + 2 * format::kBlocksPerChunk + 1);
}

TEST_CASE("a region checked while mounted is clean", "[check]") {
  const Populated& p = populated();
  auto opened = Filesystem::open(copy_of(p.image));
  REQUIRE(opened);
  auto report = core::check_region(opened.value()->region());
  REQUIRE(report);
  INFO(describe(*report));
  CHECK(report->clean());
}

TEST_CASE("a valid hold on an inode in use is clean", "[check]") {
  const Populated& p = populated();
  Bytes image = p.image;
  put_raw(image, p.hold_offset(7), make_hold(p, p.big));
  auto report = check(image);
  INFO(describe(report));
  CHECK(report.clean());
}

TEST_CASE("a region whose backing grew after mkfs is checked at its own size", "[check]") {
  const Populated& p = populated();
  Bytes grown = p.image;
  grown.resize(grown.size() + 3 * format::kChunkSize + kBlock);
  auto report = check(grown, {.verify_known_zero = true});
  INFO(describe(report));
  CHECK(report.clean());
}

TEST_CASE("a region without a superblock is an error, not a report", "[check]") {
  region::MemoryRegion memory(kRegionBytes);
  auto report = core::check_region(memory);
  REQUIRE_FALSE(report);
  CHECK(report.error().code() == ENODATA);
  region::MemoryRegion tiny(1 << 20);
  CHECK_FALSE(core::check_region(tiny));
}

// ---------------------------------------------------------------------------
// Flipped bytes: check_region reports the structure, mount refuses it.

struct Flip {
  uint64_t offset;   // region offset of the byte
  std::string code;  // problem check_region must report
};

// Flips each byte, expects its code from check_region and EUCLEAN naming
// `structure` and fsck.pkfs from a read-write mount.
void expect_refused_at_mount(const std::vector<Flip>& flips, const std::string& structure) {
  const Populated& p = populated();
  for (const Flip& flip : flips) {
    INFO("flipped byte at region offset " << flip.offset << ", expecting " << flip.code);
    Bytes image = p.image;
    image[flip.offset] ^= std::byte{0x40};
    auto report = check(image);
    INFO(describe(report));
    CHECK(has_code(report, flip.code));
    auto opened = Filesystem::open(view(image));
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == EUCLEAN);
    CHECK_THAT(opened.error().message(), Contains(structure) && Contains("fsck.pkfs"));
  }
}

TEST_CASE("a flipped byte in the primary superblock is reported and refused by mount", "[corruption]") {
  expect_refused_at_mount(
      {{0x38, "SUPERBLOCK_CHECKSUM"}, {0x90, "SUPERBLOCK_CHECKSUM"}, {0x1f8, "SUPERBLOCK_CHECKSUM"}},
      "superblock");
}

TEST_CASE("a flipped byte in the backup superblock is reported and refused by mount", "[corruption]") {
  uint64_t backup = populated().layout.backup_offset;
  expect_refused_at_mount(
      {{backup + 0x38, "BACKUP_SUPERBLOCK_CHECKSUM"}, {backup + 0x1f8, "BACKUP_SUPERBLOCK_CHECKSUM"}},
      "backup superblock");
}

TEST_CASE("a flipped byte in the journal header is reported and refused by mount", "[corruption]") {
  uint64_t journal = populated().layout.journal_offset;
  expect_refused_at_mount({{journal + 0x00, "JOURNAL_TAG"}, {journal + 0x10, "JOURNAL_CHECKSUM"}},
                          "journal header");
}

TEST_CASE("a flipped commit word in the journal header is an open transaction", "[corruption]") {
  uint64_t journal = populated().layout.journal_offset;
  expect_refused_at_mount({{journal + offsetof(format::JournalHeader, open_sequence), "JOURNAL_OPEN"}},
                          "journal header");
}

TEST_CASE("a flipped byte in an inode is reported and refused by mount", "[corruption]") {
  const Populated& p = populated();
  uint64_t inode = p.inode_offset(p.readme);
  expect_refused_at_mount({{inode + 0x00, "INODE_TAG"},
                           {inode + offsetof(Inode, size), "INODE_CHECKSUM"},
                           {inode + offsetof(Inode, extents) + 9, "INODE_CHECKSUM"}},
                          "inode");
}

TEST_CASE("a flipped byte in a directory entry is reported and refused by mount", "[corruption]") {
  const Populated& p = populated();
  uint64_t dirent = p.dirent_offset(p.dirent_slot(p.docs, "readme"));
  expect_refused_at_mount({{dirent + 0x00, "DIRENT_TAG"},
                           {dirent + offsetof(Dirent, name) + 2, "DIRENT_CHECKSUM"},
                           {dirent + offsetof(Dirent, ino), "DIRENT_CHECKSUM"}},
                          "directory entry");
}

TEST_CASE("a flipped byte in a chunk-map block is reported and refused by mount", "[corruption]") {
  const Populated& p = populated();
  uint64_t map = p.layout.chunk_map_offset;
  expect_refused_at_mount(
      {{map + 0x00, "CHUNK_MAP_TAG"},
       {map + offsetof(format::ChunkMapBlock, state) + p.layout.metadata_chunks + 3, "CHUNK_MAP_CHECKSUM"},
       {map + offsetof(format::ChunkMapBlock, checksum), "CHUNK_MAP_CHECKSUM"}},
      "chunk map");
}

TEST_CASE("a flipped byte in a split-chunk header is reported and refused by mount", "[corruption]") {
  const Populated& p = populated();
  uint64_t header = p.chunk_in_state(format::kChunkSplit) * format::kChunkSize;
  expect_refused_at_mount({{header + 0x00, "SPLIT_HEADER_TAG"},
                           {header + offsetof(format::SplitHeader, bitmap) + 5, "SPLIT_HEADER_CHECKSUM"}},
                          "split chunk");
}

TEST_CASE("a flipped byte in a hold is reported and refused by mount", "[corruption]") {
  const Populated& p = populated();
  // The populated region has no hold yet: write a valid one to damage.
  Bytes with_hold = p.image;
  put_raw(with_hold, p.hold_offset(3), make_hold(p, p.readme));
  uint64_t hold = p.hold_offset(3);
  for (const Flip& flip :
       std::vector<Flip>{{hold + 0x00, "HOLD_TAG"}, {hold + offsetof(format::Hold, pid), "HOLD_CHECKSUM"}}) {
    INFO("flipped byte at region offset " << flip.offset << ", expecting " << flip.code);
    Bytes image = with_hold;
    image[flip.offset] ^= std::byte{0x40};
    auto report = check(image);
    INFO(describe(report));
    CHECK(has_code(report, flip.code));
    auto opened = Filesystem::open(view(image));
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code() == EUCLEAN);
    CHECK_THAT(opened.error().message(), Contains("hold") && Contains("fsck.pkfs"));
  }
}

TEST_CASE("a flipped byte in an extent block is reported and fails the read that needs it", "[corruption]") {
  const Populated& p = populated();
  uint64_t block = p.inode(p.many).extent_block;
  REQUIRE(block != 0);
  for (const Flip& flip :
       std::vector<Flip>{{block + 0x00, "EXTENT_BLOCK_TAG"},
                         {block + offsetof(format::ExtentBlock, extents) + 17, "EXTENT_BLOCK_CHECKSUM"}}) {
    INFO("flipped byte at region offset " << flip.offset << ", expecting " << flip.code);
    Bytes image = p.image;
    image[flip.offset] ^= std::byte{0x40};
    auto report = check(image);
    INFO(describe(report));
    CHECK(has_code(report, flip.code));
    auto opened = Filesystem::open(view(image));
    REQUIRE(opened);
    Filesystem& fs = *opened.value();
    std::vector<std::byte> buffer(64 * kBlock);
    auto read = fs.read(p.many, 0, buffer);
    REQUIRE_FALSE(read);
    CHECK(read.error().code() == EUCLEAN);
    CHECK_THAT(read.error().message(), Contains("extent block"));
    auto write = fs.write(p.many, 0, std::span<const std::byte>(buffer.data(), 10));
    REQUIRE_FALSE(write);
    CHECK(write.error().code() == EUCLEAN);
    // The error is recorded: the next check (and mount) asks for fsck.
    REQUIRE(fs.close());
    auto after = check(image);
    CHECK(has_code(after, "SUPERBLOCK_ERRORS"));
  }
}

TEST_CASE("a flipped byte in an xattr block is reported and fails the xattr calls that need it",
          "[corruption]") {
  const Populated& p = populated();
  uint64_t block = p.inode(p.readme).xattr_block;
  REQUIRE(block != 0);
  for (const Flip& flip :
       std::vector<Flip>{{block + 0x00, "XATTR_BLOCK_TAG"},
                         {block + offsetof(format::XattrBlock, payload) + 6, "XATTR_BLOCK_CHECKSUM"}}) {
    INFO("flipped byte at region offset " << flip.offset << ", expecting " << flip.code);
    Bytes image = p.image;
    image[flip.offset] ^= std::byte{0x40};
    auto report = check(image);
    INFO(describe(report));
    CHECK(has_code(report, flip.code));
    auto opened = Filesystem::open(view(image));
    REQUIRE(opened);
    Filesystem& fs = *opened.value();
    auto value = fs.getxattr(p.readme, "user.color");
    REQUIRE_FALSE(value);
    CHECK(value.error().code() == EUCLEAN);
    CHECK_THAT(value.error().message(), Contains("xattr block"));
    auto names = fs.listxattr(p.readme);
    REQUIRE_FALSE(names);
    CHECK(names.error().code() == EUCLEAN);
    auto set = fs.setxattr(p.readme, "user.other", "x", 0);
    REQUIRE_FALSE(set);
    CHECK(set.error().code() == EUCLEAN);
  }
}

// Every byte (every 13th of 4 KiB blocks) of every structure: the check
// never crashes and reports each change its checksum covers; a read-only
// mount never crashes either.
TEST_CASE("no flipped byte of any structure crashes the check or the mount", "[corruption]") {
  const Populated& p = populated();
  Bytes image = p.image;
  put_raw(image, p.hold_offset(0), make_hold(p, p.readme));
  struct Range {
    const char* name;
    uint64_t offset, length, stride;
    bool eager;  // read at mount
  };
  const uint64_t journal = p.layout.journal_offset;
  const std::vector<Range> ranges = {
      {"primary superblock", 0, sizeof(format::Superblock), 1, true},
      {"backup superblock", p.layout.backup_offset, sizeof(format::Superblock), 1, true},
      {"journal header", journal, offsetof(format::JournalHeader, reserved2), 1, true},
      {"root inode", p.inode_offset(format::kRootIno), sizeof(Inode), 1, true},
      {"file inode", p.inode_offset(p.many), sizeof(Inode), 1, true},
      {"directory entry", p.dirent_offset(p.dirent_slot(p.sub, "fifo")), sizeof(Dirent), 1, true},
      {"chunk map block", p.layout.chunk_map_offset, kBlock, 13, true},
      {"split header", p.chunk_in_state(format::kChunkSplit) * format::kChunkSize,
       sizeof(format::SplitHeader), 1, true},
      {"extent block", p.inode(p.many).extent_block, kBlock, 13, false},
      {"xattr block", p.inode(p.readme).xattr_block, kBlock, 13, false},
      {"hold", p.hold_offset(0), sizeof(format::Hold), 1, true},
  };
  uint64_t flips = 0;
  for (const Range& range : ranges) {
    for (uint64_t i = 0; i < range.length; i += range.stride) {
      INFO(range.name << " byte " << i);
      image[range.offset + i] ^= std::byte{0x01};
      auto report = check(image);
      CHECK_FALSE(report.clean());
      if (range.eager) {
        core::OpenOptions read_only;
        read_only.read_only = true;
        auto opened = Filesystem::open(view(image, true), read_only);
        CHECK_FALSE(opened);
      }
      image[range.offset + i] ^= std::byte{0x01};
      ++flips;
    }
  }
  CHECK(check(image).clean());
  CHECK(flips > 1000);
}

// ---------------------------------------------------------------------------
// Resealed damage: every checksum passes, an invariant does not.

struct Damaged {
  Bytes image;
  const Populated& p;
  explicit Damaged(const Populated& populated_region) : image(populated_region.image), p(populated_region) {}
  Inode inode(Ino ino) const { return get<Inode>(image, p.inode_offset(ino)); }
  void put_inode(const Inode& inode) { put_sealed(image, p.inode_offset(inode.ino), inode); }
  Dirent dirent(uint64_t slot) const { return get<Dirent>(image, p.dirent_offset(slot)); }
  void put_dirent(uint64_t slot, const Dirent& dirent) { put_sealed(image, p.dirent_offset(slot), dirent); }
  format::ChunkMapBlock map() const { return get<format::ChunkMapBlock>(image, p.layout.chunk_map_offset); }
  void put_map(const format::ChunkMapBlock& map) { put_sealed(image, p.layout.chunk_map_offset, map); }
  format::Superblock superblock() const { return get<format::Superblock>(image, 0); }
  void put_superblock(const format::Superblock& sb) { put_sealed(image, 0, sb); }
  core::CheckReport report(const core::CheckOptions& options = {}) { return check(image, options); }
};

void expect_code(Damaged& damaged, const std::string& code, const core::CheckOptions& options = {}) {
  auto report = damaged.report(options);
  INFO(describe(report));
  CHECK(has_code(report, code));
}

TEST_CASE("a wrong link count is reported", "[check]") {
  Damaged d(populated());
  Inode inode = d.inode(d.p.readme);
  inode.nlink = 3;
  d.put_inode(inode);
  expect_code(d, "LINK_COUNT");
}

TEST_CASE("a directory's link count must be 2 plus its subdirectories", "[check]") {
  Damaged d(populated());
  Inode inode = d.inode(d.p.docs);
  inode.nlink = 2;  // docs has one subdirectory
  d.put_inode(inode);
  expect_code(d, "LINK_COUNT");
}

TEST_CASE("an entry whose file type disagrees with its inode is reported", "[check]") {
  Damaged d(populated());
  uint64_t slot = d.p.dirent_slot(d.p.docs, "readme");
  Dirent dirent = d.dirent(slot);
  dirent.file_type = DT_DIR;
  d.put_dirent(slot, dirent);
  expect_code(d, "DIRENT_TYPE");
}

TEST_CASE("an entry naming a free inode is reported", "[check]") {
  Damaged d(populated());
  uint64_t slot = d.p.dirent_slot(d.p.docs, "readme");
  Dirent dirent = d.dirent(slot);
  dirent.ino = d.superblock().inode_high_water + 5;
  d.put_dirent(slot, dirent);
  expect_code(d, "DIRENT_CHILD");
}

TEST_CASE("an entry whose directory is not a directory is reported", "[check]") {
  Damaged d(populated());
  uint64_t slot = d.p.dirent_slot(d.p.sub, "fifo");
  Dirent dirent = d.dirent(slot);
  dirent.parent_ino = d.p.readme;
  d.put_dirent(slot, dirent);
  expect_code(d, "DIRENT_PARENT");
}

TEST_CASE("two entries of one name in one directory are reported", "[check]") {
  Damaged d(populated());
  uint64_t slot = d.p.dirent_slot(d.p.sub, "readme-link");
  format::Superblock sb = d.superblock();
  uint64_t extra = sb.dirent_high_water;
  d.put_dirent(extra, d.dirent(slot));
  sb.dirent_high_water = extra + 1;
  d.put_superblock(sb);
  expect_code(d, "DIRENT_DUPLICATE");
}

TEST_CASE("a directory with a wrong parent field is reported", "[check]") {
  Damaged d(populated());
  Inode inode = d.inode(d.p.sub);
  inode.parent = format::kRootIno;
  d.put_inode(inode);
  expect_code(d, "DIR_PARENT");
}

TEST_CASE("a directory cycle cut off from the root is reported", "[check]") {
  Damaged d(populated());
  // Move docs into its own subdirectory: docs -> sub -> docs.
  uint64_t slot = d.p.dirent_slot(format::kRootIno, "docs");
  Dirent dirent = d.dirent(slot);
  dirent.parent_ino = d.p.sub;
  d.put_dirent(slot, dirent);
  Inode docs = d.inode(d.p.docs);
  docs.parent = d.p.sub;
  d.put_inode(docs);
  expect_code(d, "DIR_CYCLE");
}

TEST_CASE("an inode no entry names, without the orphan flag, is reported", "[check]") {
  Damaged d(populated());
  uint64_t slot = d.p.dirent_slot(d.p.sub, "fifo");
  put_raw(d.image, d.p.dirent_offset(slot), Dirent{});
  auto report = d.report();
  INFO(describe(report));
  CHECK(has_code(report, "UNREACHABLE"));
  CHECK(has_code(report, "LINK_COUNT"));
}

TEST_CASE("orphans and unfinished trims are counted, not reported, and mount finishes them", "[check]") {
  Damaged d(populated());
  // What a crash between unlink and reclaim leaves.
  uint64_t slot = d.p.dirent_slot(d.p.sub, "fifo");
  put_raw(d.image, d.p.dirent_offset(slot), Dirent{});
  Inode fifo = d.inode(d.p.fifo);
  fifo.nlink = 0;
  fifo.flags |= format::kInodeOrphan;
  d.put_inode(fifo);
  // What a crash in the middle of a shrink leaves.
  Inode many = d.inode(d.p.many);
  many.size = 5000;
  many.flags |= format::kInodeTrimming;
  many.trim_block = 2;
  d.put_inode(many);
  auto report = d.report();
  INFO(describe(report));
  CHECK(report.clean());
  CHECK(report.orphan_inodes == 1);
  CHECK(report.trimming_inodes == 1);

  auto opened = Filesystem::open(view(d.image));
  REQUIRE(opened);
  CHECK(opened.value()->open_report().orphans_reclaimed == 1);
  REQUIRE(opened.value()->close());
  auto after = d.report({.verify_known_zero = true});
  INFO(describe(after));
  CHECK(after.clean());
  CHECK(after.orphan_inodes == 0);
  CHECK(after.trimming_inodes == 0);
  CHECK(after.inodes_in_use == report.inodes_in_use - 1);
}

TEST_CASE("an open journal transaction a mount cannot roll back is reported", "[check]") {
  Damaged d(populated());
  uint64_t at = d.p.layout.journal_offset;
  auto header = get<format::JournalHeader>(d.image, at);
  header.open_sequence = header.last_sequence + 1;  // not the last one begun
  put_raw(d.image, at, header);                     // the commit words are outside the checksum
  expect_code(d, "JOURNAL_OPEN");
}

// A daemon killed inside a transaction leaves it open, which is no damage:
// the next mount rolls it back. fsck -n ran into this after every kill -9
// that landed inside a transaction (the torture test found it): it reported
// JOURNAL_OPEN, and also, here, the link count the transaction had changed.
TEST_CASE("an interrupted transaction is checked as the mount will roll it back", "[check]") {
  Damaged d(populated());
  Bytes crashed;
  {
    auto region = view(d.image);
    auto journal = journal::Journal::open(*region, d.p.layout.journal_offset, d.p.layout.journal_bytes);
    REQUIRE(journal);
    auto txn = journal.value()->begin();
    Inode inode = d.inode(d.p.readme);
    inode.nlink = 3;
    format::seal(inode);
    REQUIRE(txn->put(d.p.inode_offset(inode.ino), inode));
    crashed = d.image;  // the kill: this transaction never commits
  }
  Damaged without_rollback(populated());
  without_rollback.image = crashed;
  auto header = get<format::JournalHeader>(crashed, d.p.layout.journal_offset);
  REQUIRE(header.open_sequence != 0);

  d.image = crashed;
  auto report = d.report();
  INFO(describe(report));
  CHECK(report.clean());
  CHECK(report.rolled_back_sequence == header.open_sequence);
  CHECK(report.rolled_back_records == 1);
  CHECK(get<Inode>(d.image, d.p.inode_offset(d.p.readme)).nlink == 3);  // nothing written

  // The check is of the rolled-back state, not a blanket pass: with the
  // undo record torn, a mount keeps the new bytes and so does the check.
  uint64_t record = d.p.layout.journal_offset + format::kJournalRecordsOffset;
  without_rollback.image[record + format::undo_record_bytes(sizeof(Inode)) - 1] ^= std::byte{1};
  expect_code(without_rollback, "LINK_COUNT");

  auto opened = Filesystem::open(view(d.image));
  REQUIRE(opened);
  REQUIRE(opened.value()->close());
  auto after = d.report();
  INFO(describe(after));
  CHECK(after.clean());
  CHECK(after.rolled_back_sequence == 0);
}

TEST_CASE("a used chunk no extent covers is reported as leaked", "[check]") {
  Damaged d(populated());
  auto map = d.map();
  uint64_t chunk = d.p.chunk_in_state(format::kChunkFreeZero);
  map.state[chunk] = format::kChunkUsed;
  d.put_map(map);
  expect_code(d, "SPACE_LEAKED");
}

TEST_CASE("a split-chunk block nothing owns is reported as leaked", "[check]") {
  Damaged d(populated());
  uint64_t chunk = d.p.chunk_in_state(format::kChunkSplit);
  auto header = get<format::SplitHeader>(d.image, chunk * format::kChunkSize);
  header.bitmap[7] |= uint64_t{1} << 63;  // block 511
  header.used_blocks = static_cast<uint16_t>(header.used_blocks + 1);
  put_sealed(d.image, chunk * format::kChunkSize, header);
  expect_code(d, "SPACE_LEAKED");
}

TEST_CASE("an extent on a block its split chunk marks free is reported", "[check]") {
  Damaged d(populated());
  Inode readme = d.inode(d.p.readme);
  uint64_t block = readme.extents[0].region_block;
  uint64_t chunk = block / format::kBlocksPerChunk, bit = block % format::kBlocksPerChunk;
  auto header = get<format::SplitHeader>(d.image, chunk * format::kChunkSize);
  header.bitmap[bit / 64] &= ~(uint64_t{1} << (bit % 64));
  header.used_blocks = static_cast<uint16_t>(header.used_blocks - 1);
  put_sealed(d.image, chunk * format::kChunkSize, header);
  expect_code(d, "EXTENT_SPACE");
}

TEST_CASE("space claimed by two files is reported", "[check]") {
  Damaged d(populated());
  Inode readme = d.inode(d.p.readme);
  Inode fifo_as_file = d.inode(d.p.link);
  // The symlink's target block now also holds readme's first block.
  fifo_as_file.extents[0].region_block = readme.extents[0].region_block;
  d.put_inode(fifo_as_file);
  expect_code(d, "SPACE_CLAIMED_TWICE");
}

TEST_CASE("a large extent over a chunk not marked used is reported", "[check]") {
  Damaged d(populated());
  Inode big = d.inode(d.p.big);
  REQUIRE(big.extent_count == 1);
  uint64_t chunk = big.extents[0].region_block / format::kBlocksPerChunk;
  auto map = d.map();
  map.state[chunk] = format::kChunkFreeDirty;
  d.put_map(map);
  expect_code(d, "EXTENT_SPACE");
}

TEST_CASE("an extent chain that cycles is reported and the check ends", "[check]") {
  Damaged d(populated());
  uint64_t at = d.inode(d.p.many).extent_block;
  auto block = get<format::ExtentBlock>(d.image, at);
  block.next = at;
  put_sealed(d.image, at, block);
  expect_code(d, "EXTENT_CHAIN");
}

TEST_CASE("an extent block owned by another inode is reported", "[check]") {
  Damaged d(populated());
  uint64_t at = d.inode(d.p.many).extent_block;
  auto block = get<format::ExtentBlock>(d.image, at);
  block.owner_ino = d.p.readme;
  put_sealed(d.image, at, block);
  expect_code(d, "EXTENT_BLOCK_OWNER");
}

TEST_CASE("an extent count that disagrees with the extents is reported", "[check]") {
  Damaged d(populated());
  Inode many = d.inode(d.p.many);
  many.extent_count -= 1;
  d.put_inode(many);
  expect_code(d, "EXTENT_COUNT");
}

TEST_CASE("unsorted or overlapping extents are reported", "[check]") {
  Damaged d(populated());
  Inode many = d.inode(d.p.many);
  std::swap(many.extents[1], many.extents[2]);
  d.put_inode(many);
  expect_code(d, "EXTENT_ORDER");
}

TEST_CASE("an extent outside the data area is reported", "[check]") {
  Damaged d(populated());
  Inode readme = d.inode(d.p.readme);
  readme.extents[0].region_block = 3;  // inside the journal
  d.put_inode(readme);
  expect_code(d, "EXTENT_RANGE");
}

TEST_CASE("a wrong allocated-block count is reported", "[check]") {
  Damaged d(populated());
  Inode readme = d.inode(d.p.readme);
  readme.allocated_blocks += 1;
  d.put_inode(readme);
  expect_code(d, "INODE_BLOCKS");
}

TEST_CASE("a symlink without its target block is reported", "[check]") {
  Damaged d(populated());
  Inode link = d.inode(d.p.link);
  link.size = 0;
  d.put_inode(link);
  expect_code(d, "SYMLINK_INVALID");
}

TEST_CASE("a root that is not a directory is reported", "[check]") {
  Damaged d(populated());
  Inode root = d.inode(format::kRootIno);
  root.mode = S_IFREG | 0644;
  d.put_inode(root);
  expect_code(d, "ROOT_NOT_DIRECTORY");
}

TEST_CASE("a metadata chunk marked free, or a data chunk marked metadata, is reported", "[check]") {
  Damaged d(populated());
  auto map = d.map();
  map.state[0] = format::kChunkFreeDirty;
  map.state[d.p.chunk_in_state(format::kChunkFreeZero)] = format::kChunkMeta;
  d.put_map(map);
  auto report = d.report();
  INFO(describe(report));
  size_t found = 0;
  for (const auto& problem : report.problems) found += problem.code == "CHUNK_STATE";
  CHECK(found == 2);
}

TEST_CASE("a backup superblock with another layout or uuid is reported", "[check]") {
  Damaged d(populated());
  auto backup = get<format::Superblock>(d.image, d.p.layout.backup_offset);
  backup.uuid[0] ^= 1;
  put_sealed(d.image, d.p.layout.backup_offset, backup);
  expect_code(d, "BACKUP_SUPERBLOCK_MISMATCH");
}

TEST_CASE("a hold on a free inode is reported", "[check]") {
  Damaged d(populated());
  format::Hold hold = make_hold(d.p, d.p.readme);
  hold.ino = d.superblock().inode_high_water + 1;
  put_sealed(d.image, d.p.hold_offset(2), hold);
  expect_code(d, "HOLD_INODE");
}

TEST_CASE("recorded errors are reported", "[check]") {
  Damaged d(populated());
  format::Superblock sb = d.superblock();
  sb.state |= format::kStateError;
  sb.error_count = 1;
  d.put_superblock(sb);
  expect_code(d, "SUPERBLOCK_ERRORS");
}

TEST_CASE("a known-zero free chunk with data is reported only when zeros are verified", "[check]") {
  Damaged d(populated());
  uint64_t chunk = d.p.chunk_in_state(format::kChunkFreeZero);
  d.image[chunk * format::kChunkSize + 12345] = std::byte{1};
  CHECK(d.report().clean());
  expect_code(d, "CHUNK_NOT_ZERO", {.verify_known_zero = true});
}

TEST_CASE("a damaged primary superblock is checked through the backup", "[check]") {
  Damaged d(populated());
  d.image[0x40] ^= std::byte{0xff};
  auto report = d.report();
  INFO(describe(report));
  CHECK(has_code(report, "SUPERBLOCK_CHECKSUM"));
  CHECK(has_code(report, "SUPERBLOCK_FALLBACK"));
  CHECK(report.inodes_in_use == 8);
}

// Sealed garbage in every structure the walks follow: the check must end
// without crashing (ASan builds turn any stray read into a failure).
TEST_CASE("sealed random garbage in inodes, entries and blocks never crashes the check", "[check]") {
  const Populated& p = populated();
  std::mt19937_64 random(20261121);
  auto garbage = [&random](auto& value) {
    auto* bytes = reinterpret_cast<uint8_t*>(&value);
    for (size_t i = 0; i < sizeof value; ++i) {
      if (random() % 4 == 0) bytes[i] = static_cast<uint8_t>(random());
    }
  };
  const uint64_t high_water = p.superblock().inode_high_water;
  const uint64_t extent_block = p.inode(p.many).extent_block;
  const uint64_t xattr_block = p.inode(p.readme).xattr_block;
  const uint64_t split = p.chunk_in_state(format::kChunkSplit) * format::kChunkSize;
  Bytes image = p.image;
  auto restore = [&](uint64_t offset, uint64_t length) {
    std::memcpy(image.data() + offset, p.image.data() + offset, length);
  };
  for (int round = 0; round < 300; ++round) {
    // Only metadata and the blocks below change: restore just those.
    restore(0, p.layout.data_offset);
    restore(extent_block, kBlock);
    restore(xattr_block, kBlock);
    restore(split, kBlock);
    for (Ino ino = 1; ino < high_water; ++ino) {
      if (random() % 3 != 0) continue;
      Inode inode = get<Inode>(image, p.inode_offset(ino));
      garbage(inode);
      if (random() % 2) inode.tag = format::kInodeTag, inode.version = 1, inode.ino = ino, inode.flags &= 3;
      put_sealed(image, p.inode_offset(ino), inode);
    }
    for (uint64_t slot = 0; slot < p.superblock().dirent_high_water; ++slot) {
      if (random() % 3 != 0) continue;
      Dirent dirent = get<Dirent>(image, p.dirent_offset(slot));
      garbage(dirent);
      if (random() % 2) dirent.tag = format::kDirentTag, dirent.version = 1;
      put_sealed(image, p.dirent_offset(slot), dirent);
    }
    auto block = get<format::ExtentBlock>(image, extent_block);
    garbage(block);
    if (random() % 2) block.tag = format::kExtentBlockTag, block.version = 1, block.count %= 255;
    if (random() % 2) block.next = extent_block - kBlock * (random() % 3);
    put_sealed(image, extent_block, block);
    auto xattrs = get<format::XattrBlock>(image, xattr_block);
    garbage(xattrs);
    if (random() % 2) xattrs.tag = format::kXattrBlockTag, xattrs.version = 1;
    put_sealed(image, xattr_block, xattrs);
    auto header = get<format::SplitHeader>(image, split);
    if (random() % 4 == 0) garbage(header);
    put_sealed(image, split, header);
    auto map = get<format::ChunkMapBlock>(image, p.layout.chunk_map_offset);
    for (uint64_t chunk = 0; chunk < p.layout.chunk_count; ++chunk) {
      if (random() % 8 == 0) map.state[chunk] = static_cast<uint8_t>(random() % (format::kChunkStateMax + 1));
    }
    put_sealed(image, p.layout.chunk_map_offset, map);
    BufferRegion region(image, true);
    auto report = core::check_region(region);
    REQUIRE(report);
  }
}

}  // namespace
