// tests/unit/format_test.cpp: behaviour of fs/format (checksums, struct
// sizes, layout arithmetic, superblock and structure validation, the
// compatibility decision and UUID text). Pure computation: no region.
#include "fs/format/format.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace pkfs;
using namespace pkfs::format;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kTiB = uint64_t{1} << 40;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Fills every byte of `value` with deterministic noise.
template <typename T>
void fill_noise(T& value, uint64_t seed) {
  std::mt19937_64 random(seed);
  auto* bytes = reinterpret_cast<unsigned char*>(&value);
  for (size_t i = 0; i < sizeof(T); ++i) bytes[i] = static_cast<unsigned char>(random());
}

// Seals `value`, then flips each byte in turn and returns the offsets whose
// flip checksum_ok() did not notice (it must notice every byte up to and
// including the checksum field).
template <typename T>
std::vector<size_t> undetected_flips(T value) {
  seal(value);
  std::vector<size_t> missed;
  if (!checksum_ok(value)) {
    missed.push_back(SIZE_MAX);  // the round trip itself failed
    return missed;
  }
  auto* bytes = reinterpret_cast<unsigned char*>(&value);
  const size_t covered_end = offsetof(T, checksum) + sizeof(uint64_t);
  for (size_t i = 0; i < covered_end; ++i) {
    bytes[i] ^= 0x5a;
    if (checksum_ok(value)) missed.push_back(i);
    bytes[i] ^= 0x5a;
  }
  if (!checksum_ok(value)) missed.push_back(SIZE_MAX - 1);  // flips were not undone
  return missed;
}

template <typename T>
std::vector<size_t> undetected_flips_of_noise(uint64_t seed) {
  T value;
  fill_noise(value, seed);
  return undetected_flips(value);
}

// A superblock describing `layout`, as mkfs writes it.
Superblock superblock_for(const Layout& layout) { return make_superblock(layout); }

Layout layout_of(uint64_t bytes, const LayoutOptions& options = {}) {
  auto layout = compute_layout(bytes, options);
  REQUIRE(layout.ok());
  return layout.value();
}

Inode valid_inode(uint64_t slot) {
  Inode inode{};
  inode.tag = kInodeTag;
  inode.version = 1;
  inode.ino = slot;
  inode.generation = 1;
  inode.mode = S_IFREG | 0644;
  inode.nlink = 1;
  inode.size = 5000;
  inode.extent_count = 1;
  inode.extents[0] = Extent{0, 4096, 2};
  inode.allocated_blocks = 2;
  seal(inode);
  return inode;
}

Dirent valid_dirent(std::string_view name) {
  Dirent dirent{};
  dirent.tag = kDirentTag;
  dirent.version = 1;
  dirent.file_type = 8;  // DT_REG
  dirent.name_length = static_cast<uint8_t>(name.size());
  dirent.parent_ino = kRootIno;
  dirent.ino = 7;
  std::memcpy(dirent.name, name.data(), name.size());
  seal(dirent);
  return dirent;
}

}  // namespace

// ---------------------------------------------------------------------------
// Checksums and sizes.

TEST_CASE("xxh3 of empty input with seed 0 is the published value", "[format]") {
  CHECK(xxh3(nullptr, 0) == 0x2D06800538D394C2ull);
  CHECK(xxh3("", 0, 0) == 0x2D06800538D394C2ull);
  CHECK(kChecksumSeed == 0);
}

TEST_CASE("xxh3 depends on every byte and on the seed", "[format]") {
  const char text[] = "pkfs";
  uint64_t base = xxh3(text, 4);
  CHECK(base != xxh3(text, 3));
  CHECK(base != xxh3(text, 4, 1));
  CHECK(base == xxh3(text, 4, kChecksumSeed));
}

TEST_CASE("every on-region struct has its documented size", "[format]") {
  CHECK(sizeof(Superblock) == 512);
  CHECK(sizeof(JournalHeader) == 80);
  CHECK(sizeof(UndoRecordHeader) == 32);
  CHECK(sizeof(Extent) == 16);
  CHECK(sizeof(Inode) == 256);
  CHECK(sizeof(ExtentBlock) == kBlockSize);
  CHECK(sizeof(Dirent) == 288);
  CHECK(sizeof(ChunkMapBlock) == kBlockSize);
  CHECK(sizeof(SplitHeader) == 88);
  CHECK(sizeof(XattrEntryHeader) == 4);
  CHECK(sizeof(XattrBlock) == kBlockSize);
  CHECK(sizeof(Hold) == 64);
  CHECK(undo_record_bytes(1) == 32 + 8 + 8);
  CHECK(undo_record_bytes(8) == 32 + 8 + 8);
  CHECK(undo_record_bytes(9) == 32 + 16 + 8);
  CHECK(kBlocksPerChunk == 512);
  CHECK(kChunksPerGigabyte == 512);
}

