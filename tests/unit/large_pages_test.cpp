// tests/unit/large_pages_test.cpp: regions whose pages are larger than a
// chunk (1 GiB hugetlbfs, device-dax aligned to 1 GiB): the large-page
// layout (reserved pages, the backup in the first pages, whole guest pages
// after them), the chunk layout such regions had before it (still mounting
// and checking), allocation of guest RAM in whole aligned pages (rounding,
// one extent, fragmentation) and the errors of mapping what a page region
// cannot map. The page size is forced on ordinary memory (MemoryView's
// test_report_page_size); anonymous memory is only touched where written,
// so 2 GiB regions cost a few MiB.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/core/describe.h"
#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "fs/region/region.h"
#include "support/extent_equal.h"
#include "support/memory_view.h"
#include "support/result_checks.h"

namespace {

using namespace pkfs;
using core::Filesystem;
using core::Holder;
using core::Ino;
using format::Extent;
using format::kBlockSize;
using format::kChunkSize;
using format::kRootIno;
using pkfs::test::code_of;
using pkfs::test::message_of;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

Holder self_holder() {
  auto ticks = core::process_start_ticks(static_cast<uint32_t>(getpid()));
  REQUIRE_OK(ticks);
  return Holder{static_cast<uint32_t>(getpid()), 1000, ticks.value()};
}

// A region of `bytes` that reports pages of `page` bytes, formatted with
// the layout for `layout_page` (0: the chunk layout of older builds).
struct PageRegion {
  std::unique_ptr<region::MemoryRegion> memory;
  uint64_t page;
  format::Layout layout{};
  std::unique_ptr<Filesystem> fs;

  PageRegion(uint64_t bytes, uint64_t page_bytes, uint64_t layout_page) : page(page_bytes) {
    memory = std::make_unique<region::MemoryRegion>(bytes);
    core::FormatOptions options;
    options.data_known_zero = true;
    options.layout.page_bytes = layout_page;
    auto formatted = core::format_region(*memory, options);
    REQUIRE_OK(formatted);
    layout = formatted.value();
    mount();
  }
  std::unique_ptr<testing::MemoryView> view(bool read_only = false) const {
    auto v = testing::MemoryView::of(*memory, read_only);
    v->test_report_page_size(page);
    return v;
  }
  void mount() {
    auto opened = Filesystem::open(view(), {});
    if (!opened) FAIL("open failed: " << opened.error().message());
    fs = std::move(opened).value();
  }
  void remount() {
    REQUIRE_OK(fs->close());
    fs.reset();
    mount();
  }
  format::Superblock superblock(uint64_t offset = 0) const {
    format::Superblock sb;
    std::memcpy(&sb, memory->base() + offset, sizeof sb);
    return sb;
  }
  void require_clean() const {
    auto report = fsck::check_region(*view(true));
    REQUIRE_OK(report);
    std::string problems;
    for (const auto& problem : report->problems) problems += problem.code + ": " + problem.message + "\n";
    INFO(problems);
    CHECK(report->clean());
  }
  Filesystem* operator->() const { return fs.get(); }
};

Ino create(Filesystem& fs, std::string_view name) {
  auto attr = fs.mknod(kRootIno, name, S_IFREG | 0644, 0, {});
  if (!attr) FAIL("mknod " << name << ": " << attr.error().message());
  return attr->ino;
}

Ino sized(Filesystem& fs, std::string_view name, uint64_t bytes) {
  Ino ino = create(fs, name);
  REQUIRE_OK(fs.fallocate(ino, 0, 0, bytes));
  return ino;
}

std::vector<Extent> extents_of(Filesystem& fs, Ino ino) {
  auto extents = fs.extents(ino);
  REQUIRE_OK(extents);
  return extents.value();
}

uint64_t offset_of(const Extent& extent) { return uint64_t{extent.region_block} * kBlockSize; }
uint64_t bytes_of(const Extent& extent) { return uint64_t{extent.block_count} * kBlockSize; }

}  // namespace

