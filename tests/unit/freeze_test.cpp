// tests/unit/freeze_test.cpp: Filesystem::freeze and verify on a formatted
// MemoryRegion: records, a clean verify, a flipped data byte reported as
// corruption of that file, a changed file, a deleted file, and the hidden
// record attribute; large (guest-RAM) files checked at sampled pages on the
// critical path and whole on request.
#include <fcntl.h>
#include <sys/xattr.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/region/region.h"
#include "support/memory_view.h"

namespace {

using namespace pkfs;
using core::FileCheckStatus;
using core::Filesystem;
using core::Ino;
using format::kRootIno;

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Deterministic bytes per seed.
std::string pattern(size_t length, uint32_t seed) {
  std::string text(length, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (char& c : text) {
    state = state * 1103515245u + 12345u;
    c = static_cast<char>(state >> 16);
  }
  return text;
}

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// A formatted MemoryRegion the test keeps, and the filesystem open on it.
struct Fixture {
  std::unique_ptr<region::MemoryRegion> memory = std::make_unique<region::MemoryRegion>(96 * kMiB);
  std::unique_ptr<Filesystem> fs;

  Fixture() {
    core::FormatOptions options;
    options.data_known_zero = true;
    REQUIRE(core::format_region(*memory, options).ok());
    open(false);
  }
  void open(bool read_only) {
    fs.reset();
    core::OpenOptions options;
    options.read_only = read_only;
    auto opened = Filesystem::open(testing::MemoryView::of(*memory, read_only), options);
    if (!opened) FAIL("open: " << opened.error().message());
    fs = std::move(opened).value();
  }
  Ino file(Ino parent, std::string_view name, std::string_view content) {
    auto attr = fs->mknod(parent, name, S_IFREG | 0644, 0, {});
    if (!attr) FAIL("mknod: " << attr.error().message());
    if (!content.empty()) {
      auto written = fs->write(attr->ino, 0, bytes_of(content));
      REQUIRE(written.ok());
    }
    return attr->ino;
  }
  core::FreezeReport freeze(std::vector<std::string> paths = {}, core::FreezeOptions options = {}) {
    options.paths = std::move(paths);
    options.chunk_bytes = 64 * 1024;  // several chunks per file, several threads
    options.threads = 4;
    auto report = fs->freeze(options);
    if (!report) FAIL("freeze: " << report.error().message());
    return std::move(report).value();
  }
  core::VerifyReport verify(std::vector<std::string> paths = {}, bool full = false) {
    core::VerifyOptions options;
    options.paths = std::move(paths);
    options.full = full;
    options.threads = 3;
    auto report = fs->verify(options);
    if (!report) FAIL("verify: " << report.error().message());
    return std::move(report).value();
  }
  // The region bytes of `ino`'s data at file offset `offset`.
  std::byte* data_at(Ino ino, uint64_t offset) {
    auto extents = fs->extents(ino);
    REQUIRE(extents.ok());
    for (const format::Extent& extent : extents.value()) {
      uint64_t begin = extent.file_block * format::kBlockSize;
      if (offset >= begin && offset < begin + uint64_t{extent.block_count} * format::kBlockSize) {
        return memory->base() + uint64_t{extent.region_block} * format::kBlockSize + (offset - begin);
      }
    }
    FAIL("offset " << offset << " is in a hole");
    return nullptr;
  }
};

const core::FileCheck& find(const std::vector<core::FileCheck>& files, const std::string& path) {
  auto it =
      std::find_if(files.begin(), files.end(), [&](const core::FileCheck& f) { return f.path == path; });
  if (it == files.end()) FAIL("no report line for " << path);
  return *it;
}

// A tree: a 1 MiB+ file, a sparse file, an empty file, a nested small file.
struct Tree {
  Ino big, sparse, empty, nested, dir;
};

Tree make_tree(Fixture& f) {
  Tree tree{};
  tree.big = f.file(kRootIno, "ram", pattern(kMiB + 12345, 1));
  tree.sparse = f.file(kRootIno, "sparse", "");
  REQUIRE(f.fs->write(tree.sparse, 700 * 1024, bytes_of(pattern(5000, 2))).ok());
  tree.empty = f.file(kRootIno, "empty", "");
  auto dir = f.fs->mkdir(kRootIno, "state", 0755, {});
  REQUIRE(dir.ok());
  tree.dir = dir->ino;
  tree.nested = f.file(tree.dir, "iommu", pattern(4096 * 3 + 7, 3));
  return tree;
}

TEST_CASE("freeze records every file and verify finds them intact", "[freeze]") {
  Fixture f;
  make_tree(f);
  auto frozen = f.freeze();
  REQUIRE(frozen.files.size() == 4);
  for (const auto& file : frozen.files) CHECK(file.status == FileCheckStatus::kOk);
  CHECK(frozen.bytes_hashed == kMiB + 12345 + 700 * 1024 + 5000 + 4096 * 3 + 7);

  // freeze marked the region clean.
  f.open(true);
  CHECK(f.fs->open_report().was_clean);
  auto verified = f.verify();
  REQUIRE(verified.files.size() == 4);
  CHECK(verified.intact());
  CHECK(verified.count(FileCheckStatus::kOk) == 4);
  CHECK(verified.frozen_files == 4);
  CHECK(verified.missing_frozen == 0);
  for (const auto& file : frozen.files) CHECK(find(verified.files, file.path).hash == file.hash);
}

TEST_CASE("freeze refuses a read-only filesystem and bad chunk sizes", "[freeze]") {
  Fixture f;
  make_tree(f);
  core::FreezeOptions options;
  options.chunk_bytes = 3 * 1024 * 1024;
  auto bad = f.fs->freeze(options);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == EINVAL);
  REQUIRE(f.fs->close().ok());
  f.open(true);
  auto read_only = f.fs->freeze({});
  REQUIRE_FALSE(read_only.ok());
  CHECK(read_only.error().code() == EROFS);
}

TEST_CASE("a flipped data byte is reported as corruption of that file", "[freeze]") {
  Fixture f;
  Tree tree = make_tree(f);
  // Where the bytes live, found while the filesystem is read-write.
  std::byte* in_big = f.data_at(tree.big, 777777);
  std::byte* in_sparse = f.data_at(tree.sparse, 700 * 1024 + 10);
  f.freeze();
  *in_big ^= std::byte{0x01};  // what a new kernel scribbling on the carve-out does
  f.open(true);
  auto verified = f.verify();
  CHECK_FALSE(verified.intact());
  CHECK(verified.count(FileCheckStatus::kCorrupt) == 1);
  const auto& big = find(verified.files, "/ram");
  CHECK(big.status == FileCheckStatus::kCorrupt);
  CHECK_THAT(big.detail, Catch::Contains("content differs"));
  CHECK(find(verified.files, "/sparse").status == FileCheckStatus::kOk);
  CHECK(find(verified.files, "/state/iommu").status == FileCheckStatus::kOk);

  // Restoring the byte restores the verdict; corrupting the sparse file's
  // data is caught too.
  *in_big ^= std::byte{0x01};
  *in_sparse ^= std::byte{0x80};
  verified = f.verify();
  CHECK(find(verified.files, "/ram").status == FileCheckStatus::kOk);
  CHECK(find(verified.files, "/sparse").status == FileCheckStatus::kCorrupt);
}

TEST_CASE("a file written after freeze is changed, not corrupt", "[freeze]") {
  Fixture f;
  Tree tree = make_tree(f);
  f.freeze();
  f.open(false);
  REQUIRE(f.fs->write(tree.nested, 0, bytes_of("new")).ok());
  REQUIRE(f.fs->write(tree.empty, 0, bytes_of("grown")).ok());
  auto late = f.file(kRootIno, "late", "after freeze");
  (void)late;
  auto verified = f.verify();
  CHECK(verified.intact());
  CHECK(find(verified.files, "/state/iommu").status == FileCheckStatus::kChanged);
  CHECK(find(verified.files, "/empty").status == FileCheckStatus::kChanged);
  CHECK_THAT(find(verified.files, "/empty").detail, Catch::Contains("size 0 at freeze, 5 now"));
  CHECK(find(verified.files, "/late").status == FileCheckStatus::kMissingRecord);
  CHECK(find(verified.files, "/ram").status == FileCheckStatus::kOk);
}

TEST_CASE("a corrupt line says when the region was mounted read-write since the freeze", "[freeze]") {
  Fixture f;
  Tree tree = make_tree(f);
  f.freeze();
  f.open(true);  // read-only: not a mount that counts
  *f.data_at(tree.big, 0) ^= std::byte{1};
  auto verified = f.verify({}, true);
  REQUIRE(find(verified.files, "/ram").status == FileCheckStatus::kCorrupt);
  CHECK_THAT(find(verified.files, "/ram").detail, !Catch::Contains("mounted read-write"));
  f.open(false);  // as the daemon's mount, where a guest would resume
  verified = f.verify({}, true);
  REQUIRE(find(verified.files, "/ram").status == FileCheckStatus::kCorrupt);
  CHECK_THAT(find(verified.files, "/ram").detail,
             Catch::Contains("mounted read-write 1 time(s) since the freeze"));
}

TEST_CASE("verify counts frozen files that disappeared", "[freeze]") {
  Fixture f;
  make_tree(f);
  f.freeze();
  f.open(false);
  REQUIRE(f.fs->unlink(kRootIno, "ram").ok());
  auto verified = f.verify();
  CHECK(verified.frozen_files == 4);
  CHECK(verified.missing_frozen == 1);
  CHECK_FALSE(verified.intact());
}

TEST_CASE("freeze and verify of chosen paths", "[freeze]") {
  Fixture f;
  make_tree(f);
  auto frozen = f.freeze({"/state", "ram"});
  REQUIRE(frozen.files.size() == 2);
  CHECK(frozen.files[0].path == "/state/iommu");
  CHECK(frozen.files[1].path == "/ram");
  f.open(true);
  auto all = f.verify();
  CHECK(find(all.files, "/sparse").status == FileCheckStatus::kMissingRecord);
  CHECK(find(all.files, "/ram").status == FileCheckStatus::kOk);
  auto one = f.verify({"/state/iommu"});
  REQUIRE(one.files.size() == 1);
  CHECK(one.files[0].status == FileCheckStatus::kOk);
  core::VerifyOptions nope;
  nope.paths = {"/nope"};
  auto missing = f.fs->verify(nope);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == ENOENT);
}