TEST_CASE("tags read as ASCII in a little-endian dump", "[format]") {
  uint32_t tag = kInodeTag;
  char text[4];
  std::memcpy(text, &tag, 4);
  CHECK(std::string(text, 4) == "INOD");
  uint64_t magic = kSuperblockMagic;
  char magic_text[8];
  std::memcpy(magic_text, &magic, 8);
  CHECK(std::string(magic_text, 8) == "PKFSSUPR");
}

TEST_CASE("seal and checksum_ok round trip and catch every single-byte flip", "[format]") {
  CHECK(undetected_flips_of_noise<Superblock>(1).empty());
  CHECK(undetected_flips_of_noise<JournalHeader>(2).empty());
  CHECK(undetected_flips_of_noise<Inode>(3).empty());
  CHECK(undetected_flips_of_noise<ExtentBlock>(4).empty());
  CHECK(undetected_flips_of_noise<Dirent>(5).empty());
  CHECK(undetected_flips_of_noise<ChunkMapBlock>(6).empty());
  CHECK(undetected_flips_of_noise<SplitHeader>(7).empty());
  CHECK(undetected_flips_of_noise<XattrBlock>(8).empty());
  CHECK(undetected_flips_of_noise<Hold>(9).empty());
}

TEST_CASE("journal commit words lie outside the journal header checksum", "[format]") {
  JournalHeader header{};
  header.tag = kJournalTag;
  header.version = 1;
  header.journal_bytes = kMiB;
  seal(header);
  header.last_sequence = 77;
  header.open_sequence = 77;
  CHECK(checksum_ok(header));
  header.journal_bytes += kBlockSize;
  CHECK_FALSE(checksum_ok(header));
}

TEST_CASE("a zero checksum field does not pass for non-zero content", "[format]") {
  Inode inode = valid_inode(5);
  inode.checksum = 0;
  CHECK_FALSE(checksum_ok(inode));
}

// ---------------------------------------------------------------------------
// Layout.

TEST_CASE("compute_layout places every area in order, aligned, inside the region", "[format]") {
  const uint64_t bytes = GENERATE(16 * kMiB, 256 * kMiB, kGigabyte, kTiB, 16 * kMiB + kMiB + 4096);
  CAPTURE(bytes);
  Layout l = layout_of(bytes);

  CHECK(l.chunk_count == bytes / kChunkSize);
  CHECK(l.region_bytes == l.chunk_count * kChunkSize);
  CHECK(l.region_bytes <= bytes);

  // Ascending, non-overlapping areas after the superblock block.
  CHECK(l.journal_offset == kBlockSize);
  CHECK(l.journal_offset + l.journal_bytes <= l.inode_table_offset);
  CHECK(l.inode_table_offset + l.inode_count * sizeof(Inode) <= l.dirent_table_offset);
  CHECK(l.dirent_table_offset + l.dirent_count * sizeof(Dirent) <= l.chunk_map_offset);
  CHECK(l.chunk_map_offset + l.chunk_map_blocks * kBlockSize <= l.hold_table_offset);
  CHECK(l.hold_table_offset + l.hold_count * sizeof(Hold) <= l.data_offset);
  CHECK(l.data_offset < l.backup_offset);

  for (uint64_t offset : {l.journal_offset, l.inode_table_offset, l.dirent_table_offset, l.chunk_map_offset,
                          l.hold_table_offset, l.data_offset, l.backup_offset}) {
    CHECK(offset % kBlockSize == 0);
  }
  CHECK(l.data_offset % kChunkSize == 0);
  CHECK(l.metadata_chunks == l.data_offset / kChunkSize);

  // The backup superblock is the last block of the last chunk.
  CHECK(l.backup_offset == l.region_bytes - kBlockSize);
  CHECK(l.backup_offset / kChunkSize == l.chunk_count - 1);
  CHECK(l.backup_offset == backup_superblock_offset(bytes));

  CHECK(l.chunk_map_blocks * kChunksPerMapBlock >= l.chunk_count);
  CHECK((l.chunk_map_blocks - 1) * kChunksPerMapBlock < l.chunk_count);
  CHECK(l.dirent_count == l.inode_count + l.inode_count / 4);
  CHECK(l.hold_count == 1024);
  CHECK(l.usable_bytes == (l.chunk_count - l.metadata_chunks - 1) * kChunkSize);
  CHECK(l.usable_bytes >= 2 * kChunkSize);
}