TEST_CASE("the large-page layout keeps every page after the reserved ones whole", "[large_pages]") {
  format::LayoutOptions options;
  options.page_bytes = kGiB;
  auto two = format::compute_layout(2 * kGiB, options);
  REQUIRE_OK(two);
  CHECK(two->page_bytes == kGiB);
  CHECK(two->reserved_pages == 1);
  CHECK(two->guest_pages == 1);
  CHECK(two->backup_chunk == 511);
  CHECK(two->backup_offset == kGiB - kBlockSize);
  CHECK(two->meta_chunk(511));
  CHECK_FALSE(two->meta_chunk(1023));  // the last chunk is data
  CHECK_FALSE(two->meta_chunk(510));   // the small-file area
  CHECK(two->small_area_end() == 511);
  CHECK(two->in_data_area(512 * 512, 512 * 512));
  CHECK_FALSE(two->in_data_area(510 * 512, 3 * 512));  // across the backup chunk
  // Metadata and usable space as in the chunk layout.
  auto chunk_layout = format::compute_layout(2 * kGiB, {});
  REQUIRE_OK(chunk_layout);
  CHECK(chunk_layout->page_bytes == 0);
  CHECK(chunk_layout->backup_offset == 2 * kGiB - kBlockSize);
  CHECK(two->data_offset == chunk_layout->data_offset);
  CHECK(two->usable_bytes == chunk_layout->usable_bytes);

  auto sixteen = format::compute_layout(16 * kGiB, options);
  REQUIRE_OK(sixteen);
  CHECK(sixteen->reserved_pages == 1);
  CHECK(sixteen->guest_pages == 15);
  auto tebibyte = format::compute_layout(1024 * kGiB, options);
  REQUIRE_OK(tebibyte);
  CHECK(tebibyte->reserved_pages == 3);  // 2.4 GiB of metadata
  CHECK(tebibyte->guest_pages == 1021);
  CHECK(tebibyte->backup_offset == 3 * kGiB - kBlockSize);

  // One page is all metadata: nothing would be left for guest RAM.
  auto one = format::compute_layout(kGiB, options);
  CHECK(code_of(one) == EINVAL);
  CHECK_THAT(message_of(one), Catch::Contains("no whole page of 1024 MiB for guest RAM"));
  options.page_bytes = 3 * kChunkSize;
  CHECK(code_of(format::compute_layout(2 * kGiB, options)) == EINVAL);  // not a power of two

  // The superblock says so, and its layout reads back.
  auto sb = format::make_superblock(two.value());
  CHECK(sb.feature_incompat == format::kFeatureIncompatPageLayout);
  CHECK(sb.page_bytes == kGiB);
  CHECK(format::check_compatibility(sb).access == format::Access::kReadWrite);
  auto back = format::layout_from_superblock(sb, 2 * kGiB);
  REQUIRE_OK(back);
  CHECK(back->backup_offset == two->backup_offset);
  sb.page_bytes = 0;
  format::seal(sb);
  CHECK(code_of(format::layout_from_superblock(sb, 2 * kGiB)) == EUCLEAN);
  auto plain = format::make_superblock(chunk_layout.value());
  plain.page_bytes = kGiB;  // without the feature bit
  CHECK(code_of(format::layout_from_superblock(plain, 2 * kGiB)) == EUCLEAN);
}

TEST_CASE("a 2 GiB region of 1 GiB pages: small files in the first page, guest RAM in the second",
          "[large_pages]") {
  PageRegion r(2 * kGiB, kGiB, kGiB);
  CHECK(r.superblock().feature_incompat == format::kFeatureIncompatPageLayout);
  auto backup = r.superblock(kGiB - kBlockSize);
  REQUIRE_OK(format::verify_superblock(backup));
  CHECK(backup.backup_offset == kGiB - kBlockSize);

  // The example: files smaller than a page go to the first page.
  Ino ram = sized(*r.fs, "ram", 512 * kMiB);
  Ino ram2 = sized(*r.fs, "ram2", 100 * kMiB);
  Ino s = create(*r.fs, "s");
  REQUIRE_OK(r->write(s, 0, std::as_bytes(std::span("hello\n", 6))));
  for (Ino ino : {ram, ram2, s}) {
    for (const Extent& extent : extents_of(*r.fs, ino)) {
      INFO("inode " << ino << " extent at " << offset_of(extent));
      CHECK(offset_of(extent) + bytes_of(extent) <= kGiB - kChunkSize);
      WARN("inode " << ino << ": extent at region offset 0x" << std::hex << offset_of(extent) << ", 0x"
                    << bytes_of(extent) << " bytes");
    }
  }
  // So the guest page is whole: a 1 GiB file gets it, in one extent.
  Ino guest = sized(*r.fs, "guest", kGiB);
  auto extents = extents_of(*r.fs, guest);
  REQUIRE(extents.size() == 1);
  CHECK(offset_of(extents[0]) == kGiB);
  CHECK(bytes_of(extents[0]) == kGiB);
  REQUIRE_OK(r->acquire_hold(guest, self_holder()));
  CHECK(extents_of(*r.fs, guest) == extents);

  // A file smaller than a page would cost a whole one, and none is left.
  auto refused = r->acquire_hold(ram, self_holder());
  CHECK(code_of(refused) == ENOSPC);
  CHECK_THAT(message_of(refused), Catch::Contains("1 more whole 1 GiB page(s)") &&
                                      Catch::Contains("a file smaller than a page costs a whole page") &&
                                      Catch::Contains("0 free whole page(s)"));
  r.remount();
  r.require_clean();
}