TEST_CASE("the freeze record is hidden from xattr calls and keeps ctime", "[freeze]") {
  Fixture f;
  Tree tree = make_tree(f);
  REQUIRE(f.fs->setxattr(tree.big, "user.kept", "value", 0).ok());
  auto before = f.fs->getattr(tree.big);
  REQUIRE(before.ok());
  f.freeze();
  f.open(false);
  auto after = f.fs->getattr(tree.big);
  REQUIRE(after.ok());
  CHECK(after->ctime.tv_sec == before->ctime.tv_sec);
  CHECK(after->ctime.tv_nsec == before->ctime.tv_nsec);
  CHECK(after->mtime.tv_nsec == before->mtime.tv_nsec);

  auto names = f.fs->listxattr(tree.big);
  REQUIRE(names.ok());
  CHECK(names.value() == std::vector<std::string>{"user.kept"});
  auto root_names = f.fs->listxattr(kRootIno);
  REQUIRE(root_names.ok());
  CHECK(root_names->empty());
  auto got = f.fs->getxattr(tree.big, core::kFreezeXattr);
  REQUIRE_FALSE(got.ok());
  CHECK(got.error().code() == ENODATA);
  auto set = f.fs->setxattr(tree.big, core::kFreezeXattr, "v=1 forged", 0);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().code() == EPERM);
  auto removed = f.fs->removexattr(tree.big, core::kFreezeXattr);
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().code() == ENODATA);
  // The record is still there and still matches.
  CHECK(find(f.verify().files, "/ram").status == FileCheckStatus::kOk);
}