TEST_CASE("compute_layout defaults scale with the region", "[format]") {
  // Usable inodes: one per 64 KiB, 1024 to 4 Mi; the table has one slot more.
  // Journal: 1 MiB (4 MiB from 4 GiB) plus twice the chunk map.
  Layout small = layout_of(16 * kMiB);
  CHECK(small.inode_count == 1024 + 1);
  CHECK(small.journal_bytes == kMiB + 2 * small.chunk_map_blocks * kBlockSize);
  CHECK(small.chunk_count == 8);
  CHECK(small.metadata_chunks == 1);
  CHECK(small.usable_bytes == 6 * kChunkSize);

  Layout medium = layout_of(256 * kMiB);
  CHECK(medium.inode_count == 4096 + 1);
  CHECK(medium.journal_bytes == kMiB + 2 * medium.chunk_map_blocks * kBlockSize);

  Layout gigabyte = layout_of(kGigabyte);
  CHECK(gigabyte.inode_count == 16384 + 1);
  CHECK(gigabyte.journal_bytes == kMiB + 2 * gigabyte.chunk_map_blocks * kBlockSize);

  Layout four = layout_of(4 * kGigabyte);
  CHECK(four.journal_bytes == 4 * kMiB + 2 * four.chunk_map_blocks * kBlockSize);

  Layout large = layout_of(kTiB);
  CHECK(large.inode_count == (4ull << 20) + 1);
  CHECK(large.chunk_map_blocks == (large.chunk_count + kChunksPerMapBlock - 1) / kChunksPerMapBlock);
  CHECK(large.journal_bytes == 4 * kMiB + 2 * large.chunk_map_blocks * kBlockSize);
}

TEST_CASE("the default journal holds an undo image of every chunk-map block", "[format]") {
  const uint64_t bytes = GENERATE(16 * kMiB, kTiB, kMaxRegionBytes);
  CAPTURE(bytes);
  Layout l = layout_of(bytes);
  CHECK(l.journal_bytes - kJournalRecordsOffset >= l.chunk_map_blocks * undo_record_bytes(kBlockSize));
}

TEST_CASE("compute_layout honours explicit inode, journal and hold counts", "[format]") {
  LayoutOptions options;
  options.inode_count = 100;
  options.journal_bytes = kMinJournalBytes;
  options.hold_count = 10;
  Layout l = layout_of(64 * kMiB, options);
  CHECK(l.inode_count == 101);  // slot 0 is never used
  CHECK(l.journal_bytes == kMinJournalBytes);
  CHECK(l.hold_count == 10);
}

TEST_CASE("compute_layout accepts the largest region and nothing larger", "[format]") {
  CHECK(compute_layout(kMaxRegionBytes, {}).ok());
  auto too_large = compute_layout(kMaxRegionBytes + kChunkSize, {});
  REQUIRE_FALSE(too_large.ok());
  CHECK(too_large.error().code() == EINVAL);
  CHECK(contains(too_large.error().message(), "too large"));
}

TEST_CASE("compute_layout refuses regions that are too small", "[format]") {
  for (uint64_t bytes : {uint64_t{0}, uint64_t{4096}, 16 * kMiB - 4096}) {
    CAPTURE(bytes);
    auto layout = compute_layout(bytes, {});
    REQUIRE_FALSE(layout.ok());
    CHECK(layout.error().code() == EINVAL);
    CHECK(contains(layout.error().message(), "too small"));
  }
}