TEST_CASE("guest RAM that is not a whole number of pages is rounded up to whole pages", "[large_pages]") {
  // 16 MiB pages stand for 1 GiB ones: the rules are the same.
  PageRegion r(64 * kMiB, 16 * kMiB, 16 * kMiB);
  REQUIRE(r.layout.reserved_pages == 1);
  REQUIRE(r.layout.guest_pages == 3);
  Ino ram = sized(*r.fs, "ram", 20 * kMiB);
  auto extents = extents_of(*r.fs, ram);
  REQUIRE(extents.size() == 1);
  CHECK(offset_of(extents[0]) % (16 * kMiB) == 0);
  CHECK(offset_of(extents[0]) >= 16 * kMiB);
  CHECK(bytes_of(extents[0]) == 32 * kMiB);  // two pages for 20 MiB
  CHECK(r->getattr(ram)->size == 20 * kMiB);
  // Mapping does not move it, growing up to the page does not allocate.
  REQUIRE_OK(r->acquire_hold(ram, self_holder()));
  CHECK(extents_of(*r.fs, ram) == extents);
  core::SetAttr grow;
  grow.size = 32 * kMiB;
  REQUIRE_OK(r->setattr(ram, grow, {}));
  CHECK(extents_of(*r.fs, ram) == extents);

  // ftruncate from empty (how QEMU sizes a file) allocates the same way.
  Ino other = create(*r.fs, "other");
  core::SetAttr size;
  size.size = 16 * kMiB;
  REQUIRE_OK(r->setattr(other, size, {}));
  auto other_extents = extents_of(*r.fs, other);
  REQUIRE(other_extents.size() == 1);
  CHECK(offset_of(other_extents[0]) == 48 * kMiB);
  CHECK(bytes_of(other_extents[0]) == 16 * kMiB);
  // Shrinking gives back whole pages only: the page it keeps stays whole.
  size.size = 5 * kMiB;
  REQUIRE_OK(r->setattr(other, size, {}));
  CHECK(extents_of(*r.fs, other) == other_extents);
  size.size = 0;
  REQUIRE_OK(r->setattr(other, size, {}));
  CHECK(extents_of(*r.fs, other).empty());
  r.remount();
  r.require_clean();
}

TEST_CASE("pkfsctl info's free whole pages follow allocation, and a chunk layout has none", "[large_pages]") {
  auto line = [](Filesystem& fs) {
    for (const auto& [key, value] : core::describe(fs))
      if (key == "Free whole pages") return value;
    return std::string("<none>");
  };
  PageRegion r(64 * kMiB, 16 * kMiB, 16 * kMiB);
  CHECK(line(*r.fs) == "3 of 3 (16 MiB each)");
  sized(*r.fs, "ram", 20 * kMiB);  // two pages
  CHECK(line(*r.fs) == "1 of 3 (16 MiB each)");
  sized(*r.fs, "small", 8192);  // in the reserved page
  CHECK(line(*r.fs) == "1 of 3 (16 MiB each)");
  r.remount();
  CHECK(line(*r.fs) == "1 of 3 (16 MiB each)");
  REQUIRE_OK(r->unlink(kRootIno, "ram"));
  CHECK(line(*r.fs) == "3 of 3 (16 MiB each)");

  PageRegion chunks(64 * kMiB, 2 * kMiB, 0);
  CHECK(line(*chunks.fs) == "<none>");
}