// Guest RAM and state files for the sampling tests: files above 1 MiB are
// sampled at 16 pages of 4 KiB.
constexpr uint64_t kWholeMax = kMiB;
constexpr uint32_t kSamples = 16;
constexpr uint64_t kSmallRam = 8 * kMiB;
constexpr uint64_t kLargeRam = 40 * kMiB;
constexpr uint64_t kStateBytes = 100 * 1024 + 3;

core::FreezeOptions sampling_options(bool full) {
  core::FreezeOptions options;
  options.chunk_bytes = 64 * 1024;
  options.threads = 3;
  options.whole_max_bytes = kWholeMax;
  options.samples = kSamples;
  options.full = full;
  return options;
}

struct GuestTree {
  Ino small_ram, large_ram, state;
};

GuestTree make_guest_tree(Fixture& f) {
  GuestTree tree{};
  tree.small_ram = f.file(kRootIno, "ram-small", pattern(kSmallRam, 41));
  tree.large_ram = f.file(kRootIno, "ram-large", pattern(kLargeRam, 42));
  tree.state = f.file(kRootIno, "dev-state", pattern(kStateBytes, 43));
  return tree;
}

TEST_CASE("freeze and verify hash small files whole and guest RAM at sampled pages", "[freeze]") {
  Fixture f;
  make_guest_tree(f);
  auto frozen = f.freeze({}, sampling_options(false));
  REQUIRE(frozen.files.size() == 3);
  for (const auto& file : frozen.files) CHECK(file.status == FileCheckStatus::kOk);
  CHECK(find(frozen.files, "/dev-state").sampled == false);
  CHECK(find(frozen.files, "/ram-small").sampled);
  CHECK(find(frozen.files, "/ram-large").sampled);
  // The work does not grow with guest RAM: each RAM file costs its samples,
  // a 40 MiB file as much as an 8 MiB one.
  CHECK(frozen.bytes_hashed == kStateBytes + 2 * kSamples * 4096);

  f.open(true);
  auto verified = f.verify();
  CHECK(verified.intact());
  CHECK(verified.count(FileCheckStatus::kOk) == 3);
  CHECK(verified.bytes_hashed == kStateBytes + 2 * kSamples * 4096);
  for (const auto& file : frozen.files) CHECK(find(verified.files, file.path).hash == file.hash);

  // verify --full after a sampled freeze: the samples still match, but
  // every byte cannot be vouched for.
  auto full = f.verify({}, true);
  CHECK(full.intact());
  CHECK(full.count(FileCheckStatus::kSampledOnly) == 2);
  CHECK(find(full.files, "/dev-state").status == FileCheckStatus::kOk);
  CHECK_THAT(find(full.files, "/ram-large").detail, Catch::Contains("freeze --full"));
}

