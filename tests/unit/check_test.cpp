// tests/unit/check_test.cpp: behaviour of fsck::check_region, and of mount
// and lazy readers on damaged regions.
//
// A region is formatted, populated through core::Filesystem and closed; its
// bytes are then copied, damaged (a flipped byte, LevelDB SetByte style, or a
// resealed struct that passes its checksum but breaks an invariant) and
// handed to check_region, and to Filesystem::open, which must refuse eagerly
// read structures with EUCLEAN and a message naming the structure and
// fsck.pkfs. Lazily read structures (extent and xattr blocks) must make the
// operation that reads them fail with EUCLEAN instead.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "fs/journal/journal.h"
#include "fs/region/region.h"
#include "support/data_pattern.h"
#include "support/fault_region.h"
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

bool has_code(const fsck::CheckReport& report, const std::string& code) {
  for (const auto& problem : report.problems) {
    if (problem.code == code) return true;
  }
  return false;
}

std::string describe(const fsck::CheckReport& report) {
  std::string text = std::to_string(report.problems.size()) + " problems";
  for (const auto& problem : report.problems) text += "\n  " + problem.code + ": " + problem.message;
  return text;
}

fsck::CheckReport check(Bytes& bytes, const fsck::CheckOptions& options = {}) {
  BufferRegion region(bytes, true);
  auto report = fsck::check_region(region, options);
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
  auto report = fsck::check_region(memory, {.verify_known_zero = true});
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
  auto report = fsck::check_region(opened.value()->region());
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

TEST_CASE("a progress callback that answers false cancels check and repair with ECANCELED", "[check]") {
  Bytes image = populated().image;
  int calls = 0;
  auto stop_at_pass_3 = [&](int pass, uint64_t, uint64_t) {
    ++calls;
    return pass < 3;
  };
  BufferRegion region(image, false);
  auto checked = fsck::check_region(region, {}, stop_at_pass_3);
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code() == ECANCELED);
  CHECK(calls > 0);
  // Repair stops while it builds its model: nothing is written.
  const Bytes before = image;
  auto repaired = fsck::repair_region(region, {}, stop_at_pass_3);
  REQUIRE_FALSE(repaired);
  CHECK(repaired.error().code() == ECANCELED);
  CHECK(image == before);
}

TEST_CASE("a region without a superblock is an error, not a report", "[check]") {
  region::MemoryRegion memory(kRegionBytes);
  auto report = fsck::check_region(memory);
  REQUIRE_FALSE(report);
  CHECK(report.error().code() == ENODATA);
  region::MemoryRegion tiny(1 << 20);
  CHECK_FALSE(fsck::check_region(tiny));
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
  fsck::CheckReport report(const fsck::CheckOptions& options = {}) { return check(image, options); }
};

void expect_code(Damaged& damaged, const std::string& code, const fsck::CheckOptions& options = {}) {
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

TEST_CASE("an interrupted transaction's chunk map is checked as mount's undo filter leaves it", "[check]") {
  // The transaction marks known-zero chunk `taken` used and writes data to
  // it (data is never logged), then the kill. A mount's rollback applies the
  // allocator's undo filter: `taken` comes back free but dirty, since it may
  // hold data now, and `other`, in the same chunk-map block but untouched,
  // stays known zero. The check's simulated rollback applies the same
  // filter: `taken` is no damage, data in `other` is.
  Damaged d(populated());
  const uint64_t taken = d.p.chunk_in_state(format::kChunkFreeZero);
  uint64_t other = taken + 1;
  while (d.map().state[other] != format::kChunkFreeZero) ++other;
  REQUIRE(other / format::kChunksPerMapBlock == taken / format::kChunksPerMapBlock);
  Bytes crashed;
  {
    auto region = view(d.image);
    auto journal = journal::Journal::open(*region, d.p.layout.journal_offset, d.p.layout.journal_bytes);
    REQUIRE(journal);
    auto txn = journal.value()->begin();
    auto map = d.map();
    map.state[taken] = format::kChunkUsed;
    format::seal(map);
    REQUIRE(txn->put(d.p.layout.chunk_map_offset, map));
    crashed = d.image;  // the kill: this transaction never commits
  }
  crashed[taken * format::kChunkSize + 4321] = std::byte{7};
  d.image = crashed;
  auto report = d.report({.verify_known_zero = true});
  INFO(describe(report));
  CHECK(report.clean());
  CHECK(report.rolled_back_records == 1);

  d.image[other * format::kChunkSize + 1234] = std::byte{9};
  auto damaged = d.report({.verify_known_zero = true});
  INFO(describe(damaged));
  REQUIRE(damaged.problems.size() == 1);
  CHECK(damaged.problems[0].code == "CHUNK_NOT_ZERO");
  CHECK(damaged.problems[0].message.find("chunk " + std::to_string(other)) != std::string::npos);

  // The mount agrees: only `other` is known zero with data.
  auto opened = Filesystem::open(view(d.image));
  REQUIRE(opened);
  REQUIRE(opened.value()->close());
  CHECK(d.map().state[taken] != format::kChunkUsed);
  auto mounted = d.report({.verify_known_zero = true});
  INFO(describe(mounted));
  REQUIRE(mounted.problems.size() == 1);
  CHECK(mounted.problems[0].message == damaged.problems[0].message);
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
    auto report = fsck::check_region(region);
    REQUIRE(report);
    // Whatever the damage, one repair leaves a clean region (or fails
    // cleanly when no superblock is left, which this damage never does).
    BufferRegion writable(image, false);
    auto repaired = fsck::repair_region(writable);
    INFO("round " << round);
    REQUIRE(repaired);
    auto after = fsck::check_region(region);
    REQUIRE(after);
    INFO(describe(*after));
    CHECK(after->clean());
  }
}

