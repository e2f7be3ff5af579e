// tests/unit/takeover_test.cpp: what core keeps for a daemon that takes a
// live FUSE connection over (core::Takeover): inherited open and lookup
// counts keep an unlinked file alive exactly as long as the kernel holds
// it; unknown counts pin every inode in use until the next ordinary mount.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string_view>

#include "fs/core/filesystem.h"
#include "fs/region/region.h"
#include "support/memory_view.h"

namespace {

using namespace pkfs;
using core::Filesystem;
using core::Ino;
using format::kRootIno;

constexpr uint64_t kRegionBytes = uint64_t{64} << 20;

struct Region {
  std::unique_ptr<region::MemoryRegion> memory = std::make_unique<region::MemoryRegion>(kRegionBytes);
  std::unique_ptr<Filesystem> fs;

  Region() {
    core::FormatOptions options;
    options.data_known_zero = true;
    REQUIRE(core::format_region(*memory, options).ok());
    mount({});
  }
  void mount(const core::OpenOptions& options) {
    auto opened = Filesystem::open(testing::MemoryView::of(*memory), options);
    if (!opened) FAIL("open failed: " << opened.error().message());
    fs = std::move(opened).value();
  }
  // The previous daemon handed over (closed cleanly) or died (dropped).
  void take_over(core::Takeover mode, std::vector<core::InheritedReferences> inherited, bool clean) {
    if (clean) REQUIRE(fs->close().ok());
    fs.reset();
    core::OpenOptions options;
    options.takeover = mode;
    options.inherited = std::move(inherited);
    mount(options);
  }
  bool exists(Ino ino) const { return fs->getattr(ino).ok(); }
};

Ino create_open_unlinked(Filesystem& fs, std::string_view name) {
  auto attr = fs.mknod(kRootIno, name, S_IFREG | 0644, 0, core::Caller{});
  REQUIRE(attr.ok());
  REQUIRE(fs.open_file(attr->ino).ok());
  fs.add_references(attr->ino, 1);
  REQUIRE(fs.unlink(kRootIno, name).ok());
  return attr->ino;
}

TEST_CASE("a planned hand-over carries the counts of an unlinked open file", "[takeover]") {
  Region r;
  Ino ino = create_open_unlinked(*r.fs, "open");
  auto exported = r.fs->export_references();
  REQUIRE(exported.size() == 1);
  CHECK(exported[0].ino == ino);
  CHECK(exported[0].open_count == 1);
  CHECK(exported[0].references == 1);
  CHECK_FALSE(exported[0].pinned);

  r.take_over(core::Takeover::kExact, exported, true);
  CHECK(r.fs->open_report().orphans_reclaimed == 0);
  REQUIRE(r.exists(ino));
  // The kernel lets go: release, then forget. Then it is freed.
  REQUIRE(r.fs->release_file(ino).ok());
  CHECK(r.exists(ino));
  r.fs->drop_references(ino, 1);
  CHECK_FALSE(r.exists(ino));
}

TEST_CASE("inherited counts of a reused inode slot are ignored", "[takeover]") {
  Region r;
  Ino ino = create_open_unlinked(*r.fs, "open");
  auto exported = r.fs->export_references();
  exported[0].generation += 1;  // not this inode's life
  r.take_over(core::Takeover::kExact, exported, true);
  CHECK(r.fs->open_report().orphans_reclaimed == 1);
  CHECK_FALSE(r.exists(ino));
}

TEST_CASE("after a crash every inode in use is pinned until the next ordinary mount", "[takeover]") {
  Region r;
  Ino ino = create_open_unlinked(*r.fs, "open");
  r.take_over(core::Takeover::kUnknown, {}, false);
  CHECK(r.fs->open_report().orphans_reclaimed == 0);
  REQUIRE(r.exists(ino));
  // The handle the dead daemon gave out: its release is no error, and
  // neither it nor a forget frees the inode.
  CHECK(r.fs->release_file(ino).ok());
  r.fs->drop_references(ino, 5);
  CHECK(r.exists(ino));
  // A pinned inode goes on to the next successor as pinned.
  auto exported = r.fs->export_references();
  bool carried = false;
  for (const auto& e : exported) carried |= e.ino == ino && e.pinned;
  CHECK(carried);

  // Inodes made after the takeover are counted exactly.
  Ino fresh = create_open_unlinked(*r.fs, "fresh");
  REQUIRE(r.fs->release_file(fresh).ok());
  r.fs->drop_references(fresh, 1);
  CHECK_FALSE(r.exists(fresh));

  // The next ordinary mount reclaims the pinned orphan.
  REQUIRE(r.fs->close().ok());
  r.fs.reset();
  r.mount({});
  CHECK(r.fs->open_report().orphans_reclaimed == 1);
  CHECK_FALSE(r.exists(ino));
}

}  // namespace