TEST_CASE("the quick verify catches a flipped byte of a small file", "[freeze]") {
  Fixture f;
  GuestTree tree = make_guest_tree(f);
  std::byte* in_state = f.data_at(tree.state, kStateBytes - 1);
  f.freeze({}, sampling_options(false));
  *in_state ^= std::byte{0x04};
  f.open(true);
  auto verified = f.verify();
  CHECK_FALSE(verified.intact());
  CHECK(verified.count(FileCheckStatus::kCorrupt) == 1);
  CHECK(find(verified.files, "/dev-state").status == FileCheckStatus::kCorrupt);
  CHECK_THAT(find(verified.files, "/dev-state").detail, Catch::Contains("content differs"));
}

TEST_CASE("the quick verify catches a scribble over two strata of guest RAM", "[freeze]") {
  Fixture f;
  GuestTree tree = make_guest_tree(f);
  // What a kernel that reused the carve-out does: one byte of every page of
  // a range as long as two strata (2/16 of the file) somewhere in the
  // middle, not aligned to them. Every stratum holds a sampled page, and
  // such a range covers a whole stratum, whichever pages were drawn (one
  // stratum's length is not enough: it may straddle two and miss both).
  std::vector<std::byte*> bytes;
  for (uint64_t offset = 17 * kMiB + 5; offset < 17 * kMiB + 2 * kLargeRam / kSamples; offset += 4096)
    bytes.push_back(f.data_at(tree.large_ram, offset));
  f.freeze({}, sampling_options(false));
  for (std::byte* byte : bytes) *byte ^= std::byte{0x10};
  f.open(true);
  auto verified = f.verify();
  CHECK_FALSE(verified.intact());
  const auto& large = find(verified.files, "/ram-large");
  CHECK(large.status == FileCheckStatus::kCorrupt);
  CHECK_THAT(large.detail, Catch::Contains("sampled pages differ"));
  CHECK(find(verified.files, "/ram-small").status == FileCheckStatus::kOk);
  CHECK(find(verified.files, "/dev-state").status == FileCheckStatus::kOk);
}

