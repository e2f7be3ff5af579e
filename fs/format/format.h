// fs/format/format.h: the on-region format, version 1 (see FORMAT.md).
//
// Owns: every byte layout pkfs stores in a region, the constants that size
// them, their checksums, and the one compatibility decision that mount, mkfs
// and fsck share. Nothing else in pkfs knows an offset inside a structure.
// Must not touch the region itself: callers read and write these structs.
// A reference from one structure to another is its byte offset from the
// start of the region, a plain u64 (never a pointer: the next mount may map
// the region elsewhere); 0 means "none" (offset 0 is the superblock, which
// nothing references).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fs/base/result.h"

namespace pkfs::format {

static_assert(std::endian::native == std::endian::little,
              "pkfs stores integers little-endian and reads them in place");

// ---------------------------------------------------------------------------
// Units and limits.

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kBlockSize = 4096;                          // allocation unit of small files
inline constexpr uint64_t kChunkSize = 2ull << 20;                    // allocation unit of large files
inline constexpr uint64_t kBlocksPerChunk = kChunkSize / kBlockSize;  // 512
inline constexpr uint64_t kGigabyte = 1ull << 30;
inline constexpr uint64_t kChunksPerGigabyte = kGigabyte / kChunkSize;  // 512
// The smallest backing: below it there is no room for the superblock,
// journal and allocator metadata plus any data. region::open refuses (and
// never creates) a smaller one.
inline constexpr uint64_t kMinRegionBytes = 16ull << 20;
// Extents address regions in 32-bit block numbers: 16 TiB at most.
inline constexpr uint64_t kMaxRegionBytes = (1ull << 32) * kBlockSize;
inline constexpr uint64_t kMaxFileBytes = 1ull << 52;  // 4 PiB, well inside off_t
inline constexpr uint32_t kNameMax = 255;              // bytes, as NAME_MAX
inline constexpr uint32_t kSymlinkMax = 4095;          // bytes, as PATH_MAX - 1
inline constexpr uint32_t kXattrNameMax = 255;
inline constexpr uint64_t kRootIno = 1;
inline constexpr uint64_t kChecksumSeed = 0;  // XXH3-64 seed of every checksum
inline constexpr uint64_t kMinJournalBytes = 512 * 1024;
inline constexpr uint64_t kMaxInodes = (1ull << 32) - 2;  // usable inodes (slot 0 is never used)

// Tags: four ASCII bytes read as a little-endian u32, so a hex dump shows them.
constexpr uint32_t make_tag(const char (&s)[5]) {
  return uint32_t(uint8_t(s[0])) | uint32_t(uint8_t(s[1])) << 8 | uint32_t(uint8_t(s[2])) << 16 |
         uint32_t(uint8_t(s[3])) << 24;
}

inline constexpr uint64_t kSuperblockMagic =  // "PKFSSUPR"
    uint64_t{make_tag("PKFS")} | uint64_t{make_tag("SUPR")} << 32;
inline constexpr uint32_t kJournalTag = make_tag("JRNL");
inline constexpr uint32_t kUndoTag = make_tag("UNDO");
inline constexpr uint32_t kInodeTag = make_tag("INOD");
inline constexpr uint32_t kDirentTag = make_tag("DENT");
inline constexpr uint32_t kExtentBlockTag = make_tag("EXTB");
inline constexpr uint32_t kChunkMapTag = make_tag("CMAP");
inline constexpr uint32_t kSplitHeaderTag = make_tag("SPLT");
inline constexpr uint32_t kXattrBlockTag = make_tag("XATR");
inline constexpr uint32_t kHoldTag = make_tag("HOLD");

// ---------------------------------------------------------------------------
// Feature bits, ext4 style. A build refuses a region with an incompat bit it
// does not know, opens read-only one with an unknown ro_compat bit, and
// ignores unknown compat bits. Format v1 defines none yet.
inline constexpr uint64_t kFeatureCompatSupported = 0;
inline constexpr uint64_t kFeatureRoCompatSupported = 0;
// The region is laid out in pages larger than a chunk (Superblock::page_bytes;
// see FORMAT.md, "Large-page layout"): the backup superblock is the last
// block of the last reserved page instead of the region's last block, so an
// older build would look for it, and for the metadata chunks of the chunk
// map, in the wrong place.
inline constexpr uint64_t kFeatureIncompatPageLayout = 1;
inline constexpr uint64_t kFeatureIncompatSupported = kFeatureIncompatPageLayout;

// Superblock state bits.
inline constexpr uint32_t kStateClean = 1u << 0;  // unmounted cleanly; cleared at mount
inline constexpr uint32_t kStateError = 1u << 1;  // an error was detected; fsck must run

// ---------------------------------------------------------------------------
// Superblock: block 0, and a backup in the last block of the last chunk (of
// the last reserved page with kFeatureIncompatPageLayout).

struct Superblock {
  uint64_t magic;                // 0x000 kSuperblockMagic
  uint32_t format_version;       // 0x008 kFormatVersion
  uint32_t superblock_bytes;     // 0x00c sizeof(Superblock)
  uint64_t feature_compat;       // 0x010
  uint64_t feature_ro_compat;    // 0x018
  uint64_t feature_incompat;     // 0x020
  uint8_t uuid[16];              // 0x028
  char label[64];                // 0x038 NUL-padded, at most 63 bytes
  uint64_t region_bytes;         // 0x078 bytes in use: chunk_count * kChunkSize
  uint64_t block_size;           // 0x080 kBlockSize
  uint64_t chunk_size;           // 0x088 kChunkSize
  uint64_t chunk_count;          // 0x090
  uint64_t journal_offset;       // 0x098
  uint64_t journal_bytes;        // 0x0a0
  uint64_t inode_table_offset;   // 0x0a8
  uint64_t inode_count;          // 0x0b0 slots, including unused slot 0
  uint64_t dirent_table_offset;  // 0x0b8
  uint64_t dirent_count;         // 0x0c0
  uint64_t chunk_map_offset;     // 0x0c8
  uint64_t chunk_map_blocks;     // 0x0d0
  uint64_t hold_table_offset;    // 0x0d8
  uint64_t hold_count;           // 0x0e0
  uint64_t data_offset;          // 0x0e8 first chunk after the metadata area
  uint64_t backup_offset;        // 0x0f0 the backup superblock
  uint64_t root_ino;             // 0x0f8 kRootIno
  uint32_t state;                // 0x100 kState* bits
  uint32_t mount_count;          // 0x104
  int64_t created_time_ns;       // 0x108 CLOCK_REALTIME
  int64_t mount_time_ns;         // 0x110 last mount
  int64_t write_time_ns;         // 0x118 last mkfs, mount or clean unmount
  int64_t check_time_ns;         // 0x120 last fsck
  uint64_t inode_high_water;     // 0x128 inode slots >= this were never used
  uint64_t dirent_high_water;    // 0x130 dirent slots >= this were never used
  uint32_t error_count;          // 0x138
  uint32_t first_error_code;     // 0x13c errno
  int64_t first_error_time_ns;   // 0x140
  uint64_t first_error_ino;      // 0x148
  char first_error_what[32];     // 0x150 NUL-padded
  int64_t last_error_time_ns;    // 0x170
  uint64_t last_error_ino;       // 0x178
  uint32_t last_error_code;      // 0x180
  uint32_t reserved0;            // 0x184
  char last_error_what[32];      // 0x188
  uint64_t page_bytes;           // 0x1a8 with kFeatureIncompatPageLayout: the layout's page; else 0
  uint8_t reserved1[72];         // 0x1b0
  uint64_t checksum;             // 0x1f8 XXH3-64 of bytes 0x000-0x1f7
};
static_assert(sizeof(Superblock) == 0x200);
static_assert(offsetof(Superblock, region_bytes) == 0x78);
static_assert(offsetof(Superblock, state) == 0x100);
static_assert(offsetof(Superblock, inode_high_water) == 0x128);
static_assert(offsetof(Superblock, page_bytes) == 0x1a8);
static_assert(offsetof(Superblock, checksum) == 0x1f8);

// ---------------------------------------------------------------------------
// Journal: an undo log. See FORMAT.md, "Journal".

struct JournalHeader {
  uint32_t tag;            // 0x00 kJournalTag
  uint16_t version;        // 0x04 1
  uint16_t reserved0;      // 0x06
  uint64_t journal_bytes;  // 0x08 whole area, header block included
  uint64_t reserved1;      // 0x10
  uint64_t checksum;       // 0x18 of bytes 0x00-0x17
  uint64_t reserved2[4];   // 0x20
  // Commit words: not covered by the checksum. Each is an aligned 8-byte
  // store, which a process kill cannot tear; recovery checks their ranges.
  uint64_t last_sequence;  // 0x40 sequence of the newest transaction begun
  uint64_t open_sequence;  // 0x48 0, or the transaction to roll back
};
static_assert(sizeof(JournalHeader) == 0x50);
static_assert(offsetof(JournalHeader, checksum) == 0x18);
static_assert(offsetof(JournalHeader, last_sequence) == 0x40);
static_assert(offsetof(JournalHeader, open_sequence) == 0x48);
inline constexpr uint64_t kJournalRecordsOffset = kBlockSize;  // records follow the header block

// An undo record: header, `length` old bytes padded to 8, then a u64 checksum
// of header and padded data.
struct UndoRecordHeader {
  uint32_t tag;            // 0x00 kUndoTag
  uint16_t version;        // 0x04 1
  uint16_t reserved0;      // 0x06
  uint64_t sequence;       // 0x08 transaction this record belongs to
  uint64_t target_offset;  // 0x10 region offset the old bytes came from
  uint32_t length;         // 0x18 bytes of old data
  uint32_t reserved1;      // 0x1c
};
static_assert(sizeof(UndoRecordHeader) == 0x20);
constexpr uint64_t undo_record_bytes(uint64_t length) {
  return sizeof(UndoRecordHeader) + ((length + 7) & ~uint64_t{7}) + sizeof(uint64_t);
}

// ---------------------------------------------------------------------------
// Extents and inodes.

struct Extent {
  uint64_t file_block;    // 0x00 first file block (file offset / kBlockSize)
  uint32_t region_block;  // 0x08 first region block (region offset / kBlockSize)
  uint32_t block_count;   // 0x0c > 0
};
static_assert(sizeof(Extent) == 16);

inline constexpr uint16_t kInodeOrphan = 1u << 0;    // nlink 0: freed at last release or at mount
inline constexpr uint16_t kInodeTrimming = 1u << 1;  // extents past trim_block are being freed
inline constexpr uint16_t kInodeFlagsKnown = kInodeOrphan | kInodeTrimming;
inline constexpr uint32_t kInlineExtents = 7;

struct Inode {
  uint32_t tag;                    // 0x00 kInodeTag
  uint16_t version;                // 0x04 1
  uint16_t flags;                  // 0x06 kInode* bits
  uint64_t ino;                    // 0x08 its own slot number
  uint64_t generation;             // 0x10 bumped each time the slot is reused
  uint32_t mode;                   // 0x18 st_mode; 0 = free slot
  uint32_t nlink;                  // 0x1c
  uint32_t uid;                    // 0x20
  uint32_t gid;                    // 0x24
  uint64_t size;                   // 0x28 bytes
  int64_t atime_ns;                // 0x30
  int64_t mtime_ns;                // 0x38
  int64_t ctime_ns;                // 0x40
  int64_t btime_ns;                // 0x48
  uint64_t rdev;                   // 0x50 character/block devices
  uint64_t parent;                 // 0x58 directories: parent directory ino
  uint64_t xattr_block;            // 0x60 region offset of an XattrBlock, or 0
  uint64_t extent_block;           // 0x68 region offset of the first ExtentBlock, or 0
  uint32_t extent_count;           // 0x70 inline and overflow extents together
  uint32_t reserved0;              // 0x74
  uint64_t trim_block;             // 0x78 with kInodeTrimming: free extents from here on
  Extent extents[kInlineExtents];  // 0x80 first extents, sorted by file_block
  uint64_t allocated_blocks;       // 0xf0 data blocks in extents + extent and xattr blocks
  uint64_t checksum;               // 0xf8
};
static_assert(sizeof(Inode) == 0x100);
static_assert(offsetof(Inode, extents) == 0x80);
static_assert(offsetof(Inode, checksum) == 0xf8);

inline constexpr uint32_t kExtentsPerBlock = 254;
struct ExtentBlock {
  uint32_t tag;                      // 0x000 kExtentBlockTag
  uint16_t version;                  // 0x004 1
  uint16_t count;                    // 0x006 extents used, 1..kExtentsPerBlock
  uint64_t owner_ino;                // 0x008
  uint64_t next;                     // 0x010 region offset of the next block, or 0
  Extent extents[kExtentsPerBlock];  // 0x018
  uint64_t checksum;                 // 0xff8
};
static_assert(sizeof(ExtentBlock) == kBlockSize);
static_assert(offsetof(ExtentBlock, checksum) == 0xff8);

// ---------------------------------------------------------------------------
// Directory entries: a table of fixed slots; a directory's entries are the
// slots whose parent_ino names it.

struct Dirent {
  uint32_t tag;         // 0x000 kDirentTag; 0 = free slot
  uint8_t version;      // 0x004 1
  uint8_t file_type;    // 0x005 DT_* of the child (DT_REG, DT_DIR, ...)
  uint8_t name_length;  // 0x006 1..255
  uint8_t reserved0;    // 0x007
  uint64_t parent_ino;  // 0x008
  uint64_t ino;         // 0x010
  char name[256];       // 0x018 name_length bytes, then NULs
  uint64_t checksum;    // 0x118
};
static_assert(sizeof(Dirent) == 0x120);
static_assert(offsetof(Dirent, name) == 0x18);

// ---------------------------------------------------------------------------
// Space: one state byte per chunk in chunk-map blocks; a split chunk keeps a
// bitmap of its 512 blocks in its own block 0.

enum ChunkState : uint8_t {
  kChunkFreeZero = 0,   // free, every byte known zero
  kChunkFreeDirty = 1,  // free, must be zeroed before a file gets it
  kChunkUsed = 2,       // wholly inside one file extent
  kChunkSplit = 3,      // divided into blocks; block 0 is a SplitHeader
  kChunkMeta = 4,       // metadata area or backup superblock
};
inline constexpr uint8_t kChunkStateMax = kChunkMeta;

inline constexpr uint32_t kChunksPerMapBlock = 4072;
struct ChunkMapBlock {
  uint32_t tag;                       // 0x000 kChunkMapTag
  uint16_t version;                   // 0x004 1
  uint16_t reserved0;                 // 0x006
  uint64_t first_chunk;               // 0x008 chunk index of state[0]
  uint8_t state[kChunksPerMapBlock];  // 0x010 ChunkState; past chunk_count: kChunkMeta
  uint64_t checksum;                  // 0xff8
};
static_assert(sizeof(ChunkMapBlock) == kBlockSize);

// Blocks of a split chunk are zeroed when they are handed out, never when
// freed (a freeing transaction may still abort and must find its data).
struct SplitHeader {
  uint32_t tag;                           // 0x00 kSplitHeaderTag
  uint16_t version;                       // 0x04 1
  uint16_t used_blocks;                   // 0x06 bits set in `bitmap`, header block included
  uint64_t chunk_index;                   // 0x08
  uint64_t bitmap[kBlocksPerChunk / 64];  // 0x10 bit i set: block i in use; bit 0 always set
  uint64_t checksum;                      // 0x50
};
static_assert(sizeof(SplitHeader) == 0x58);

// ---------------------------------------------------------------------------
// Extended attributes: one block per inode, entries packed.

struct XattrEntryHeader {
  uint8_t name_length;    // 0x00 1..255
  uint8_t reserved0;      // 0x01
  uint16_t value_length;  // 0x02
};                        // then name bytes, then value bytes; no padding
static_assert(sizeof(XattrEntryHeader) == 4);

inline constexpr uint32_t kXattrPayloadBytes = 4064;
struct XattrBlock {
  uint32_t tag;                         // 0x000 kXattrBlockTag
  uint16_t version;                     // 0x004 1
  uint16_t entry_count;                 // 0x006
  uint64_t owner_ino;                   // 0x008
  uint32_t used_bytes;                  // 0x010 bytes of `payload` in use
  uint32_t reserved0;                   // 0x014
  uint8_t payload[kXattrPayloadBytes];  // 0x018
  uint64_t checksum;                    // 0xff8
};
static_assert(sizeof(XattrBlock) == kBlockSize);

// ---------------------------------------------------------------------------
// Holds: a process maps a file directly; see FORMAT.md, "Holds".

struct Hold {
  uint32_t tag;          // 0x00 kHoldTag; 0 = free slot
  uint16_t version;      // 0x04 1
  uint16_t flags;        // 0x06 reserved, 0
  uint64_t ino;          // 0x08
  uint64_t generation;   // 0x10
  uint32_t pid;          // 0x18 holder
  uint32_t uid;          // 0x1c holder's uid
  uint64_t start_ticks;  // 0x20 holder's start time (/proc/PID/stat field 22)
  uint8_t boot_id[16];   // 0x28 holds from another boot are stale
  uint64_t checksum;     // 0x38
};
static_assert(sizeof(Hold) == 0x40);

// ---------------------------------------------------------------------------
// Every struct above: no hidden padding may reach a checksum.
#define PKFS_ASSERT_ON_REGION(T)                              \
  static_assert(std::is_trivially_copyable_v<T>);             \
  static_assert(std::has_unique_object_representations_v<T>); \
  static_assert(sizeof(T) % 8 == 0 || sizeof(T) == 4)
PKFS_ASSERT_ON_REGION(Superblock);
PKFS_ASSERT_ON_REGION(JournalHeader);
PKFS_ASSERT_ON_REGION(UndoRecordHeader);
PKFS_ASSERT_ON_REGION(Extent);
PKFS_ASSERT_ON_REGION(Inode);
PKFS_ASSERT_ON_REGION(ExtentBlock);
PKFS_ASSERT_ON_REGION(Dirent);
PKFS_ASSERT_ON_REGION(ChunkMapBlock);
PKFS_ASSERT_ON_REGION(SplitHeader);
PKFS_ASSERT_ON_REGION(XattrEntryHeader);
PKFS_ASSERT_ON_REGION(XattrBlock);
PKFS_ASSERT_ON_REGION(Hold);
#undef PKFS_ASSERT_ON_REGION

// ---------------------------------------------------------------------------
// Stamps: the tag and version that start every structure but the superblock
// (magic and format_version) and XattrEntryHeader. Written here only: every
// other layer makes a structure with stamped<T>() and checks one with
// stamp_ok(), so a new version of a structure is one line below.

template <typename T>
struct Stamp;  // kTag and kVersion of T; only the structures below have one
#define PKFS_STAMP(T, kTagOfT, kVersionOfT)                       \
  template <>                                                     \
  struct Stamp<T> {                                               \
    static constexpr uint32_t kTag = kTagOfT;                     \
    static constexpr decltype(T::version) kVersion = kVersionOfT; \
  }
PKFS_STAMP(JournalHeader, kJournalTag, 1);
PKFS_STAMP(UndoRecordHeader, kUndoTag, 1);
PKFS_STAMP(Inode, kInodeTag, 1);
PKFS_STAMP(ExtentBlock, kExtentBlockTag, 1);
PKFS_STAMP(Dirent, kDirentTag, 1);
PKFS_STAMP(ChunkMapBlock, kChunkMapTag, 1);
PKFS_STAMP(SplitHeader, kSplitHeaderTag, 1);
PKFS_STAMP(XattrBlock, kXattrBlockTag, 1);
PKFS_STAMP(Hold, kHoldTag, 1);
#undef PKFS_STAMP

// Sets T's tag and version in `value` and nothing else (fsck restores a
// damaged stamp this way, keeping the fields).
template <typename T>
void stamp(T& value) {
  value.tag = Stamp<T>::kTag;
  value.version = Stamp<T>::kVersion;
}
// A zeroed T carrying its tag and version: what every new structure starts
// as, before its fields are set and it is sealed.
template <typename T>
T stamped() {
  T value{};
  stamp(value);
  return value;
}
// Whether `value` carries T's tag and version.
template <typename T>
bool stamp_ok(const T& value) {
  return value.tag == Stamp<T>::kTag && value.version == Stamp<T>::kVersion;
}

// ---------------------------------------------------------------------------
// Checksums.

uint64_t xxh3(const void* data, size_t length, uint64_t seed = kChecksumSeed);

// XXH3-64 of every byte of `value` before its u64 checksum field (the last
// field of every struct but JournalHeader, whose commit words follow it).
template <typename T>
uint64_t compute_checksum(const T& value) {
  return xxh3(&value, offsetof(T, checksum));
}
template <typename T>
void seal(T& value) {
  value.checksum = compute_checksum(value);
}
template <typename T>
bool checksum_ok(const T& value) {
  return value.checksum == compute_checksum(value);
}

// ---------------------------------------------------------------------------
// Layout: where everything goes in a region of a given size.

struct LayoutOptions {
  uint64_t inode_count = 0;    // usable inodes; 0: one per 64 KiB of region, 1024 to 4 Mi
  uint64_t journal_bytes = 0;  // 0: 1 MiB (4 MiB from 4 GiB) + 2x the chunk map; 512 KiB to 256 MiB
  uint64_t hold_count = 1024;  // concurrent direct mappings
  // The page the region is mapped with (its backing's page size). Larger
  // than a chunk (a power of two): the large-page layout, which keeps
  // everything that is not guest RAM in the first pages and every later
  // page whole. Otherwise (0, 4 KiB, 2 MiB): the chunk layout.
  uint64_t page_bytes = 0;
};

struct Layout {
  uint64_t region_bytes;  // chunk_count * kChunkSize
  uint64_t chunk_count;
  uint64_t journal_offset, journal_bytes;
  uint64_t inode_table_offset, inode_count;
  uint64_t dirent_table_offset, dirent_count;
  uint64_t chunk_map_offset, chunk_map_blocks;
  uint64_t hold_table_offset, hold_count;
  uint64_t data_offset;      // multiple of kChunkSize
  uint64_t backup_offset;    // last block of backup_chunk
  uint64_t metadata_chunks;  // chunks [0, metadata_chunks) are kChunkMeta
  uint64_t usable_bytes;     // data chunks: (chunk_count - metadata_chunks - 1) * kChunkSize
  // Large-page layout: the page (a power of two > kChunkSize), else 0.
  uint64_t page_bytes;
  // The chunk of the backup superblock (kChunkMeta): the last chunk of the
  // region, or with page_bytes the last chunk of the last reserved page.
  uint64_t backup_chunk;
  // Pages [0, reserved_pages) hold metadata, the backup and (in the chunks
  // between them, the small-file area) split chunks and files smaller than
  // a page; pages [reserved_pages, guest_pages + reserved_pages) are whole.
  // Chunk layout: 0 and 0.
  uint64_t reserved_pages, guest_pages;