TEST_CASE("compute_layout refuses bad journal sizes", "[format]") {
  for (uint64_t journal : {uint64_t{64} * 1024, kMinJournalBytes - kBlockSize, kMinJournalBytes + 100,
                           uint64_t{256 * kMiB + 4096}}) {
    CAPTURE(journal);
    LayoutOptions options;
    options.journal_bytes = journal;
    auto layout = compute_layout(kGigabyte, options);
    REQUIRE_FALSE(layout.ok());
    CHECK(layout.error().code() == EINVAL);
    CHECK(contains(layout.error().message(), "journal"));
  }
  LayoutOptions smallest;
  smallest.journal_bytes = kMinJournalBytes;
  CHECK(compute_layout(kGigabyte, smallest).ok());
  smallest.journal_bytes = 256 * kMiB;
  CHECK(compute_layout(kGigabyte, smallest).ok());
}

TEST_CASE("compute_layout refuses bad inode and hold counts", "[format]") {
  LayoutOptions options;
  options.inode_count = 14;
  auto too_few = compute_layout(kGigabyte, options);
  REQUIRE_FALSE(too_few.ok());
  CHECK(too_few.error().code() == EINVAL);
  CHECK(contains(too_few.error().message(), "inode count"));

  options.inode_count = 15;
  CHECK(compute_layout(kGigabyte, options).ok());

  options.inode_count = kMaxInodes + 1;
  auto too_many = compute_layout(kTiB, options);
  REQUIRE_FALSE(too_many.ok());
  CHECK(too_many.error().code() == EINVAL);
  CHECK(contains(too_many.error().message(), "inode count"));

  LayoutOptions holds;
  holds.hold_count = 0;
  auto no_holds = compute_layout(kGigabyte, holds);
  REQUIRE_FALSE(no_holds.ok());
  CHECK(no_holds.error().code() == EINVAL);
  holds.hold_count = 65537;
  CHECK(compute_layout(kGigabyte, holds).error().code() == EINVAL);
}

TEST_CASE("compute_layout refuses metadata that leaves no room for data", "[format]") {
  LayoutOptions options;
  options.inode_count = 100000;  // 25 MiB of inodes alone
  auto layout = compute_layout(16 * kMiB, options);
  REQUIRE_FALSE(layout.ok());
  CHECK(layout.error().code() == EINVAL);
  CHECK(contains(layout.error().message(), "no room for data"));
}

TEST_CASE("layout_from_superblock returns the layout mkfs computed", "[format]") {
  const uint64_t bytes = GENERATE(16 * kMiB, 256 * kMiB, kTiB);
  CAPTURE(bytes);
  Layout expected = layout_of(bytes);
  auto layout = layout_from_superblock(superblock_for(expected), bytes);
  REQUIRE(layout.ok());
  CHECK(std::memcmp(&layout.value(), &expected, sizeof expected) == 0);
  // A backing larger than the region (trailing bytes) is fine.
  CHECK(layout_from_superblock(superblock_for(expected), bytes + kChunkSize + 4096).ok());
}

