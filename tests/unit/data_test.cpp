// tests/unit/data_test.cpp: file data of core::Filesystem (fs/core/data.cpp):
// read and write at any offset, holes, growing and truncating, extent blocks,
// the largest file and the largest allocation, and fallocate with its modes.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
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
using format::kChunkSize;
using pkfs::test::code_of;

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

}  // namespace

// ---------------------------------------------------------------------------
// Data.

TEST_CASE("data written at odd offsets reads back, with holes as zeros", "[data]") {
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

TEST_CASE("a large write spans chunks and reads back in pieces", "[data]") {
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

TEST_CASE("sparse files read zeros in their holes", "[data]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 10 * kMiB, "z");
  Attr attr = attr_of(*m.fs, file);
  CHECK(attr.size == 10 * kMiB + 1);
  CHECK(attr.blocks * 512 <= kChunkSize);
  CHECK(all_zero(read_text(*m.fs, file, 3 * kMiB, kMiB)));
  CHECK(read_text(*m.fs, file, 10 * kMiB - 2, 10) == std::string("\0\0z", 3));
}

TEST_CASE("growing a file zeroes the gap, even over blocks used before", "[data]") {
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

TEST_CASE("growing a large file zeroes the gap inside its chunks", "[data]") {
  Mounted m;
  Ino file = create(*m.fs, kRootIno, "f");
  write_text(*m.fs, file, 0, std::string(4 * kMiB, '\xbb'));
  REQUIRE(set_size(*m.fs, file, kMiB).ok());
  write_text(*m.fs, file, 3 * kMiB, "end");
  CHECK(read_text(*m.fs, file, kMiB - 1, 1) == "\xbb");
  CHECK(all_zero(read_text(*m.fs, file, kMiB, 2 * kMiB)));
  CHECK(read_text(*m.fs, file, 3 * kMiB, 10) == "end");
}

TEST_CASE("truncate shrinks and grows files and gives space back", "[data]") {
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

TEST_CASE("growing an empty file to 4 MiB allocates whole chunks", "[data]") {
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

TEST_CASE("truncating an empty file past the free space leaves it sparse", "[data]") {
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

TEST_CASE("files reach the largest file size and no further", "[data]") {
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

TEST_CASE("an allocation too large for one transaction fails with ENOSPC or stays sparse", "[data]") {
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

TEST_CASE("files with many extents keep them in extent blocks", "[data]") {
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

TEST_CASE("fallocate allocates and grows the size unless told to keep it", "[data]") {
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

TEST_CASE("fallocate PUNCH_HOLE zeroes the range and frees whole blocks", "[data]") {
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

TEST_CASE("fallocate PUNCH_HOLE frees whole chunks of a large file", "[data]") {
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

TEST_CASE("fallocate ZERO_RANGE zeroes and keeps the blocks", "[data]") {
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

TEST_CASE("fallocate refuses unsupported modes with EOPNOTSUPP", "[data]") {
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

TEST_CASE("a 1 GiB fallocate on a large region is 1 GiB aligned", "[data]") {
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
