// fs/format/format.cpp: checksums, layout, validation and compatibility of
// format v1. See FORMAT.md for the meaning of every field.
#include "fs/format/format.h"

#include <sys/stat.h>
#include <xxh3.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fs/base/bytes.h"

namespace pkfs::format {

uint64_t xxh3(const void* data, size_t length, uint64_t seed) {
  return XXH3_64bits_withSeed(data, length, seed);
}

namespace {

constexpr uint64_t round_up(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Usable inodes by default: one per 64 KiB, 1024 to 4 Mi.
uint64_t default_inode_count(uint64_t region_bytes) {
  uint64_t count = region_bytes / (64 * 1024);
  if (count < 1024) count = 1024;
  if (count > (4ull << 20)) count = 4ull << 20;
  return count;
}

void set_what(std::string* what, std::string text) {
  if (what != nullptr) *what = std::move(text);
}

// Whether `value` carries T's stamp; else "bad tag" or "unknown version".
template <typename T>
bool stamp_valid(const T& value, std::string* what) {
  if (value.tag != Stamp<T>::kTag) return set_what(what, "bad tag"), false;
  if (!stamp_ok(value)) return set_what(what, "unknown version"), false;
  return true;
}

bool known_file_type(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFIFO:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFSOCK: return true;
    default: return false;
  }
}

}  // namespace

uint64_t backup_superblock_offset(uint64_t backing_bytes) {
  return (backing_bytes / kChunkSize) * kChunkSize - kBlockSize;
}

std::vector<uint64_t> backup_superblock_candidates(const Superblock& torn_primary, uint64_t backing_bytes,
                                                   uint64_t page_bytes) {
  std::vector<uint64_t> candidates;
  auto add = [&](uint64_t offset) {
    // In the shape of the subtraction: `offset` comes from a torn primary,
    // and offset + kBlockSize would wrap for offsets near 2^64.
    if (offset < kChunkSize || offset > backing_bytes || backing_bytes - offset < kBlockSize ||
        (offset + kBlockSize) % kChunkSize != 0)
      return;
    for (uint64_t known : candidates) {
      if (known == offset) return;
    }
    candidates.push_back(offset);
  };
  if (torn_primary.magic == kSuperblockMagic) add(torn_primary.backup_offset);
  if (backing_bytes >= kChunkSize) add(backup_superblock_offset(backing_bytes));
  if (page_bytes > kChunkSize && std::has_single_bit(page_bytes)) {
    // The metadata of the largest region (16 TiB) takes under 3 GiB, so its
    // reserved pages end within the first 4 GiB.
    for (uint64_t end = page_bytes; end <= std::min<uint64_t>(backing_bytes, 4 * kGigabyte);
         end += page_bytes) {
      add(end - kBlockSize);
    }
  }
  return candidates;
}

uint64_t locate_backup_superblock(const std::byte* region, uint64_t backing_bytes, uint64_t page_bytes) {
  Superblock primary;
  std::memcpy(&primary, region, sizeof primary);
  const std::vector<uint64_t> candidates = backup_superblock_candidates(primary, backing_bytes, page_bytes);
  for (uint64_t offset : candidates) {
    Superblock sb;
    std::memcpy(&sb, region + offset, sizeof sb);
    if (verify_superblock(sb) && sb.backup_offset == offset) return offset;
  }
  return candidates.empty() ? backup_superblock_offset(backing_bytes) : candidates.front();
}

Result<Layout> compute_layout(uint64_t backing_bytes, const LayoutOptions& options) {
  if (backing_bytes < kMinRegionBytes) {
    return Error(EINVAL, "region of " + std::to_string(backing_bytes) +
                             " bytes is too small: pkfs needs at least 16 MiB");
  }
  if (backing_bytes > kMaxRegionBytes) {
    return Error(EINVAL, "region of " + std::to_string(backing_bytes) +
                             " bytes is too large: format v1 addresses at most 16 TiB");
  }
  Layout layout{};
  layout.chunk_count = backing_bytes / kChunkSize;
  layout.region_bytes = layout.chunk_count * kChunkSize;

  layout.chunk_map_blocks = (layout.chunk_count + kChunksPerMapBlock - 1) / kChunksPerMapBlock;
  // The journal must hold the undo images of every chunk-map block at once
  // (an allocation of the whole region touches them all), plus room for the
  // inodes, entries and extent blocks of one operation.
  uint64_t default_journal = (layout.region_bytes >= 4 * kGigabyte ? 4ull << 20 : 1ull << 20) +
                             2 * layout.chunk_map_blocks * kBlockSize;
  layout.journal_bytes = options.journal_bytes != 0 ? options.journal_bytes : default_journal;
  if (layout.journal_bytes % kBlockSize != 0 || layout.journal_bytes < kMinJournalBytes ||
      layout.journal_bytes > (256ull << 20)) {
    return Error(EINVAL, "journal size must be a multiple of 4 KiB between 512 KiB and 256 MiB");
  }
  // Slot 0 is never used: the table has one slot more than usable inodes.
  uint64_t usable_inodes =
      options.inode_count != 0 ? options.inode_count : default_inode_count(layout.region_bytes);
  if (usable_inodes < 15 || usable_inodes > kMaxInodes) {
    return Error(EINVAL, "inode count must be between 15 and " + std::to_string(kMaxInodes));
  }
  layout.inode_count = usable_inodes + 1;
  layout.dirent_count = layout.inode_count + layout.inode_count / 4;
  layout.hold_count = options.hold_count;
  if (layout.hold_count < 1 || layout.hold_count > 65536) {
    return Error(EINVAL, "hold count must be between 1 and 65536");
  }

  uint64_t offset = kBlockSize;  // block 0: superblock
  layout.journal_offset = offset;
  offset += layout.journal_bytes;
  layout.inode_table_offset = offset;
  offset += round_up(layout.inode_count * sizeof(Inode), kBlockSize);
  layout.dirent_table_offset = offset;
  offset += round_up(layout.dirent_count * sizeof(Dirent), kBlockSize);
  layout.chunk_map_offset = offset;
  offset += layout.chunk_map_blocks * kBlockSize;
  layout.hold_table_offset = offset;
  offset += round_up(layout.hold_count * sizeof(Hold), kBlockSize);
  layout.data_offset = round_up(offset, kChunkSize);
  layout.metadata_chunks = layout.data_offset / kChunkSize;
  layout.backup_offset = backup_superblock_offset(backing_bytes);

  layout.backup_chunk = layout.chunk_count - 1;

  // The last chunk holds the backup superblock; two data chunks at least.
  if (layout.metadata_chunks + 3 > layout.chunk_count) {
    return Error(EINVAL, "region of " + std::to_string(backing_bytes) +
                             " bytes leaves no room for data: metadata takes " +
                             std::to_string(layout.data_offset >> 20) +
                             " MiB (use fewer inodes or a larger region)");
  }
  if (options.page_bytes > kChunkSize) {
    // Large pages: the metadata and the backup share the first page(s), so
    // that every later page is whole and aligned, free for guest RAM. The
    // chunks between them take what is not guest RAM (small files, files
    // smaller than a page).
    const uint64_t page = options.page_bytes;
    if (!std::has_single_bit(page) || page > kMaxRegionBytes) {
      return Error(EINVAL, "page size " + std::to_string(page) + " is not a power of two of at most 16 TiB");
    }
    const uint64_t page_chunks = page / kChunkSize;
    layout.page_bytes = page;
    layout.reserved_pages = (layout.metadata_chunks + 1 + page_chunks - 1) / page_chunks;
    layout.backup_chunk = layout.reserved_pages * page_chunks - 1;
    layout.backup_offset = (layout.backup_chunk + 1) * kChunkSize - kBlockSize;
    const uint64_t whole_pages = layout.chunk_count / page_chunks;
    if (whole_pages <= layout.reserved_pages) {
      return Error(EINVAL, "region of " + std::to_string(backing_bytes) + " bytes leaves no whole page of " +
                               std::to_string(page >> 20) + " MiB for guest RAM: metadata takes " +
                               std::to_string(layout.reserved_pages) + " page(s) (" +
                               std::to_string(layout.data_offset >> 20) +
                               " MiB used); use a region of at least " +
                               std::to_string((layout.reserved_pages + 1) * (page >> 20)) + " MiB");
    }
    layout.guest_pages = whole_pages - layout.reserved_pages;
  }
  layout.usable_bytes = (layout.chunk_count - layout.metadata_chunks - 1) * kChunkSize;
  return layout;
}

Superblock make_superblock(const Layout& layout) {
  Superblock sb{};
  sb.magic = kSuperblockMagic;
  sb.format_version = kFormatVersion;
  sb.superblock_bytes = sizeof(Superblock);
  sb.region_bytes = layout.region_bytes;
  sb.block_size = kBlockSize;
  sb.chunk_size = kChunkSize;
  sb.chunk_count = layout.chunk_count;
  sb.journal_offset = layout.journal_offset;
  sb.journal_bytes = layout.journal_bytes;
  sb.inode_table_offset = layout.inode_table_offset;
  sb.inode_count = layout.inode_count;
  sb.dirent_table_offset = layout.dirent_table_offset;
  sb.dirent_count = layout.dirent_count;
  sb.chunk_map_offset = layout.chunk_map_offset;
  sb.chunk_map_blocks = layout.chunk_map_blocks;
  sb.hold_table_offset = layout.hold_table_offset;
  sb.hold_count = layout.hold_count;
  sb.data_offset = layout.data_offset;
  sb.backup_offset = layout.backup_offset;
  if (layout.page_bytes != 0) {
    sb.feature_incompat |= kFeatureIncompatPageLayout;
    sb.page_bytes = layout.page_bytes;
  }
  sb.root_ino = kRootIno;
  sb.state = kStateClean;
  sb.inode_high_water = kRootIno + 1;
  sb.dirent_high_water = 0;
  seal(sb);
  return sb;
}

Result<Layout> layout_from_superblock(const Superblock& sb, uint64_t backing_bytes) {
  if (sb.region_bytes > backing_bytes) {
    return Error(EUCLEAN, "superblock says the region has " + std::to_string(sb.region_bytes) +
                              " bytes but the backing has only " + std::to_string(backing_bytes) +
                              " (truncated region?)");
  }
  if (sb.region_bytes % kChunkSize != 0) {
    return Error(EUCLEAN, "superblock region_bytes " + std::to_string(sb.region_bytes) +
                              " is not a whole number of 2 MiB chunks");
  }
  if (sb.inode_count < 16 || sb.inode_count > kMaxInodes + 1) {
    return Error(EUCLEAN, "superblock inode_count " + std::to_string(sb.inode_count) + " is out of range");
  }
  LayoutOptions options;
  options.inode_count = sb.inode_count - 1;
  options.journal_bytes = sb.journal_bytes;
  options.hold_count = sb.hold_count;
  if ((sb.feature_incompat & kFeatureIncompatPageLayout) != 0) {
    if (sb.page_bytes <= kChunkSize || !std::has_single_bit(sb.page_bytes)) {
      return Error(EUCLEAN, "superblock page_bytes " + std::to_string(sb.page_bytes) +
                                " is not a power of two larger than 2 MiB (large-page layout)");
    }
    options.page_bytes = sb.page_bytes;
  } else if (sb.page_bytes != 0) {
    return Error(EUCLEAN, "superblock page_bytes " + std::to_string(sb.page_bytes) +
                              " is set without the large-page layout feature");
  }
  auto expected = compute_layout(sb.region_bytes, options);
  if (!expected) {
    return Error(EUCLEAN, "superblock describes an impossible layout: " + expected.error().message());
  }
  const Layout& l = expected.value();
  struct Field {
    const char* name;
    uint64_t actual, wanted;
  };
  const Field fields[] = {
      {"chunk_count", sb.chunk_count, l.chunk_count},
      {"journal_offset", sb.journal_offset, l.journal_offset},
      {"inode_table_offset", sb.inode_table_offset, l.inode_table_offset},
      {"dirent_table_offset", sb.dirent_table_offset, l.dirent_table_offset},
      {"dirent_count", sb.dirent_count, l.dirent_count},
      {"chunk_map_offset", sb.chunk_map_offset, l.chunk_map_offset},
      {"chunk_map_blocks", sb.chunk_map_blocks, l.chunk_map_blocks},
      {"hold_table_offset", sb.hold_table_offset, l.hold_table_offset},
      {"data_offset", sb.data_offset, l.data_offset},
      {"backup_offset", sb.backup_offset, l.backup_offset},
      {"block_size", sb.block_size, kBlockSize},
      {"chunk_size", sb.chunk_size, kChunkSize},
      {"root_ino", sb.root_ino, kRootIno},
  };
  for (const Field& field : fields) {
    if (field.actual != field.wanted) {
      return Error(EUCLEAN, std::string("superblock field ") + field.name + " is " +
                                std::to_string(field.actual) + ", expected " + std::to_string(field.wanted));
    }
  }
  if (sb.inode_high_water < 2 || sb.inode_high_water > sb.inode_count) {
    return Error(EUCLEAN,
                 "superblock inode_high_water " + std::to_string(sb.inode_high_water) + " is out of range");
  }
  if (sb.dirent_high_water > sb.dirent_count) {
    return Error(EUCLEAN,
                 "superblock dirent_high_water " + std::to_string(sb.dirent_high_water) + " is out of range");
  }
  return l;
}

Result<void> verify_superblock(const Superblock& sb) {
  if (sb.magic != kSuperblockMagic) return Error(ENODATA, "no pkfs superblock (bad magic)");
  if (sb.format_version > kFormatVersion) {
    return Error(EPROTONOSUPPORT, "format version " + std::to_string(sb.format_version) +
                                      " is newer than this pkfs supports (" + std::to_string(kFormatVersion) +
                                      ")");
  }
  if (sb.format_version == 0) return Error(EUCLEAN, "superblock format version 0 is invalid");
  if (sb.superblock_bytes != sizeof(Superblock)) {
    return Error(EUCLEAN, "superblock size field is " + std::to_string(sb.superblock_bytes));
  }
  if (!checksum_ok(sb)) return Error(EUCLEAN, "superblock checksum mismatch");
  return success();
}

Compatibility check_compatibility(const Superblock& sb) {
  if (sb.format_version != kFormatVersion) {
    return {Access::kRefuse, "format version " + std::to_string(sb.format_version) +
                                 " is not supported by this pkfs (supports " +
                                 std::to_string(kFormatVersion) + ")"};
  }
  char hex[32];
  if (uint64_t unknown = sb.feature_incompat & ~kFeatureIncompatSupported; unknown != 0) {
    std::snprintf(hex, sizeof hex, "%#llx", static_cast<unsigned long long>(unknown));
    return {Access::kRefuse,
            std::string("region uses incompatible features this pkfs does not know (") + hex + ")"};
  }
  if (uint64_t unknown = sb.feature_ro_compat & ~kFeatureRoCompatSupported; unknown != 0) {
    std::snprintf(hex, sizeof hex, "%#llx", static_cast<unsigned long long>(unknown));
    return {Access::kReadOnly,
            std::string("region uses read-only-compatible features this pkfs does not know (") + hex +
                "); it may only be opened read-only"};
  }
  return {Access::kReadWrite, ""};
}

uint64_t max_extent_count(const Layout& layout) { return layout.usable_bytes / kBlockSize; }

uint64_t extent_chain_blocks(uint64_t extent_count) {
  if (extent_count <= kInlineExtents) return 0;
  return (extent_count - kInlineExtents + kExtentsPerBlock - 1) / kExtentsPerBlock;
}

bool inode_is_free(const Inode& inode) {
  // A slot in use never reads as all zero: look at the tag before the bytes.
  if (inode.tag == kInodeTag) return inode.mode == 0;
  return all_zero(inode);
}

bool dirent_is_free(const Dirent& dirent) { return dirent.tag == 0 && all_zero(dirent); }
bool hold_is_free(const Hold& hold) { return hold.tag == 0 && all_zero(hold); }

bool inode_valid(const Inode& inode, uint64_t slot, std::string* what) {
  if (inode.tag != Stamp<Inode>::kTag) return set_what(what, "bad tag"), false;
  if (!stamp_ok(inode)) return set_what(what, "unknown version " + std::to_string(inode.version)), false;
  if (!checksum_ok(inode)) return set_what(what, "checksum mismatch"), false;
  if (inode.ino != slot) return set_what(what, "slot holds inode number " + std::to_string(inode.ino)), false;
  if ((inode.flags & ~kInodeFlagsKnown) != 0) return set_what(what, "unknown flags"), false;
  if (inode.mode == 0) return true;  // a free slot keeps only its generation
  if (!known_file_type(inode.mode)) return set_what(what, "unknown file type"), false;
  if (inode.size > kMaxFileBytes) return set_what(what, "size out of range"), false;
  if (inode.extent_count > kInlineExtents && inode.extent_block == 0) {
    return set_what(what, "extent count needs an extent block but none is set"), false;
  }
  if (inode.extent_block != 0 && (inode.extent_block % kBlockSize) != 0) {
    return set_what(what, "extent block offset is not block aligned"), false;
  }
  if (inode.xattr_block != 0 && (inode.xattr_block % kBlockSize) != 0) {
    return set_what(what, "xattr block offset is not block aligned"), false;
  }
  uint32_t inline_count = inode.extent_count < kInlineExtents ? inode.extent_count : kInlineExtents;
  for (uint32_t i = 0; i < inline_count; ++i) {
    if (inode.extents[i].block_count == 0) return set_what(what, "empty inline extent"), false;
  }
  return true;
}

bool dirent_valid(const Dirent& dirent, std::string* what) {
  if (!stamp_valid(dirent, what)) return false;
  if (!checksum_ok(dirent)) return set_what(what, "checksum mismatch"), false;
  if (dirent.name_length == 0) return set_what(what, "empty name"), false;
  if (dirent.ino == 0 || dirent.parent_ino == 0) return set_what(what, "null inode number"), false;
  std::string_view name = dirent_name(dirent);
  if (name == "." || name == "..") return set_what(what, "name is . or .."), false;
  if (std::memchr(name.data(), '/', name.size()) != nullptr ||
      std::memchr(name.data(), '\0', name.size()) != nullptr) {
    return set_what(what, "name contains '/' or NUL"), false;
  }
  if (!all_zero(dirent.name + dirent.name_length, sizeof(dirent.name) - dirent.name_length)) {
    return set_what(what, "name padding is not zero"), false;
  }
  return true;
}

bool extent_block_valid(const ExtentBlock& block, std::string* what) {
  if (!stamp_valid(block, what)) return false;
  if (!checksum_ok(block)) return set_what(what, "checksum mismatch"), false;
  if (block.count == 0 || block.count > kExtentsPerBlock)
    return set_what(what, "extent count out of range"), false;
  if (block.next % kBlockSize != 0) return set_what(what, "next offset not block aligned"), false;
  return true;
}

bool chunk_map_block_valid(const ChunkMapBlock& block, uint64_t index, std::string* what) {
  if (!stamp_valid(block, what)) return false;
  if (!checksum_ok(block)) return set_what(what, "checksum mismatch"), false;
  if (block.first_chunk != index * kChunksPerMapBlock)
    return set_what(what, "first chunk does not match its place"), false;
  for (uint8_t state : block.state) {
    if (state > kChunkStateMax) return set_what(what, "unknown chunk state " + std::to_string(state)), false;
  }
  return true;
}

bool split_header_valid(const SplitHeader& header, uint64_t chunk, std::string* what) {
  if (!stamp_valid(header, what)) return false;
  if (!checksum_ok(header)) return set_what(what, "checksum mismatch"), false;
  if (header.chunk_index != chunk) return set_what(what, "chunk index does not match its place"), false;
  if ((header.bitmap[0] & 1) == 0) return set_what(what, "header block not marked in use"), false;
  unsigned used = 0;
  for (uint64_t word : header.bitmap) used += static_cast<unsigned>(std::popcount(word));
  if (used != header.used_blocks) return set_what(what, "used block count does not match the bitmap"), false;
  return true;
}

bool xattr_block_valid(const XattrBlock& block, std::string* what) {
  if (!stamp_valid(block, what)) return false;
  if (!checksum_ok(block)) return set_what(what, "checksum mismatch"), false;
  if (block.used_bytes > kXattrPayloadBytes) return set_what(what, "used bytes out of range"), false;
  // Walk the entries: each must fit, and they must fill exactly used_bytes.
  uint32_t position = 0;
  for (uint16_t i = 0; i < block.entry_count; ++i) {
    if (position + sizeof(XattrEntryHeader) > block.used_bytes)
      return set_what(what, "entry past the end"), false;
    XattrEntryHeader header;
    std::memcpy(&header, block.payload + position, sizeof header);
    if (header.name_length == 0) return set_what(what, "empty attribute name"), false;
    position += static_cast<uint32_t>(sizeof header) + header.name_length + header.value_length;
    if (position > block.used_bytes) return set_what(what, "entry past the end"), false;
  }
  if (position != block.used_bytes) return set_what(what, "entries do not fill used bytes"), false;
  return true;
}

bool hold_valid(const Hold& hold, std::string* what) {
  if (!stamp_valid(hold, what)) return false;
  if (!checksum_ok(hold)) return set_what(what, "checksum mismatch"), false;
  if (hold.ino == 0) return set_what(what, "null inode number"), false;
  return true;
}

std::string_view dirent_name(const Dirent& dirent) {
  return std::string_view(dirent.name, dirent.name_length);
}

Dirent make_dirent(uint64_t parent_ino, uint64_t ino, uint8_t file_type, std::string_view name) {
  if (name.empty() || name.size() > kNameMax) std::abort();  // broken invariant: names are checked first
  auto dirent = stamped<Dirent>();
  dirent.file_type = file_type;
  dirent.name_length = static_cast<uint8_t>(name.size());
  dirent.parent_ino = parent_ino;
  dirent.ino = ino;
  std::memcpy(dirent.name, name.data(), name.size());
  seal(dirent);
  return dirent;
}

std::string uuid_to_string(const uint8_t (&uuid)[16]) {
  char text[37];
  std::snprintf(text, sizeof text, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                uuid[0], uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7], uuid[8], uuid[9],
                uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
  return text;
}

bool uuid_from_string(std::string_view text, uint8_t (&uuid)[16]) {
  if (text.size() != 36) return false;
  size_t byte = 0;
  for (size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return false;
      ++i;
      continue;
    }
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int high = nibble(text[i]), low = nibble(text[i + 1]);
    if (high < 0 || low < 0) return false;
    uuid[byte++] = static_cast<uint8_t>(high << 4 | low);
    i += 2;
  }
  return byte == 16;
}

}  // namespace pkfs::format