TEST_CASE("verify --full after freeze --full catches one flipped byte of guest RAM", "[freeze]") {
  Fixture f;
  GuestTree tree = make_guest_tree(f);
  auto frozen = f.freeze({}, sampling_options(true));
  CHECK(frozen.bytes_hashed == kStateBytes + kSmallRam + kLargeRam + 2 * kSamples * 4096);
  CHECK_FALSE(find(frozen.files, "/ram-large").sampled);
  f.open(true);
  // The quick verify still costs samples only: the whole hash waits for --full.
  auto quick = f.verify();
  CHECK(quick.intact());
  CHECK(quick.bytes_hashed == kStateBytes + 2 * kSamples * 4096);
  auto full = f.verify({}, true);
  CHECK(full.intact());
  CHECK(full.count(FileCheckStatus::kOk) == 3);
  CHECK(full.bytes_hashed == kStateBytes + kSmallRam + kLargeRam);

  // A single flipped byte of a page no sample drew: the quick verify cannot
  // see it (its documented limit); the full one names the file. Find such
  // a page by trying: 16 of the 10240 pages are sampled.
  bool found_unsampled = false;
  for (uint64_t page = 1000; page < 1100 && !found_unsampled; ++page) {
    std::byte* byte = f.data_at(tree.large_ram, page * 4096 + 123);
    *byte ^= std::byte{0x01};
    if (f.verify().intact()) {
      found_unsampled = true;
      auto after = f.verify({}, true);
      CHECK_FALSE(after.intact());
      CHECK(after.count(FileCheckStatus::kCorrupt) == 1);
      CHECK(find(after.files, "/ram-large").status == FileCheckStatus::kCorrupt);
      CHECK_THAT(find(after.files, "/ram-large").detail, Catch::Contains("content differs"));
    } else {
      CHECK(find(f.verify().files, "/ram-large").status == FileCheckStatus::kCorrupt);
    }
    *byte ^= std::byte{0x01};
  }
  CHECK(found_unsampled);
  CHECK(f.verify({}, true).intact());
}

TEST_CASE("a small file's record is the record of builds before sampling", "[freeze]") {
  // Old builds read exactly "v=1 size= mtime_ns= chunk= xxh3= frozen_ns=":
  // a freeze that samples nothing must still verify with whole hashes, and
  // whole_max_bytes = UINT64_MAX is the old freeze.
  Fixture f;
  make_guest_tree(f);
  core::FreezeOptions options = sampling_options(false);
  options.whole_max_bytes = UINT64_MAX;
  auto frozen = f.freeze({}, options);
  CHECK(frozen.bytes_hashed == kStateBytes + kSmallRam + kLargeRam);
  for (const auto& file : frozen.files) CHECK_FALSE(file.sampled);
  f.open(true);
  auto verified = f.verify();
  CHECK(verified.count(FileCheckStatus::kOk) == 3);
  CHECK(verified.bytes_hashed == kStateBytes + kSmallRam + kLargeRam);
}

TEST_CASE("freeze refuses a sample count of zero", "[freeze]") {
  Fixture f;
  core::FreezeOptions options;
  options.samples = 0;
  auto bad = f.fs->freeze(options);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == EINVAL);
}

}  // namespace