// ---------------------------------------------------------------------------
// Repair: every damage above, repaired by repair_region; a second check is
// clean, a second repair finds nothing, mount works, and files the damage
// did not touch keep their content.

bool has_action(const fsck::RepairReport& report, const std::string& code) {
  for (const auto& action : report.actions) {
    if (action.code == code) return true;
  }
  return false;
}

std::string describe(const fsck::RepairReport& report) {
  std::string text = std::to_string(report.actions.size()) + " actions";
  for (const auto& action : report.actions)
    text += "\n  " + action.code + (action.safe ? " (safe)" : "") + ": " + action.message;
  return text;
}

fsck::RepairReport repair(Bytes& image, fsck::RepairMode mode = fsck::RepairMode::kAll) {
  BufferRegion region(image, false);
  fsck::RepairOptions options;
  options.mode = mode;
  auto report = fsck::repair_region(region, options);
  INFO((report ? std::string() : report.error().message()));
  REQUIRE(report);
  return std::move(report).value();
}

// The contents the populated region's files were written with.
void expect_content(Filesystem& fs, Ino ino, uint64_t offset, size_t length, unsigned seed) {
  std::vector<std::byte> buffer(length);
  auto read = fs.read(ino, offset, buffer);
  INFO("inode " << ino << ": " << (read ? std::string() : read.error().message()));
  REQUIRE(read);
  REQUIRE(read.value() == length);
  CHECK(buffer == pattern(length, seed));
}

enum Touches : unsigned { kNone = 0, kReadme = 1, kBig = 2, kMany = 4 };

// Repairs `image`, expecting `code` among the actions, then proves the
// result: check clean, second repair empty, mount and content.
void expect_repaired(Bytes& image, const std::string& code, unsigned touches = kNone) {
  const Populated& p = populated();
  auto before = check(image);
  INFO("before: " << describe(before));
  CHECK_FALSE(before.clean());
  auto first = repair(image);
  INFO("repair: " << describe(first));
  CHECK(first.applied);
  CHECK(has_action(first, code));
  auto after = check(image, {.verify_known_zero = true});
  INFO("after: " << describe(after));
  CHECK(after.clean());
  auto second = repair(image);
  INFO("second repair: " << describe(second));
  CHECK(second.actions.empty());
  CHECK((get<format::Superblock>(image, 0).state & format::kStateError) == 0);
  CHECK(get<format::Superblock>(image, 0).check_time_ns != 0);
  auto opened = Filesystem::open(view(image));
  INFO((opened ? std::string() : opened.error().message()));
  REQUIRE(opened);
  Filesystem& fs = *opened.value();
  if (!(touches & kBig)) expect_content(fs, p.big, 1 << 20, 100000, 3);
  if (!(touches & kReadme)) expect_content(fs, p.readme, 0, 10000, 1);
  if (!(touches & kMany)) {
    for (uint64_t block = 0; block < 40; block += 2) expect_content(fs, p.many, block * kBlock, kBlock, 2);
  }
  REQUIRE(fs.close());
  CHECK(check(image).clean());
}

void expect_flips_repaired(const std::vector<Flip>& flips, unsigned touches = kNone,
                           const Bytes* base = nullptr) {
  for (const Flip& flip : flips) {
    INFO("flipped byte at region offset " << flip.offset << ", expecting " << flip.code);
    Bytes image = base ? *base : populated().image;
    image[flip.offset] ^= std::byte{0x40};
    expect_repaired(image, flip.code, touches);
  }
}