TEST_CASE("layout_from_superblock rejects each tampered field", "[format]") {
  const uint64_t bytes = 256 * kMiB;
  const Layout layout = layout_of(bytes);
  const Superblock good = superblock_for(layout);
  REQUIRE(layout_from_superblock(good, bytes).ok());

  struct Tamper {
    const char* field;
    void (*apply)(Superblock&);
  };
  const Tamper tampers[] = {
      {"region_bytes", [](Superblock& sb) { sb.region_bytes += kChunkSize; }},
      {"region_bytes", [](Superblock& sb) { sb.region_bytes -= kChunkSize; }},
      {"region_bytes", [](Superblock& sb) { sb.region_bytes -= 4096; }},
      {"chunk_count", [](Superblock& sb) { sb.chunk_count -= 1; }},
      {"journal_offset", [](Superblock& sb) { sb.journal_offset += kBlockSize; }},
      {"journal_bytes", [](Superblock& sb) { sb.journal_bytes += kBlockSize; }},
      {"journal_bytes", [](Superblock& sb) { sb.journal_bytes = 1000; }},
      {"inode_table_offset", [](Superblock& sb) { sb.inode_table_offset += kBlockSize; }},
      {"inode_count", [](Superblock& sb) { sb.inode_count += 4; }},
      {"inode_count", [](Superblock& sb) { sb.inode_count = 3; }},
      {"inode_count", [](Superblock& sb) { sb.inode_count = uint64_t{1} << 40; }},
      {"dirent_table_offset", [](Superblock& sb) { sb.dirent_table_offset += kBlockSize; }},
      {"dirent_count", [](Superblock& sb) { sb.dirent_count += 1; }},
      {"chunk_map_offset", [](Superblock& sb) { sb.chunk_map_offset += kBlockSize; }},
      {"chunk_map_blocks", [](Superblock& sb) { sb.chunk_map_blocks += 1; }},
      {"hold_table_offset", [](Superblock& sb) { sb.hold_table_offset += kBlockSize; }},
      {"hold_count", [](Superblock& sb) { sb.hold_count = 0; }},
      {"data_offset", [](Superblock& sb) { sb.data_offset += kChunkSize; }},
      {"backup_offset", [](Superblock& sb) { sb.backup_offset -= kBlockSize; }},
      {"block_size", [](Superblock& sb) { sb.block_size = 8192; }},
      {"chunk_size", [](Superblock& sb) { sb.chunk_size = kChunkSize * 2; }},
      {"root_ino", [](Superblock& sb) { sb.root_ino = 2; }},
      {"inode_high_water", [](Superblock& sb) { sb.inode_high_water = 1; }},
      {"inode_high_water", [](Superblock& sb) { sb.inode_high_water = sb.inode_count + 1; }},
      {"dirent_high_water", [](Superblock& sb) { sb.dirent_high_water = sb.dirent_count + 1; }},
  };
  for (const Tamper& tamper : tampers) {
    Superblock sb = good;
    tamper.apply(sb);
    seal(sb);
    // The backing is large enough for any region the tampered field claims,
    // except where region_bytes itself grows past it.
    auto result = layout_from_superblock(sb, bytes);
    INFO("tampered field: " << tamper.field);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code() == EUCLEAN);
    if (std::string(tamper.field) != "region_bytes" && std::string(tamper.field) != "journal_bytes" &&
        std::string(tamper.field) != "inode_count" && std::string(tamper.field) != "hold_count") {
      CHECK(contains(result.error().message(), tamper.field));
    }
  }
}

TEST_CASE("layout_from_superblock rejects region_bytes that is not a whole number of chunks", "[format]") {
  // region_bytes is documented as chunk_count * kChunkSize; a backing with
  // room to spare must not hide a region_bytes that is off by a block.
  const uint64_t bytes = 256 * kMiB;
  const Layout layout = layout_of(bytes);
  Superblock sb = superblock_for(layout);
  sb.region_bytes += kBlockSize;
  seal(sb);
  auto result = layout_from_superblock(sb, bytes + kChunkSize);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code() == EUCLEAN);
}

TEST_CASE("layout_from_superblock names a truncated backing", "[format]") {
  const Layout layout = layout_of(256 * kMiB);
  auto result = layout_from_superblock(superblock_for(layout), 128 * kMiB);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code() == EUCLEAN);
  CHECK(contains(result.error().message(), "truncated"));
}

TEST_CASE("layout_from_superblock accepts high water marks at their limits", "[format]") {
  const Layout layout = layout_of(16 * kMiB);
  Superblock sb = superblock_for(layout);
  sb.inode_high_water = sb.inode_count;
  sb.dirent_high_water = sb.dirent_count;
  seal(sb);
  CHECK(layout_from_superblock(sb, 16 * kMiB).ok());
}

// ---------------------------------------------------------------------------
// Compatibility and superblock verification.

TEST_CASE("check_compatibility decides by feature class and version", "[format]") {
  const Superblock good = superblock_for(layout_of(16 * kMiB));
  CHECK(check_compatibility(good).access == Access::kReadWrite);
  CHECK(check_compatibility(good).reason.empty());

  Superblock sb = good;
  sb.feature_incompat = 2;  // bit 0 is PageLayout, known
  Compatibility incompat = check_compatibility(sb);
  CHECK(incompat.access == Access::kRefuse);
  CHECK(contains(incompat.reason, "incompatible"));
  CHECK(contains(incompat.reason, "0x2"));

  sb = good;
  sb.feature_ro_compat = 4;
  Compatibility ro = check_compatibility(sb);
  CHECK(ro.access == Access::kReadOnly);
  CHECK(contains(ro.reason, "read-only"));
  CHECK(contains(ro.reason, "0x4"));

  sb = good;
  sb.feature_compat = uint64_t{1} << 63;
  CHECK(check_compatibility(sb).access == Access::kReadWrite);

  sb = good;
  sb.feature_ro_compat = 2;
  sb.feature_incompat = 2;  // incompat wins over ro_compat
  CHECK(check_compatibility(sb).access == Access::kRefuse);

  sb = good;
  sb.format_version = kFormatVersion + 1;
  Compatibility newer = check_compatibility(sb);
  CHECK(newer.access == Access::kRefuse);
  CHECK(contains(newer.reason, "version 2"));
}