  // Chunks that are never data: the metadata area, the backup chunk and
  // the map entries past chunk_count.
  bool meta_chunk(uint64_t chunk) const {
    return chunk < metadata_chunks || chunk == backup_chunk || chunk >= chunk_count;
  }
  // Chunks [metadata_chunks, small_area_end()) are where split chunks go
  // first: the rest of the reserved pages, or the whole data area.
  uint64_t small_area_end() const { return page_bytes != 0 ? backup_chunk : chunk_count - 1; }
  // True when blocks [first_block, first_block + count) are all data: in
  // data chunks, none of them the backup chunk.
  bool in_data_area(uint64_t first_block, uint64_t count) const {
    const uint64_t end = first_block + count;
    if (count == 0 || end <= first_block || first_block < metadata_chunks * kBlocksPerChunk) return false;
    if (end > chunk_count * kBlocksPerChunk) return false;
    return end <= backup_chunk * kBlocksPerChunk || first_block >= (backup_chunk + 1) * kBlocksPerChunk;
  }
};

// A sealed superblock for a new filesystem of this layout: magic, version,
// every layout field, root inode, high-water marks of an empty filesystem,
// state clean. mkfs adds UUID, label and times (and seals again).
Superblock make_superblock(const Layout& layout);

// `backing_bytes` is the size of the backing; trailing bytes that do not
// fill a chunk are left unused. Errors: EINVAL for sizes or counts out of range.
// With options.page_bytes > kChunkSize the large-page layout, which needs
// one whole page past the reserved ones (else EINVAL naming the page).
Result<Layout> compute_layout(uint64_t backing_bytes, const LayoutOptions& options);

// The layout a superblock describes, checked for internal consistency
// against the backing size. Errors: EUCLEAN naming the bad field.
Result<Layout> layout_from_superblock(const Superblock& sb, uint64_t backing_bytes);

// Where the backup superblock of a region of `backing_bytes` lies, derived
// from the size alone so it can be found when the primary is unreadable.
// With a readable primary, use its layout's backup_offset instead: a backing
// that grew since mkfs has its last block elsewhere.
uint64_t backup_superblock_offset(uint64_t backing_bytes);

// The places to look for the backup superblock when the primary does not
// verify, most likely first: where a torn primary's own fields say (the
// layout fields are never rewritten with another value, so a torn write
// leaves them intact), the chunk layout's place, and for a region mapped
// with pages of `page_bytes` > kChunkSize the last block of each of its
// first pages (the large-page layout's place). A candidate is only used if
// the superblock there verifies and names that offset as its backup_offset.
std::vector<uint64_t> backup_superblock_candidates(const Superblock& torn_primary, uint64_t backing_bytes,
                                                   uint64_t page_bytes);

// The first candidate whose superblock verifies and names that offset as
// its backup_offset, read from a copy of each; else the first candidate
// (where the error is to be reported).
uint64_t locate_backup_superblock(const std::byte* region, uint64_t backing_bytes, uint64_t page_bytes);

// ---------------------------------------------------------------------------
// Compatibility: the one decision mount, mkfs and fsck share.

enum class Access { kReadWrite, kReadOnly, kRefuse };
struct Compatibility {
  Access access;
  std::string reason;  // why not read-write; empty for kReadWrite
};
Compatibility check_compatibility(const Superblock& sb);

// Verifies magic, version, size field and checksum of a superblock.
// Errors: EUCLEAN ("bad checksum"), ENODATA ("no pkfs superblock"),
// EPROTONOSUPPORT ("format version 2 is newer than this pkfs (1)").
Result<void> verify_superblock(const Superblock& sb);

// Verifiers for the other structures: tag, version, checksum and the
// ranges of every field, so callers can use values without further checks.
// `what` receives a short description of the first problem found.
bool inode_valid(const Inode& inode, uint64_t slot, std::string* what = nullptr);
bool dirent_valid(const Dirent& dirent, std::string* what = nullptr);
bool extent_block_valid(const ExtentBlock& block, std::string* what = nullptr);
bool chunk_map_block_valid(const ChunkMapBlock& block, uint64_t index, std::string* what = nullptr);
bool split_header_valid(const SplitHeader& header, uint64_t chunk, std::string* what = nullptr);
bool xattr_block_valid(const XattrBlock& block, std::string* what = nullptr);
bool hold_valid(const Hold& hold, std::string* what = nullptr);

// Bounds on counted and chained structures, from what a region of `layout`
// can hold (see FORMAT.md, "Bounds on damaged regions"). Every extent covers
// at least one data block no other extent covers, so an inode has at most
// one extent per data block; a larger `extent_count` is damage. An extent
// chain has exactly extent_chain_blocks(extent_count) blocks.
uint64_t max_extent_count(const Layout& layout);
uint64_t extent_chain_blocks(uint64_t extent_count);

// A free inode slot is all zero (never used) or has a tag and mode 0.
bool inode_is_free(const Inode& inode);
bool dirent_is_free(const Dirent& dirent);
bool hold_is_free(const Hold& hold);

std::string_view dirent_name(const Dirent& dirent);
// A sealed directory entry: in directory `parent_ino`, `name` names `ino`,
// a file of `file_type` (DT_REG, DT_DIR, ...). REQUIRES: `name` is 1 to
// kNameMax bytes (callers check names first; anything else aborts).
Dirent make_dirent(uint64_t parent_ino, uint64_t ino, uint8_t file_type, std::string_view name);
std::string uuid_to_string(const uint8_t (&uuid)[16]);
bool uuid_from_string(std::string_view text, uint8_t (&uuid)[16]);

}  // namespace pkfs::format