TEST_CASE("repair restores a damaged primary superblock from the backup", "[repair]") {
  expect_flips_repaired(
      {{0x38, "SUPERBLOCK_CHECKSUM"}, {0x90, "SUPERBLOCK_CHECKSUM"}, {0x1f8, "SUPERBLOCK_CHECKSUM"}});
}

TEST_CASE("repair keeps files created after the backup was written", "[repair]") {
  const Populated& p = populated();
  Bytes image = p.image;
  {
    auto opened = Filesystem::open(view(image));
    REQUIRE(opened);
    Filesystem& fs = *opened.value();
    Ino late = make_file(fs, format::kRootIno, "late");
    write_pattern(fs, late, 0, 5000, 9);
    // Killed: no clean unmount, so the backup has the mount-time marks.
  }
  image[0x38] ^= std::byte{0x40};
  auto first = repair(image);
  INFO(describe(first));
  CHECK(has_action(first, "SUPERBLOCK_FALLBACK"));
  auto after = check(image);
  INFO(describe(after));
  CHECK(after.clean());
  auto opened = Filesystem::open(view(image));
  REQUIRE(opened);
  auto late = opened.value()->lookup(format::kRootIno, "late");
  REQUIRE(late);
  expect_content(*opened.value(), late->ino, 0, 5000, 9);
}

TEST_CASE("repair rewrites a damaged backup superblock from the primary", "[repair]") {
  uint64_t backup = populated().layout.backup_offset;
  expect_flips_repaired(
      {{backup + 0x38, "BACKUP_SUPERBLOCK_CHECKSUM"}, {backup + 0x1f8, "BACKUP_SUPERBLOCK_CHECKSUM"}});
}

TEST_CASE("repair restores or rewrites a damaged journal header", "[repair]") {
  uint64_t journal = populated().layout.journal_offset;
  expect_flips_repaired({{journal + 0x00, "JOURNAL_TAG"},
                         {journal + 0x10, "JOURNAL_CHECKSUM"},
                         {journal + offsetof(format::JournalHeader, open_sequence), "JOURNAL_OPEN"}});
}

TEST_CASE("repair restores or clears a damaged inode", "[repair]") {
  const Populated& p = populated();
  uint64_t inode = p.inode_offset(p.readme);
  expect_flips_repaired({{inode + 0x00, "INODE_TAG"}}, kNone);
  expect_flips_repaired({{inode + offsetof(Inode, size), "INODE_CHECKSUM"},
                         {inode + offsetof(Inode, extents) + 9, "INODE_CHECKSUM"}},
                        kReadme);
  // Damage that leaves no sane inode: cleared, its entries go, space freed.
  Bytes image = p.image;
  Inode bad = p.inode(p.readme);
  bad.mode = 0xf000;  // no file type
  put_raw(image, inode, bad);
  expect_repaired(image, "INODE_CHECKSUM", kReadme);
  BufferRegion region(image, true);
  auto opened = Filesystem::open(view(image));
  REQUIRE(opened);
  CHECK_FALSE(opened.value()->lookup(p.docs, "readme"));
  CHECK_FALSE(opened.value()->lookup(p.sub, "readme-link"));
}

TEST_CASE("repair restores, reseals or clears a damaged directory entry", "[repair]") {
  const Populated& p = populated();
  uint64_t dirent = p.dirent_offset(p.dirent_slot(p.docs, "readme"));
  expect_flips_repaired({{dirent + 0x00, "DIRENT_TAG"},
                         {dirent + offsetof(Dirent, name) + 2, "DIRENT_CHECKSUM"},
                         {dirent + offsetof(Dirent, ino), "DIRENT_CHECKSUM"}});
}

TEST_CASE("repair rebuilds a damaged chunk-map block from the extents", "[repair]") {
  const Populated& p = populated();
  uint64_t map = p.layout.chunk_map_offset;
  expect_flips_repaired(
      {{map + 0x00, "CHUNK_MAP_TAG"},
       {map + offsetof(format::ChunkMapBlock, state) + p.layout.metadata_chunks + 3, "CHUNK_MAP_CHECKSUM"},
       {map + offsetof(format::ChunkMapBlock, checksum), "CHUNK_MAP_CHECKSUM"}});
}