TEST_CASE("verify_superblock accepts a sealed superblock", "[format]") {
  CHECK(verify_superblock(superblock_for(layout_of(16 * kMiB))).ok());
}

TEST_CASE("verify_superblock explains what is wrong", "[format]") {
  const Superblock good = superblock_for(layout_of(16 * kMiB));

  Superblock zero{};
  auto empty = verify_superblock(zero);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code() == ENODATA);
  CHECK(contains(empty.error().message(), "no pkfs superblock"));

  Superblock sb = good;
  sb.format_version = 2;
  seal(sb);
  auto newer = verify_superblock(sb);
  REQUIRE_FALSE(newer.ok());
  CHECK(newer.error().code() == EPROTONOSUPPORT);
  CHECK(contains(newer.error().message(), "format version 2 is newer than this pkfs"));
  CHECK(contains(newer.error().message(), "(1)"));

  sb = good;
  sb.format_version = 0;
  seal(sb);
  auto zero_version = verify_superblock(sb);
  REQUIRE_FALSE(zero_version.ok());
  CHECK(zero_version.error().code() == EUCLEAN);
  CHECK(contains(zero_version.error().message(), "version 0"));

  sb = good;
  sb.superblock_bytes = 256;
  seal(sb);
  auto size = verify_superblock(sb);
  REQUIRE_FALSE(size.ok());
  CHECK(size.error().code() == EUCLEAN);
  CHECK(contains(size.error().message(), "size"));

  sb = good;
  sb.mount_count += 1;  // not resealed
  auto checksum = verify_superblock(sb);
  REQUIRE_FALSE(checksum.ok());
  CHECK(checksum.error().code() == EUCLEAN);
  CHECK(contains(checksum.error().message(), "checksum"));
}

// ---------------------------------------------------------------------------
// UUIDs.