TEST_CASE("fragmented free space: guest RAM in several page-aligned extents, and a clear mapping error",
          "[large_pages]") {
  PageRegion r(64 * kMiB, 16 * kMiB, 16 * kMiB);
  const uint64_t small_chunks = r.layout.backup_chunk - r.layout.metadata_chunks;
  REQUIRE(small_chunks >= 1);
  // Fill the small-file area, then the three guest pages with 2 MiB files.
  sized(*r.fs, "filler", small_chunks * kChunkSize);
  std::vector<Ino> pieces;
  pieces.reserve(24);
  for (int i = 0; i < 24; ++i) pieces.push_back(sized(*r.fs, "piece" + std::to_string(i), kChunkSize));
  CHECK(offset_of(extents_of(*r.fs, pieces[0])[0]) == 16 * kMiB);
  // Half of page 1 and half of page 2 free: a page's worth, no whole page.
  for (int i : {0, 1, 2, 3, 12, 13, 14, 15}) REQUIRE_OK(r->unlink(kRootIno, "piece" + std::to_string(i)));
  auto refused = r->acquire_hold(pieces[16], self_holder());
  CHECK(code_of(refused) == ENOSPC);
  CHECK_THAT(message_of(refused), Catch::Contains("free space is fragmented") &&
                                      Catch::Contains("16 MiB page") && Catch::Contains("copy an unheld"));

  // Free two whole pages that are not adjacent: 32 MiB of guest RAM gets
  // one extent per page, each page aligned, so libpkfs can map it.
  for (int i = 4; i < 8; ++i) REQUIRE_OK(r->unlink(kRootIno, "piece" + std::to_string(i)));
  for (int i = 16; i < 24; ++i) REQUIRE_OK(r->unlink(kRootIno, "piece" + std::to_string(i)));
  Ino ram = sized(*r.fs, "ram", 32 * kMiB);
  auto extents = extents_of(*r.fs, ram);
  REQUIRE(extents.size() == 2);
  for (const Extent& extent : extents) {
    CHECK(offset_of(extent) % (16 * kMiB) == 0);
    CHECK(bytes_of(extent) == 16 * kMiB);
  }
  REQUIRE_OK(r->acquire_hold(ram, self_holder()));
  CHECK(extents_of(*r.fs, ram) == extents);
  r.remount();
  r.require_clean();
}

TEST_CASE("a region of 1 GiB pages in the chunk layout of older builds still mounts and checks",
          "[large_pages]") {
  PageRegion r(2 * kGiB, kGiB, 0);
  CHECK(r.superblock().feature_incompat == 0);
  CHECK(r.superblock().page_bytes == 0);
  CHECK(r.layout.backup_offset == 2 * kGiB - kBlockSize);
  // No whole page is free in it: guest RAM falls back to chunks, and
  // mapping says why it cannot.
  Ino ram = sized(*r.fs, "ram", kGiB);
  CHECK(r->getattr(ram)->size == kGiB);
  auto refused = r->acquire_hold(ram, self_holder());
  CHECK(code_of(refused) == ENOSPC);
  CHECK_THAT(message_of(refused), Catch::Contains("1 GiB page"));
  r.remount();
  r.require_clean();
}

TEST_CASE("the backup superblock of the large-page layout is found when the primary is unreadable",
          "[large_pages]") {
  PageRegion r(64 * kMiB, 16 * kMiB, 16 * kMiB);
  REQUIRE_OK(r->close());
  r.fs.reset();
  const uint64_t backup = 16 * kMiB - kBlockSize;
  // Torn: the primary's own backup_offset points there.
  r.memory->base()[0x40] ^= std::byte{1};
  CHECK(format::locate_backup_superblock(r.memory->base(), r.memory->size(), 16 * kMiB) == backup);
  CHECK(format::locate_backup_superblock(r.memory->base(), r.memory->size(), 4096) == backup);
  // Gone: found by the region's page size.
  std::memset(r.memory->base(), 0, kBlockSize);
  CHECK(format::locate_backup_superblock(r.memory->base(), r.memory->size(), 16 * kMiB) == backup);
  auto report = fsck::repair_region(*r.view());
  REQUIRE_OK(report);
  r.mount();
  r.require_clean();
}

TEST_CASE("a torn primary naming a backup near 2^64 adds no candidate past the region",
          "[large_pages][bounds]") {
  // Old code checked offset + 4096 > size, which wraps for these offsets:
  // the search then read 4 KiB before the region's mapping.
  format::Superblock torn{};
  torn.magic = format::kSuperblockMagic;
  const uint64_t size = 64 * kMiB;
  for (uint64_t offset : {~uint64_t{0} - 4095, ~uint64_t{0} - 4096 + 1, ~uint64_t{0} - (2 * kMiB) + 1, size,
                          size - 1, size + 2 * kMiB - 4096}) {
    torn.backup_offset = offset;
    for (uint64_t candidate : format::backup_superblock_candidates(torn, size, 16 * kMiB)) {
      INFO("backup_offset " << offset << " gave candidate " << candidate);
      CHECK(candidate <= size - format::kBlockSize);
      CHECK(candidate >= 2 * kMiB);
    }
  }
}