TEST_CASE("repair rebuilds a damaged split-chunk header", "[repair]") {
  const Populated& p = populated();
  uint64_t header = p.chunk_in_state(format::kChunkSplit) * format::kChunkSize;
  expect_flips_repaired({{header + 0x00, "SPLIT_HEADER_TAG"},
                         {header + offsetof(format::SplitHeader, bitmap) + 1, "SPLIT_HEADER_CHECKSUM"}});
}

TEST_CASE("repair clears a damaged hold and keeps a valid one", "[repair]") {
  const Populated& p = populated();
  Bytes with_hold = p.image;
  put_raw(with_hold, p.hold_offset(3), make_hold(p, p.readme));
  put_raw(with_hold, p.hold_offset(5), make_hold(p, p.big));
  uint64_t hold = p.hold_offset(3);
  expect_flips_repaired({{hold + 0x00, "HOLD_TAG"}, {hold + offsetof(format::Hold, pid), "HOLD_CHECKSUM"}},
                        kNone, &with_hold);
  Bytes image = with_hold;
  image[hold + offsetof(format::Hold, pid)] ^= std::byte{0x40};
  repair(image);
  CHECK(format::hold_is_free(get<format::Hold>(image, hold)));
  CHECK(format::hold_valid(get<format::Hold>(image, p.hold_offset(5))));
}

TEST_CASE("repair restores or cuts a damaged extent block", "[repair]") {
  const Populated& p = populated();
  uint64_t block = p.inode(p.many).extent_block;
  expect_flips_repaired({{block + 0x00, "EXTENT_BLOCK_TAG"}});
  expect_flips_repaired({{block + offsetof(format::ExtentBlock, extents) + 17, "EXTENT_BLOCK_CHECKSUM"}},
                        kMany);
  // Garbage: the chain is cut, the extents it held are lost.
  Bytes image = p.image;
  auto garbage = get<format::ExtentBlock>(image, block);
  garbage.count = 0xffff;
  put_raw(image, block, garbage);
  expect_repaired(image, "EXTENT_BLOCK_CHECKSUM", kMany);
  CHECK(get<Inode>(image, p.inode_offset(p.many)).extent_count == format::kInlineExtents);
}

TEST_CASE("repair zeroes unused extent-block entries that are not zero", "[repair]") {
  const Populated& p = populated();
  Bytes image = p.image;
  const uint64_t offset = p.inode(p.many).extent_block;
  auto block = get<format::ExtentBlock>(image, offset);
  REQUIRE(block.count < format::kExtentsPerBlock);
  block.extents[block.count].block_count = 7;  // resealed: only the invariant fails
  put_sealed(image, offset, block);
  // The files keep their contents: only the unused entry changes.
  expect_repaired(image, "EXTENT_BLOCK_INVALID");
  auto repaired = get<format::ExtentBlock>(image, offset);
  CHECK(repaired.extents[block.count].block_count == 0);
  CHECK(repaired.count == block.count);
}

TEST_CASE("repair restores or drops a damaged xattr block", "[repair]") {
  const Populated& p = populated();
  uint64_t block = p.inode(p.readme).xattr_block;
  expect_flips_repaired({{block + 0x00, "XATTR_BLOCK_TAG"},
                         {block + offsetof(format::XattrBlock, payload) + 6, "XATTR_BLOCK_CHECKSUM"}});
  Bytes image = p.image;
  auto garbage = get<format::XattrBlock>(image, block);
  garbage.used_bytes = 99999;
  put_raw(image, block, garbage);
  expect_repaired(image, "XATTR_BLOCK_CHECKSUM");
  auto opened = Filesystem::open(view(image));
  REQUIRE(opened);
  auto names = opened.value()->listxattr(p.readme);
  REQUIRE(names);
  CHECK(names->empty());
}

TEST_CASE("check and repair report an xattr block's zero fields in the same words", "[repair]") {
  const Populated& p = populated();
  const uint64_t at = p.inode(p.readme).xattr_block;
  Bytes image = p.image;
  auto block = get<format::XattrBlock>(image, at);
  block.reserved0 = 1;
  block.payload[format::kXattrPayloadBytes - 1] = 1;
  put_sealed(image, at, block);
  auto before = check(image);
  INFO("before: " << describe(before));
  auto repaired = repair(image);
  INFO("repair: " << describe(repaired));
  const std::string where =
      "inode " + std::to_string(p.readme) + " (/docs/readme): xattr block at " + std::to_string(at) + ": ";
  for (const std::string problem : {"reserved field is not zero", "payload past used_bytes is not zero"}) {
    CHECK(std::ranges::any_of(before.problems, [&](const auto& found) {
      return found.code == "XATTR_BLOCK_INVALID" && found.message == where + problem;
    }));
    CHECK(std::ranges::any_of(repaired.actions, [&](const fsck::RepairAction& action) {
      return action.code == "XATTR_BLOCK_INVALID" && action.message == where + problem + "; zeroed";
    }));
  }
  CHECK(repaired.applied);
  CHECK(check(image).clean());
}