TEST_CASE("uuid text round trips", "[format]") {
  uint8_t uuid[16];
  fill_noise(uuid, 42);
  std::string text = uuid_to_string(uuid);
  CHECK(text.size() == 36);
  CHECK(text[8] == '-');
  CHECK(text[13] == '-');
  CHECK(text[18] == '-');
  CHECK(text[23] == '-');
  uint8_t parsed[16] = {};
  REQUIRE(uuid_from_string(text, parsed));
  CHECK(std::memcmp(uuid, parsed, 16) == 0);

  const uint8_t known[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                             0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
  CHECK(uuid_to_string(known) == "01234567-89ab-cdef-fedc-ba9876543210");
  uint8_t upper[16] = {};
  REQUIRE(uuid_from_string("01234567-89AB-CDEF-FEDC-BA9876543210", upper));
  CHECK(std::memcmp(upper, known, 16) == 0);
}

TEST_CASE("uuid parsing refuses malformed text", "[format]") {
  const char* bad[] = {
      "",
      "01234567-89ab-cdef-fedc-ba987654321",    // 35 characters
      "01234567-89ab-cdef-fedc-ba98765432100",  // 37 characters
      "0123456789abcdeffedcba9876543210",       // no dashes
      "01234567-89ab-cdef-fedc_ba9876543210",   // wrong separator
      "0123456-789ab-cdef-fedc-ba9876543210",   // dash misplaced
      "01234567-89ab-cdef-fedc-ba987654321g",   // not hex
      "01234567-89ab-cdef-fedc- a9876543210",   // space
      "{1234567-89ab-cdef-fedc-ba9876543210",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    uint8_t uuid[16] = {};
    CHECK_FALSE(uuid_from_string(text, uuid));
  }
}

// ---------------------------------------------------------------------------
// Structure validators.

TEST_CASE("dirent validator accepts a good entry and rejects bad names", "[format]") {
  std::string what;
  CHECK(dirent_valid(valid_dirent("file.txt"), &what));
  CHECK(dirent_valid(valid_dirent(std::string(255, 'n'))));
  CHECK(dirent_name(valid_dirent("abc")) == "abc");

  for (const char* name : {".", ".."}) {
    CAPTURE(name);
    CHECK_FALSE(dirent_valid(valid_dirent(name), &what));
    CHECK(what == "name is . or ..");
  }
  CHECK_FALSE(dirent_valid(valid_dirent("a/b"), &what));
  CHECK(contains(what, "'/'"));
  CHECK_FALSE(dirent_valid(valid_dirent(std::string("a\0b", 3)), &what));
  CHECK(contains(what, "NUL"));
  CHECK_FALSE(dirent_valid(valid_dirent(""), &what));
  CHECK(what == "empty name");
  // "..." and ".x" are ordinary names.
  CHECK(dirent_valid(valid_dirent("...")));
  CHECK(dirent_valid(valid_dirent(".x")));
}

TEST_CASE("dirent validator rejects bad headers, inode numbers and padding", "[format]") {
  std::string what;
  Dirent dirent = valid_dirent("x");
  dirent.tag = kInodeTag;
  seal(dirent);
  CHECK_FALSE(dirent_valid(dirent, &what));
  CHECK(what == "bad tag");

  dirent = valid_dirent("x");
  dirent.version = 2;
  seal(dirent);
  CHECK_FALSE(dirent_valid(dirent, &what));
  CHECK(contains(what, "version"));

  dirent = valid_dirent("x");
  dirent.ino += 1;  // not resealed
  CHECK_FALSE(dirent_valid(dirent, &what));
  CHECK(what == "checksum mismatch");

  dirent = valid_dirent("x");
  dirent.ino = 0;
  seal(dirent);
  CHECK_FALSE(dirent_valid(dirent, &what));
  dirent = valid_dirent("x");
  dirent.parent_ino = 0;
  seal(dirent);
  CHECK_FALSE(dirent_valid(dirent, &what));
  CHECK(what == "null inode number");

  dirent = valid_dirent("x");
  dirent.name[200] = 'z';
  seal(dirent);
  CHECK_FALSE(dirent_valid(dirent, &what));
  CHECK(contains(what, "padding"));
}

TEST_CASE("free dirent slots are all zero", "[format]") {
  Dirent dirent{};
  CHECK(dirent_is_free(dirent));
  dirent.ino = 1;
  CHECK_FALSE(dirent_is_free(dirent));
  CHECK_FALSE(dirent_is_free(valid_dirent("x")));
}

TEST_CASE("inode validator accepts every known file type and a free slot", "[format]") {
  for (uint32_t type : {S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK}) {
    CAPTURE(type);
    Inode inode = valid_inode(9);
    inode.mode = type | 0640;
    seal(inode);
    CHECK(inode_valid(inode, 9));
  }
  Inode freed{};
  freed.tag = kInodeTag;
  freed.version = 1;
  freed.ino = 9;
  freed.generation = 4;
  seal(freed);
  CHECK(inode_valid(freed, 9));
  CHECK(inode_is_free(freed));
  CHECK(inode_is_free(Inode{}));
  CHECK_FALSE(inode_is_free(valid_inode(9)));
}

TEST_CASE("inode validator rejects bad file types, flags and fields", "[format]") {
  std::string what;
  for (uint32_t type : {0010000u | 0020000u, 0050000u, 0070000u, 0110000u, 0160000u, 0170000u}) {
    CAPTURE(type);
    Inode inode = valid_inode(9);
    inode.mode = type | 0644;
    seal(inode);
    CHECK_FALSE(inode_valid(inode, 9, &what));
    CHECK(what == "unknown file type");
  }

  Inode inode = valid_inode(9);
  inode.flags = 1u << 2;
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(what == "unknown flags");
  inode.flags = kInodeFlagsKnown;
  seal(inode);
  CHECK(inode_valid(inode, 9));

  inode = valid_inode(9);
  CHECK_FALSE(inode_valid(inode, 10, &what));
  CHECK(contains(what, "slot holds inode number 9"));

  inode = valid_inode(9);
  inode.tag = kDirentTag;
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(what == "bad tag");

  inode = valid_inode(9);
  inode.version = 0;
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(contains(what, "version"));

  inode = valid_inode(9);
  inode.nlink = 3;  // not resealed
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(what == "checksum mismatch");

  inode = valid_inode(9);
  inode.size = kMaxFileBytes + 1;
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(what == "size out of range");

  inode = valid_inode(9);
  inode.extent_count = kInlineExtents + 1;
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(contains(what, "extent block"));

  inode = valid_inode(9);
  inode.extent_count = 1;
  inode.extent_block = kBlockSize + 8;
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(contains(what, "not block aligned"));

  inode = valid_inode(9);
  inode.xattr_block = 100;
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(contains(what, "xattr"));

  inode = valid_inode(9);
  inode.extent_count = 2;  // the second inline extent is empty
  seal(inode);
  CHECK_FALSE(inode_valid(inode, 9, &what));
  CHECK(what == "empty inline extent");
}

TEST_CASE("block validators reject bad tags, places and counts", "[format]") {
  std::string what;

  ChunkMapBlock map{};
  map.tag = kChunkMapTag;
  map.version = 1;
  map.first_chunk = kChunksPerMapBlock;
  seal(map);
  CHECK(chunk_map_block_valid(map, 1));
  CHECK_FALSE(chunk_map_block_valid(map, 0, &what));
  CHECK(contains(what, "first chunk"));
  map.state[17] = kChunkStateMax + 1;
  seal(map);
  CHECK_FALSE(chunk_map_block_valid(map, 1, &what));
  CHECK(contains(what, "unknown chunk state"));

  SplitHeader split{};
  split.tag = kSplitHeaderTag;
  split.version = 1;
  split.chunk_index = 40;
  split.bitmap[0] = 0b1011;
  split.used_blocks = 3;
  seal(split);
  CHECK(split_header_valid(split, 40));
  CHECK_FALSE(split_header_valid(split, 41, &what));
  CHECK(contains(what, "chunk index"));
  split.used_blocks = 4;
  seal(split);
  CHECK_FALSE(split_header_valid(split, 40, &what));
  CHECK(contains(what, "used block count"));
  split.bitmap[0] = 0b1110;
  split.used_blocks = 3;
  seal(split);
  CHECK_FALSE(split_header_valid(split, 40, &what));
  CHECK(contains(what, "header block"));

  ExtentBlock extents{};
  extents.tag = kExtentBlockTag;
  extents.version = 1;
  extents.count = 1;
  seal(extents);
  CHECK(extent_block_valid(extents));
  extents.count = 0;
  seal(extents);
  CHECK_FALSE(extent_block_valid(extents, &what));
  extents.count = kExtentsPerBlock + 1;
  seal(extents);
  CHECK_FALSE(extent_block_valid(extents, &what));
  extents.count = 1;
  extents.next = 12;
  seal(extents);
  CHECK_FALSE(extent_block_valid(extents, &what));
  CHECK(contains(what, "aligned"));

  Hold hold{};
  CHECK(hold_is_free(hold));
  hold.tag = kHoldTag;
  hold.version = 1;
  hold.ino = 5;
  seal(hold);
  CHECK(hold_valid(hold));
  CHECK_FALSE(hold_is_free(hold));
  hold.ino = 0;
  seal(hold);
  CHECK_FALSE(hold_valid(hold, &what));
}

TEST_CASE("xattr block validator walks its entries", "[format]") {
  XattrBlock block{};
  block.tag = kXattrBlockTag;
  block.version = 1;
  block.owner_ino = 3;
  // Two entries: "ab" = "xyz", "c" = "".
  XattrEntryHeader first{2, 0, 3};
  XattrEntryHeader second{1, 0, 0};
  uint32_t position = 0;
  std::memcpy(block.payload + position, &first, sizeof first);
  position += sizeof first;
  std::memcpy(block.payload + position, "abxyz", 5);
  position += 5;
  std::memcpy(block.payload + position, &second, sizeof second);
  position += sizeof second;
  block.payload[position++] = 'c';
  block.entry_count = 2;
  block.used_bytes = position;
  seal(block);
  std::string what;
  CHECK(xattr_block_valid(block, &what));

  XattrBlock bad = block;
  bad.used_bytes = position + 1;
  seal(bad);
  CHECK_FALSE(xattr_block_valid(bad, &what));
  CHECK(contains(what, "do not fill"));

  bad = block;
  bad.entry_count = 3;
  seal(bad);
  CHECK_FALSE(xattr_block_valid(bad, &what));
  CHECK(contains(what, "past the end"));

  bad = block;
  bad.used_bytes = kXattrPayloadBytes + 1;
  seal(bad);
  CHECK_FALSE(xattr_block_valid(bad, &what));

  bad = block;
  bad.payload[0] = 0;  // first name empty
  seal(bad);
  CHECK_FALSE(xattr_block_valid(bad, &what));
  CHECK(contains(what, "empty"));
}