// An open transaction with several undo records, as a kill leaves it.
Bytes with_open_transaction(const Populated& p) {
  Bytes image = p.image;
  BufferRegion region(image, false);
  auto journal = journal::Journal::open(region, p.layout.journal_offset, p.layout.journal_bytes);
  REQUIRE(journal);
  auto txn = journal.value()->begin();
  Inode readme = p.inode(p.readme);
  readme.nlink = 7;
  format::seal(readme);
  REQUIRE(txn->put(p.inode_offset(p.readme), readme));
  Inode big = p.inode(p.big);
  big.nlink = 9;
  format::seal(big);
  REQUIRE(txn->put(p.inode_offset(p.big), big));
  Bytes open = image;  // the kill: what is in the region now
  txn->abort();
  return open;
}

TEST_CASE("an open transaction is checked as rolled back; a damaged undo record is found and repaired",
          "[repair]") {
  const Populated& p = populated();
  Bytes open = with_open_transaction(p);
  // A transaction a kill left open is no damage: the check reads the region
  // as the mount's rollback will leave it.
  auto open_report = check(open);
  INFO(describe(open_report));
  CHECK(open_report.clean());
  CHECK(open_report.rolled_back_sequence != 0);
  CHECK(open_report.rolled_back_records == 2);
  // A damaged record ends the log as a torn one does (mount cannot tell
  // them apart), so the changes it covered stay: the check finds them.
  const uint64_t first_record = p.layout.journal_offset + format::kJournalRecordsOffset;
  Bytes damaged = open;
  damaged[first_record + sizeof(format::UndoRecordHeader) + 5] ^= std::byte{0x40};
  auto report = check(damaged);
  INFO(describe(report));
  CHECK(has_code(report, "LINK_COUNT"));
  expect_repaired(damaged, "LINK_COUNT");
  // Undamaged, the roll back restores both inodes exactly.
  auto recovered = repair(open);
  CHECK(recovered.recovered_sequence != 0);
  CHECK(recovered.recovered_records == 2);
  CHECK(get<Inode>(open, p.inode_offset(p.readme)).nlink == 2);
  CHECK(check(open).clean());
}

TEST_CASE("repair fixes resealed damage: counts, entries, tree, space, holds", "[repair]") {
  struct Case {
    const char* name;
    const char* code;
    unsigned touches;
    std::function<void(Damaged&)> damage;
  };
  const std::vector<Case> cases = {
      {"wrong link count", "LINK_COUNT", kNone,
       [](Damaged& d) {
         Inode inode = d.inode(d.p.readme);
         inode.nlink = 3;
         d.put_inode(inode);
       }},
      {"wrong directory nlink", "LINK_COUNT", kNone,
       [](Damaged& d) {
         Inode inode = d.inode(d.p.docs);
         inode.nlink = 7;
         d.put_inode(inode);
       }},
      {"entry type mismatch", "DIRENT_TYPE", kNone,
       [](Damaged& d) {
         uint64_t slot = d.p.dirent_slot(d.p.docs, "readme");
         Dirent dirent = d.dirent(slot);
         dirent.file_type = DT_DIR;
         d.put_dirent(slot, dirent);
       }},
      {"entry naming a free inode", "DIRENT_CHILD", kNone,
       [](Damaged& d) {
         uint64_t slot = d.p.dirent_slot(d.p.sub, "fifo");
         Dirent dirent = d.dirent(slot);
         dirent.ino = d.superblock().inode_high_water - 1 + 100;
         d.put_dirent(slot, dirent);
       }},
      {"entry in a non-directory", "DIRENT_PARENT", kNone,
       [](Damaged& d) {
         uint64_t slot = d.p.dirent_slot(d.p.sub, "fifo");
         Dirent dirent = d.dirent(slot);
         dirent.parent_ino = d.p.big;
         d.put_dirent(slot, dirent);
       }},
      {"duplicate name", "DIRENT_DUPLICATE", kNone,
       [](Damaged& d) {
         uint64_t slot = d.p.dirent_slot(d.p.sub, "fifo");
         Dirent dirent = d.dirent(slot);
         dirent.parent_ino = format::kRootIno;
         dirent.name_length = 3;
         std::memset(dirent.name, 0, sizeof dirent.name);
         std::memcpy(dirent.name, "big", 3);
         d.put_dirent(slot, dirent);
       }},
      {"wrong parent field", "DIR_PARENT", kNone,
       [](Damaged& d) {
         Inode inode = d.inode(d.p.sub);
         inode.parent = format::kRootIno;
         d.put_inode(inode);
       }},
      {"directory cycle", "DIR_CYCLE", kNone,
       [](Damaged& d) {
         uint64_t slot = d.p.dirent_slot(format::kRootIno, "docs");
         Dirent dirent = d.dirent(slot);
         dirent.parent_ino = d.p.sub;
         d.put_dirent(slot, dirent);
         Inode docs = d.inode(d.p.docs);
         docs.parent = d.p.sub;
         d.put_inode(docs);
       }},
      {"unreachable inode", "UNREACHABLE", kNone,
       [](Damaged& d) { put_raw(d.image, d.p.dirent_offset(d.p.dirent_slot(d.p.sub, "fifo")), Dirent{}); }},
      {"leaked chunk", "SPACE_LEAKED", kNone,
       [](Damaged& d) {
         auto map = d.map();
         map.state[d.p.chunk_in_state(format::kChunkFreeZero)] = format::kChunkUsed;
         d.put_map(map);
       }},
      {"leaked split block", "SPACE_LEAKED", kNone,
       [](Damaged& d) {
         uint64_t chunk = d.p.chunk_in_state(format::kChunkSplit);
         auto header = get<format::SplitHeader>(d.image, chunk * format::kChunkSize);
         header.bitmap[7] |= uint64_t{1} << 63;
         header.used_blocks = static_cast<uint16_t>(header.used_blocks + 1);
         put_sealed(d.image, chunk * format::kChunkSize, header);
       }},
      {"extent on a free block", "EXTENT_SPACE", kNone,
       [](Damaged& d) {
         Inode readme = d.inode(d.p.readme);
         uint64_t block = readme.extents[0].region_block;
         uint64_t chunk = block / format::kBlocksPerChunk, bit = block % format::kBlocksPerChunk;
         auto header = get<format::SplitHeader>(d.image, chunk * format::kChunkSize);
         header.bitmap[bit / 64] &= ~(uint64_t{1} << (bit % 64));
         header.used_blocks = static_cast<uint16_t>(header.used_blocks - 1);
         put_sealed(d.image, chunk * format::kChunkSize, header);
       }},
      {"space claimed twice", "SPACE_CLAIMED_TWICE", kNone,
       [](Damaged& d) {
         Inode link = d.inode(d.p.link);
         link.extents[0].region_block = d.inode(d.p.readme).extents[0].region_block;
         d.put_inode(link);
       }},
      {"large extent on a free chunk", "CHUNK_STATE", kNone,
       [](Damaged& d) {
         auto map = d.map();
         map.state[d.inode(d.p.big).extents[0].region_block / format::kBlocksPerChunk] =
             format::kChunkFreeDirty;
         d.put_map(map);
       }},
      {"extent chain cycle", "EXTENT_CHAIN", kMany,
       [](Damaged& d) {
         uint64_t at = d.inode(d.p.many).extent_block;
         auto block = get<format::ExtentBlock>(d.image, at);
         block.next = at;
         put_sealed(d.image, at, block);
       }},
      {"extent block of another inode", "EXTENT_BLOCK_OWNER", kMany,
       [](Damaged& d) {
         uint64_t at = d.inode(d.p.many).extent_block;
         auto block = get<format::ExtentBlock>(d.image, at);
         block.owner_ino = d.p.readme;
         put_sealed(d.image, at, block);
       }},
      {"extent count", "EXTENT_COUNT", kMany,
       [](Damaged& d) {
         Inode many = d.inode(d.p.many);
         many.extent_count -= 1;
         d.put_inode(many);
       }},
      {"unsorted extents", "EXTENT_ORDER", kNone,
       [](Damaged& d) {
         Inode many = d.inode(d.p.many);
         std::swap(many.extents[1], many.extents[2]);
         d.put_inode(many);
       }},
      {"extent outside the data area", "EXTENT_INVALID", kReadme,
       [](Damaged& d) {
         Inode readme = d.inode(d.p.readme);
         readme.extents[0].region_block = 3;
         d.put_inode(readme);
       }},
      {"allocated blocks", "INODE_BLOCKS", kNone,
       [](Damaged& d) {
         Inode readme = d.inode(d.p.readme);
         readme.allocated_blocks += 1;
         d.put_inode(readme);
       }},
      {"symlink without target", "SYMLINK_INVALID", kNone,
       [](Damaged& d) {
         Inode link = d.inode(d.p.link);
         link.size = 0;
         d.put_inode(link);
       }},
      {"metadata chunk marked free", "CHUNK_STATE", kNone,
       [](Damaged& d) {
         auto map = d.map();
         map.state[0] = format::kChunkFreeDirty;
         d.put_map(map);
       }},
      {"backup with another uuid", "BACKUP_SUPERBLOCK_MISMATCH", kNone,
       [](Damaged& d) {
         auto backup = get<format::Superblock>(d.image, d.p.layout.backup_offset);
         backup.uuid[0] ^= 1;
         put_sealed(d.image, d.p.layout.backup_offset, backup);
       }},
      {"hold on a free inode", "HOLD_INODE", kNone,
       [](Damaged& d) {
         format::Hold hold = make_hold(d.p, d.p.readme);
         hold.ino = d.superblock().inode_high_water + 1;
         put_sealed(d.image, d.p.hold_offset(2), hold);
       }},
      {"recorded errors", "SUPERBLOCK_ERRORS", kNone,
       [](Damaged& d) {
         format::Superblock sb = d.superblock();
         sb.state |= format::kStateError;
         sb.error_count = 1;
         d.put_superblock(sb);
       }},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Damaged d(populated());
    c.damage(d);
    expect_repaired(d.image, c.code, c.touches);
  }
}

TEST_CASE("check and repair report an inode's field rules in the same words", "[repair]") {
  Damaged d(populated());
  Inode fifo = d.inode(d.p.fifo);
  fifo.size = 5;
  fifo.rdev = 7;
  fifo.reserved0 = 1;
  d.put_inode(fifo);
  auto before = check(d.image);
  INFO("before: " << describe(before));
  auto repaired = repair(d.image);
  INFO("repair: " << describe(repaired));
  const std::string who = "inode " + std::to_string(d.p.fifo) + " (/docs/sub/fifo): ";
  const std::vector<std::pair<std::string, std::string>> expected = {
      {who + "a fifo has size 5", "set to 0"},
      {who + "a fifo has a device number", "cleared"},
      {who + "reserved field is not zero", "zeroed"},
  };
  for (const auto& [problem, fix] : expected) {
    CHECK(std::ranges::any_of(before.problems, [&](const auto& found) {
      return found.code == "INODE_INVALID" && found.message == problem;
    }));
    CHECK(std::ranges::any_of(repaired.actions, [&](const fsck::RepairAction& action) {
      return action.code == "INODE_INVALID" && action.message == problem + "; " + fix && !action.safe;
    }));
  }
  CHECK(repaired.applied);
  CHECK(check(d.image).clean());
}

TEST_CASE("check and repair report a superblock's field rules in the same words", "[repair]") {
  Damaged d(populated());
  format::Superblock sb = d.superblock();
  std::memset(sb.label, 0, sizeof sb.label);
  std::memcpy(sb.label, "ab\0c", 4);
  sb.reserved0 = 1;
  d.put_superblock(sb);
  auto before = check(d.image);
  INFO("before: " << describe(before));
  auto repaired = repair(d.image);
  INFO("repair: " << describe(repaired));
  const std::vector<std::tuple<std::string, std::string, bool>> expected = {
      {"superblock: label is not NUL-padded", "padded with NULs", false},
      {"superblock: reserved fields are not zero", "zeroed", true},
  };
  for (const auto& [problem, fix, safe] : expected) {
    CHECK(std::ranges::any_of(before.problems, [&](const auto& found) {
      return found.code == "SUPERBLOCK_INVALID" && found.message == problem;
    }));
    CHECK(std::ranges::any_of(repaired.actions, [&](const fsck::RepairAction& action) {
      return action.code == "SUPERBLOCK_INVALID" && action.message == problem + "; " + fix &&
             action.safe == safe;
    }));
  }
  CHECK(repaired.applied);
  CHECK(check(d.image).clean());
  CHECK(std::string(get<format::Superblock>(d.image, 0).label) == "ab");
}

TEST_CASE("repaired inodes that nothing names go to lost+found", "[repair]") {
  const Populated& p = populated();
  Bytes image = p.image;
  put_raw(image, p.dirent_offset(p.dirent_slot(p.sub, "fifo")), Dirent{});
  put_raw(image, p.dirent_offset(p.dirent_slot(format::kRootIno, "docs")), Dirent{});
  auto report = repair(image);
  INFO(describe(report));
  CHECK(has_action(report, "LOST_FOUND"));
  CHECK(check(image).clean());
  auto opened = Filesystem::open(view(image));
  REQUIRE(opened);
  Filesystem& fs = *opened.value();
  auto lost = fs.lookup(format::kRootIno, "lost+found");
  REQUIRE(lost);
  CHECK(lost->mode == (S_IFDIR | 0700));
  CHECK(lost->uid == 0);
  auto docs = fs.lookup(lost->ino, "#" + std::to_string(p.docs));
  REQUIRE(docs);
  // The fifo's directory (sub) came back with docs; the fifo itself has
  // its own entry in lost+found.
  CHECK(fs.lookup(lost->ino, "#" + std::to_string(p.fifo)));
  expect_content(fs, p.readme, 0, 10000, 1);
  auto readme = fs.lookup(docs->ino, "readme");
  REQUIRE(readme);
  CHECK(readme->nlink == 2);
}

TEST_CASE("preen repairs what is safe and nothing when a decision is needed", "[repair]") {
  const Populated& p = populated();
  // Safe: a leaked chunk and a wrong link count.
  Damaged safe(p);
  auto map = safe.map();
  map.state[p.chunk_in_state(format::kChunkFreeZero)] = format::kChunkUsed;
  safe.put_map(map);
  Inode readme = safe.inode(p.readme);
  readme.nlink = 5;
  safe.put_inode(readme);
  auto preened = repair(safe.image, fsck::RepairMode::kPreen);
  INFO(describe(preened));
  CHECK(preened.applied);
  CHECK(preened.unsafe_count() == 0);
  CHECK(check(safe.image).clean());

  // A damaged inode needs -y: -p changes nothing.
  Bytes image = p.image;
  image[p.inode_offset(p.readme) + offsetof(Inode, size)] ^= std::byte{0x40};
  const Bytes before = image;
  auto blocked = repair(image, fsck::RepairMode::kPreen);
  INFO(describe(blocked));
  CHECK_FALSE(blocked.applied);
  CHECK(blocked.unsafe_count() != 0);
  CHECK(image == before);
  CHECK(repair(image).applied);
  CHECK(check(image).clean());
}

// A crash after any persist of a repair leaves a region that mount refuses
// (or that is already repaired) and that a second repair makes clean.
TEST_CASE("a repair killed at any persist is refused by mount and repaired again", "[repair][crash]") {
  const Populated& p = populated();
  Bytes damaged = p.image;
  damaged[0x38] ^= std::byte{0x40};                                                      // primary superblock
  damaged[p.layout.chunk_map_offset + 0x20] ^= std::byte{0x40};                          // chunk map
  put_raw(damaged, p.dirent_offset(p.dirent_slot(format::kRootIno, "docs")), Dirent{});  // lost+found
  Inode many = p.inode(p.many);
  many.nlink = 9;
  put_sealed(damaged, p.inode_offset(p.many), many);  // a count

  auto counting = std::make_shared<FaultState>();
  {
    FaultRegion region(damaged, counting);
    REQUIRE(fsck::repair_region(region));
  }
  const uint64_t persists = counting->persists;
  REQUIRE(persists > 5);
  for (uint64_t n = 1; n <= persists; ++n) {
    INFO("crash after persist " << n << " of " << persists);
    auto state = std::make_shared<FaultState>();
    state->crash_at = n;
    {
      FaultRegion region(damaged, state);
      REQUIRE(fsck::repair_region(region));
    }
    REQUIRE(state->crash_image);
    Bytes image = std::move(*state->crash_image);
    {
      auto opened = Filesystem::open(copy_of(image));
      if (opened) {
        // Only the finished repair may mount.
        auto report = fsck::check_region(opened.value()->region());
        REQUIRE(report);
        INFO(describe(*report));
        CHECK(report->clean());
      }
    }
    auto again = repair(image);
    INFO(describe(again));
    auto after = check(image);
    INFO(describe(after));
    CHECK(after.clean());
    auto opened = Filesystem::open(view(image));
    REQUIRE(opened);
    expect_content(*opened.value(), p.big, 1 << 20, 100000, 3);
  }
}

TEST_CASE("repair of a clean region changes nothing", "[repair]") {
  Bytes image = populated().image;
  const Bytes before = image;
  auto report = repair(image);
  INFO(describe(report));
  CHECK(report.actions.empty());
  CHECK(image == before);
}

}  // namespace
