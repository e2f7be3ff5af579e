// tests/unit/holds_test.cpp: holds of directly mapped files (core part of
// direct mapping) and the guest-RAM allocation they rely on: the hold table
// across restarts, holder liveness (injected and through the real /proc),
// what a hold forbids and allows, reclaim of unlinked held files, and the
// relocation that makes a file mappable on a region of 2 MiB pages.
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "fs/region/region.h"
#include "support/data_pattern.h"
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

// The test process itself as a holder: alive for the real /proc check.
Holder self_holder() {
  auto ticks = core::process_start_ticks(static_cast<uint32_t>(getpid()));
  REQUIRE_OK(ticks);
  return Holder{static_cast<uint32_t>(getpid()), 1000, ticks.value()};
}

// A holder that is alive only for an injected check (its start time never
// matches a real process).
Holder fake_holder(uint32_t pid) { return Holder{pid, 4242, 1}; }

struct Mounted {
  std::unique_ptr<region::MemoryRegion> memory;
  uint64_t page_size = 4096;
  std::unique_ptr<Filesystem> fs;
  std::vector<std::string> log;

  explicit Mounted(uint64_t bytes = 64 * kMiB, uint64_t page = 4096, uint64_t hold_count = 1024)
      : page_size(page) {
    memory = std::make_unique<region::MemoryRegion>(bytes);
    core::FormatOptions options;
    options.data_known_zero = true;
    options.layout.hold_count = hold_count;
    REQUIRE_OK(core::format_region(*memory, options));
    mount();
  }
  Result<std::unique_ptr<Filesystem>> try_mount(core::OpenOptions options = {}, bool read_only = false) {
    auto view = testing::MemoryView::of(*memory, read_only);
    view->test_report_page_size(page_size);
    options.log = [this](const std::string& line) { log.push_back(line); };
    options.read_only = options.read_only || read_only;
    return Filesystem::open(std::move(view), options);
  }
  void mount(const core::OpenOptions& options = {}) {
    auto opened = try_mount(options);
    if (!opened) FAIL("open failed: " << opened.error().message());
    fs = std::move(opened).value();
  }
  void remount(const core::OpenOptions& options = {}) {
    REQUIRE_OK(fs->close());
    fs.reset();
    mount(options);
  }
  Filesystem* operator->() const { return fs.get(); }
  void require_clean() {
    auto report = fsck::check_region(*testing::MemoryView::of(*memory, true));
    REQUIRE_OK(report);
    std::string problems;
    for (const auto& problem : report->problems) problems += problem.code + ": " + problem.message + "\n";
    INFO(problems);
    CHECK(report->clean());
  }
};

Ino create(Filesystem& fs, std::string_view name, Ino parent = kRootIno) {
  auto attr = fs.mknod(parent, name, S_IFREG | 0644, 0, {});
  if (!attr) FAIL("mknod " << name << ": " << attr.error().message());
  return attr->ino;
}

std::vector<std::byte> read_all(Filesystem& fs, Ino ino) {
  auto attr = fs.getattr(ino);
  REQUIRE_OK(attr);
  std::vector<std::byte> data(attr->size);
  auto read = fs.read(ino, 0, data);
  REQUIRE_OK(read);
  REQUIRE(read.value() == data.size());
  return data;
}

Result<core::Attr> set_size(Filesystem& fs, Ino ino, uint64_t size) {
  core::SetAttr change;
  change.size = size;
  return fs.setattr(ino, change, {});
}

uint64_t free_blocks(Filesystem& fs) {
  auto statfs = fs.statfs();
  REQUIRE_OK(statfs);
  return statfs->free_blocks;
}

std::vector<Extent> extents_of(Filesystem& fs, Ino ino) {
  auto extents = fs.extents(ino);
  REQUIRE_OK(extents);
  return extents.value();
}

// Every page of [0, round_up(size, page)) in one extent, page aligned in the
// file and the region: what a direct mapping with `page` pages needs.
bool mappable(Filesystem& fs, Ino ino, uint64_t page) {
  uint64_t size = fs.getattr(ino)->size;
  uint64_t page_blocks = page / kBlockSize;
  uint64_t end = (size + page - 1) / page * page_blocks;
  for (uint64_t block = 0; block < end; block += page_blocks) {
    bool found = false;
    for (const Extent& extent : extents_of(fs, ino)) {
      if (extent.file_block <= block && extent.file_block + extent.block_count >= block + page_blocks &&
          (extent.region_block + (block - extent.file_block)) % page_blocks == 0) {
        found = true;
      }
    }
    if (!found) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// The hold table.

TEST_CASE("a hold is acquired, listed and released", "[holds]") {
  Mounted m;
  Ino file = create(*m.fs, "ram");
  test::write_pattern(*m.fs, file, 0, 10000, 1);
  Holder holder = self_holder();
  auto id = m->acquire_hold(file, holder);
  REQUIRE_OK(id);
  auto second = m->acquire_hold(file, fake_holder(77));
  REQUIRE_OK(second);
  CHECK(second.value() != id.value());
  auto holds = m->list_holds();
  REQUIRE_OK(holds);
  REQUIRE(holds->size() == 2);
  const core::HoldInfo& info = holds->front();
  CHECK(info.id == id.value());
  CHECK(info.ino == file);
  CHECK(info.generation == m->getattr(file)->generation);
  CHECK(info.holder.pid == holder.pid);
  CHECK(info.holder.uid == holder.uid);
  CHECK(info.holder.start_ticks == holder.start_ticks);
  REQUIRE_OK(m->release_hold(id.value()));
  CHECK(code_of(m->release_hold(id.value())) == ENOENT);
  CHECK(code_of(m->release_hold(123456)) == ENOENT);
  REQUIRE_OK(m->release_hold(second.value()));
  CHECK(m->list_holds()->empty());
  m.require_clean();
}

TEST_CASE("acquire_hold refuses what cannot be mapped", "[holds]") {
  Mounted m;
  auto dir = m->mkdir(kRootIno, "d", 0755, {});
  REQUIRE_OK(dir);
  CHECK(code_of(m->acquire_hold(dir->ino, self_holder())) == EINVAL);
  auto link = m->symlink(kRootIno, "l", "d", {});
  REQUIRE_OK(link);
  CHECK(code_of(m->acquire_hold(link->ino, self_holder())) == EINVAL);
  Ino empty = create(*m.fs, "empty");
  CHECK(code_of(m->acquire_hold(empty, self_holder())) == EINVAL);
  CHECK(code_of(m->acquire_hold(9999, self_holder())) == ENOENT);
  Ino file = create(*m.fs, "f");
  test::write_pattern(*m.fs, file, 0, 100, 1);
  CHECK(code_of(m->acquire_hold(file, Holder{0, 0, 0})) == EINVAL);
  CHECK(m->list_holds()->empty());
}

TEST_CASE("a full hold table fails with ENOSPC and a released slot is reused", "[holds]") {
  Mounted m(64 * kMiB, 4096, 2);
  Ino file = create(*m.fs, "f");
  test::write_pattern(*m.fs, file, 0, 100, 1);
  auto a = m->acquire_hold(file, self_holder());
  auto b = m->acquire_hold(file, fake_holder(77));
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  CHECK(code_of(m->acquire_hold(file, fake_holder(78))) == ENOSPC);
  REQUIRE_OK(m->release_hold(a.value()));
  auto c = m->acquire_hold(file, self_holder());
  REQUIRE_OK(c);
  CHECK(c.value() == a.value());
}

TEST_CASE("a read-only filesystem refuses to take or release holds", "[holds]") {
  Mounted m;
  Ino file = create(*m.fs, "f");
  test::write_pattern(*m.fs, file, 0, 100, 1);
  auto id = m->acquire_hold(file, self_holder());
  REQUIRE_OK(id);
  REQUIRE_OK(m->close());
  m.fs.reset();
  auto opened = m.try_mount({}, true);
  REQUIRE_OK(opened);
  Filesystem& fs = *opened.value();
  CHECK(fs.list_holds()->size() == 1);
  CHECK(code_of(fs.acquire_hold(file, self_holder())) == EROFS);
  CHECK(code_of(fs.release_hold(id.value())) == EROFS);
  CHECK(code_of(fs.release_stale_holds()) == EROFS);
}

// ---------------------------------------------------------------------------
// Hold policy: one hold per process and file, limits per process and uid.
// (Old code: a second hold by the same process succeeded, and acquire_hold
// took no limits.)

TEST_CASE("a process holds a file once: a second hold is EEXIST naming the first", "[holds]") {
  Mounted m;
  Ino file = create(*m.fs, "ram");
  test::write_pattern(*m.fs, file, 0, 10000, 1);
  Holder holder = self_holder();
  auto first = m->acquire_hold(file, holder);
  REQUIRE_OK(first);
  auto again = m->acquire_hold(file, holder);
  CHECK(code_of(again) == EEXIST);
  CHECK_THAT(again.error().message(), Catch::Contains("hold " + std::to_string(first.value())));
  CHECK(m->list_holds()->size() == 1);
  // A recycled pid (another start time) is another process; another pid too.
  REQUIRE_OK(m->acquire_hold(file, Holder{holder.pid, holder.uid, holder.start_ticks + 1}));
  REQUIRE_OK(m->acquire_hold(file, fake_holder(77)));
  // Once released, the same process may hold it again.
  REQUIRE_OK(m->release_hold(first.value()));
  REQUIRE_OK(m->acquire_hold(file, holder));
  // The same process may hold other files.
  Ino other = create(*m.fs, "other");
  test::write_pattern(*m.fs, other, 0, 100, 2);
  REQUIRE_OK(m->acquire_hold(other, holder));
  CHECK(m->list_holds()->size() == 4);
}

TEST_CASE("hold limits per process and per uid are EDQUOT naming the limit; root is exempt only per uid",
          "[holds]") {
  Mounted m(64 * kMiB, kChunkSize);
  std::vector<Ino> files;
  for (int i = 0; i < 6; ++i) {
    files.push_back(create(*m.fs, "f" + std::to_string(i)));
    test::write_pattern(*m.fs, files.back(), 0, 5000, static_cast<uint32_t>(i));
  }
  const core::HoldLimits limits{2, 3};
  const Holder a{100, 1000, 1}, b{101, 1000, 1}, c{102, 2000, 1};
  auto a0 = m->acquire_hold(files[0], a, limits);
  REQUIRE_OK(a0);
  REQUIRE_OK(m->acquire_hold(files[1], a, limits));
  // The third hold of process a: refused before anything moves (on 2 MiB
  // pages this packed file would be relocated into a chunk of its own).
  const auto packed = extents_of(*m.fs, files[2]);
  auto over = m->acquire_hold(files[2], a, limits);
  CHECK(code_of(over) == EDQUOT);
  CHECK_THAT(over.error().message(), Catch::Contains("per process") && Catch::Contains("(2)"));
  CHECK(extents_of(*m.fs, files[2]) == packed);
  // Process b of the same uid: one more, then the uid's limit.
  REQUIRE_OK(m->acquire_hold(files[2], b, limits));
  auto over_uid = m->acquire_hold(files[3], b, limits);
  CHECK(code_of(over_uid) == EDQUOT);
  CHECK_THAT(over_uid.error().message(), Catch::Contains("per uid") && Catch::Contains("(3)"));
  // Another uid has its own count.
  REQUIRE_OK(m->acquire_hold(files[3], c, limits));
  // A released hold gives its room back.
  REQUIRE_OK(m->release_hold(a0.value()));
  REQUIRE_OK(m->acquire_hold(files[3], b, limits));
  // Root: no per-uid limit, the per-process one still applies.
  const Holder root1{200, 0, 1}, root2{201, 0, 1};
  REQUIRE_OK(m->acquire_hold(files[0], root1, limits));
  REQUIRE_OK(m->acquire_hold(files[1], root1, limits));
  CHECK(code_of(m->acquire_hold(files[4], root1, limits)) == EDQUOT);
  REQUIRE_OK(m->acquire_hold(files[4], root2, limits));
  REQUIRE_OK(m->acquire_hold(files[5], root2, limits));
  // No limits (the default): as many as the table holds.
  for (Ino file : files) {
    auto taken = m->acquire_hold(file, Holder{300, 1000, 1});
    REQUIRE_OK(taken);
  }
  m.require_clean();
}

// ---------------------------------------------------------------------------
// What a hold forbids and allows.

TEST_CASE("a held file cannot shrink or lose blocks but may grow and change otherwise", "[holds]") {
  Mounted m;
  Ino dir = m->mkdir(kRootIno, "vm1", 0755, {})->ino;
  Ino file = create(*m.fs, "ram", dir);
  REQUIRE_OK(set_size(*m.fs, file, 4 * kMiB));
  test::write_pattern(*m.fs, file, 0, 100000, 2);
  auto id = m->acquire_hold(file, self_holder());
  REQUIRE_OK(id);
  const std::vector<Extent> mapped = extents_of(*m.fs, file);

  CHECK(code_of(set_size(*m.fs, file, 2 * kMiB)) == EBUSY);
  CHECK(code_of(set_size(*m.fs, file, 0)) == EBUSY);
  CHECK(code_of(m->fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kChunkSize)) == EBUSY);
  CHECK(m->getattr(file)->size == 4 * kMiB);
  CHECK(extents_of(*m.fs, file) == mapped);

  // Zeroing keeps the blocks where they are.
  REQUIRE_OK(m->fallocate(file, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  CHECK(extents_of(*m.fs, file) == mapped);
  // Growth by truncate, fallocate and write.
  REQUIRE_OK(set_size(*m.fs, file, 4 * kMiB));  // the same size is no shrink
  REQUIRE_OK(set_size(*m.fs, file, 5 * kMiB));
  REQUIRE_OK(m->fallocate(file, 0, 5 * kMiB, kChunkSize));
  test::write_pattern(*m.fs, file, 8 * kMiB, 5000, 3);
  CHECK(m->getattr(file)->size == 8 * kMiB + 5000);
  std::vector<Extent> grown = extents_of(*m.fs, file);
  for (const Extent& old : mapped) {
    bool kept = false;
    for (const Extent& now : grown) {
      kept |= now.file_block <= old.file_block &&
              now.region_block + (old.file_block - now.file_block) == old.region_block &&
              now.file_block + now.block_count >= old.file_block + old.block_count;
    }
    CHECK(kept);
  }
  // Names, modes, links and xattrs are unaffected.
  REQUIRE_OK(m->rename(dir, "ram", kRootIno, "moved", 0));
  core::SetAttr mode;
  mode.mode = 0600;
  REQUIRE_OK(m->setattr(file, mode, {}));
  REQUIRE_OK(m->link(file, dir, "again"));
  REQUIRE_OK(m->setxattr(file, "user.vm", "1", 0));
  REQUIRE_OK(m->removexattr(file, "user.vm"));

  REQUIRE_OK(m->release_hold(id.value()));
  REQUIRE_OK(set_size(*m.fs, file, 100));
  REQUIRE_OK(m->fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  m.require_clean();
}

TEST_CASE("an unlinked held file lives until its last hold is released", "[holds]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  Ino file = create(*m.fs, "ram");
  REQUIRE_OK(set_size(*m.fs, file, 6 * kMiB));
  test::write_pattern(*m.fs, file, 0, 300000, 4);
  const auto data = read_all(*m.fs, file);
  const uint64_t used = free_blocks(*m.fs);
  auto a = m->acquire_hold(file, self_holder());
  auto b = m->acquire_hold(file, fake_holder(99));
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  REQUIRE_OK(m->unlink(kRootIno, "ram"));
  CHECK(code_of(m->lookup(kRootIno, "ram")) == ENOENT);
  CHECK(m->getattr(file)->nlink == 0);
  CHECK(read_all(*m.fs, file) == data);
  CHECK(free_blocks(*m.fs) == used);
  m.require_clean();
  REQUIRE_OK(m->release_hold(a.value()));
  CHECK(m->getattr(file).ok());
  CHECK(free_blocks(*m.fs) == used);
  // An open handle keeps it past the last hold, too.
  REQUIRE_OK(m->open_file(file));
  REQUIRE_OK(m->release_hold(b.value()));
  CHECK(m->getattr(file).ok());
  REQUIRE_OK(m->release_file(file));
  CHECK(code_of(m->getattr(file)) == ENOENT);
  CHECK(free_blocks(*m.fs) == empty);
  m.require_clean();
}

TEST_CASE("renaming over a held file keeps it until the hold is released", "[holds]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  Ino victim = create(*m.fs, "victim");
  test::write_pattern(*m.fs, victim, 0, 20000, 5);
  Ino other = create(*m.fs, "other");
  auto id = m->acquire_hold(victim, self_holder());
  REQUIRE_OK(id);
  REQUIRE_OK(m->rename(kRootIno, "other", kRootIno, "victim", 0));
  CHECK(m->getattr(victim)->nlink == 0);
  REQUIRE_OK(m->release_hold(id.value()));
  CHECK(code_of(m->getattr(victim)) == ENOENT);
  REQUIRE_OK(m->unlink(kRootIno, "victim"));
  CHECK(code_of(m->getattr(other)) == ENOENT);
  CHECK(free_blocks(*m.fs) == empty);
}

// ---------------------------------------------------------------------------
// Restarts and liveness.

TEST_CASE("holds survive close and reopen, and a held orphan stays", "[holds]") {
  Mounted m;
  Ino kept = create(*m.fs, "kept");
  test::write_pattern(*m.fs, kept, 0, 5000, 6);
  Ino orphan = create(*m.fs, "orphan");
  test::write_pattern(*m.fs, orphan, 0, 7000, 7);
  const auto orphan_data = read_all(*m.fs, orphan);
  auto a = m->acquire_hold(kept, self_holder());
  auto b = m->acquire_hold(orphan, self_holder());
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  REQUIRE_OK(m->unlink(kRootIno, "orphan"));

  m.remount();
  CHECK(m->open_report().stale_holds_released == 0);
  CHECK(m->open_report().holds_kept == 2);
  CHECK(m->open_report().orphans_reclaimed == 0);
  auto holds = m->list_holds();
  REQUIRE_OK(holds);
  REQUIRE(holds->size() == 2);
  CHECK(holds->at(0).id == a.value());
  CHECK(holds->at(1).ino == orphan);
  CHECK(read_all(*m.fs, orphan) == orphan_data);
  CHECK(code_of(set_size(*m.fs, kept, 0)) == EBUSY);  // the hold still counts
  m.require_clean();

  // A crash (no close) keeps them too.
  m.fs.reset();
  m.mount();
  CHECK(m->list_holds()->size() == 2);
  const uint64_t before = free_blocks(*m.fs);
  REQUIRE_OK(m->release_hold(b.value()));
  CHECK(code_of(m->getattr(orphan)) == ENOENT);
  CHECK(free_blocks(*m.fs) > before);
  m.require_clean();
}

TEST_CASE("stale holds are released at a read-write open, never at a read-only one", "[holds]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  Ino live = create(*m.fs, "live");
  test::write_pattern(*m.fs, live, 0, 5000, 8);
  Ino gone = create(*m.fs, "gone");
  test::write_pattern(*m.fs, gone, 0, 70000, 9);
  REQUIRE_OK(m->acquire_hold(live, fake_holder(100)));
  auto stale = m->acquire_hold(gone, fake_holder(200));
  REQUIRE_OK(stale);
  REQUIRE_OK(m->unlink(kRootIno, "gone"));
  REQUIRE_OK(m->close());
  m.fs.reset();

  core::OpenOptions options;
  options.holder_alive = [](const format::Hold& hold) { return hold.pid == 100; };
  {
    // Read-only: nothing changes, the orphan stays.
    auto opened = m.try_mount(options, true);
    REQUIRE_OK(opened);
    CHECK(opened.value()->list_holds()->size() == 2);
    CHECK(opened.value()->open_report().stale_holds_released == 0);
    CHECK(opened.value()->getattr(gone).ok());
  }
  m.log.clear();
  m.mount(options);
  CHECK(m->open_report().stale_holds_released == 1);
  CHECK(m->open_report().holds_kept == 1);
  CHECK(m->open_report().orphans_reclaimed == 1);
  REQUIRE(m.log.size() == 2);
  CHECK(m.log[0] == "released stale hold " + std::to_string(stale.value()) + " on inode " +
                        std::to_string(gone) + " (pid 200, uid 4242)");
  auto holds = m->list_holds();
  REQUIRE(holds->size() == 1);
  CHECK(holds->front().holder.pid == 100);
  CHECK(code_of(m->getattr(gone)) == ENOENT);
  Ino live_size_check = live;
  CHECK(code_of(set_size(*m.fs, live_size_check, 0)) == EBUSY);
  m.require_clean();
  m.remount();  // under the real /proc check pid 100 (start time 1) is no holder either
  CHECK(m->open_report().stale_holds_released == 1);
  CHECK(m->list_holds()->empty());
  REQUIRE_OK(m->unlink(kRootIno, "live"));
  CHECK(free_blocks(*m.fs) == empty);
}

TEST_CASE("release_stale_holds follows a real holder process through /proc", "[holds]") {
  Mounted m;
  const uint64_t empty = free_blocks(*m.fs);
  Ino file = create(*m.fs, "ram");
  test::write_pattern(*m.fs, file, 0, 50000, 10);

  int gate[2];
  REQUIRE(pipe(gate) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char byte;
    ::close(gate[1]);
    ssize_t got = ::read(gate[0], &byte, 1);  // wait until the parent lets go
    _exit(got < 0 ? 1 : 0);
  }
  ::close(gate[0]);
  auto ticks = core::process_start_ticks(static_cast<uint32_t>(child));
  REQUIRE_OK(ticks);
  auto child_hold = m->acquire_hold(file, Holder{static_cast<uint32_t>(child), 0, ticks.value()});
  REQUIRE_OK(child_hold);
  // This process under a wrong start time: a recycled pid, not the holder.
  Holder recycled = self_holder();
  recycled.start_ticks += 1;
  REQUIRE_OK(m->acquire_hold(file, recycled));
  auto self = m->acquire_hold(file, self_holder());
  REQUIRE_OK(self);
  REQUIRE_OK(m->unlink(kRootIno, "ram"));

  auto released = m->release_stale_holds();
  REQUIRE_OK(released);
  CHECK(released.value() == 1);  // the recycled pid only
  CHECK(m->list_holds()->size() == 2);

  ::close(gate[1]);  // the child exits
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(code_of(core::process_start_ticks(static_cast<uint32_t>(child))) == ESRCH);
  released = m->release_stale_holds();
  REQUIRE_OK(released);
  CHECK(released.value() == 1);
  auto holds = m->list_holds();
  REQUIRE(holds->size() == 1);
  CHECK(holds->front().id == self.value());
  CHECK(m->getattr(file).ok());  // this process still maps it
  REQUIRE_OK(m->release_hold(self.value()));
  CHECK(code_of(m->getattr(file)) == ENOENT);
  CHECK(free_blocks(*m.fs) == empty);
  m.require_clean();
}

TEST_CASE("a hold from another boot is stale at the next open", "[holds]") {
  Mounted m;
  Ino file = create(*m.fs, "ram");
  test::write_pattern(*m.fs, file, 0, 5000, 11);
  auto id = m->acquire_hold(file, self_holder());
  REQUIRE_OK(id);
  const uint64_t offset = m->superblock().hold_table_offset + id.value() * sizeof(format::Hold);
  REQUIRE_OK(m->close());
  m.fs.reset();
  format::Hold hold;
  std::memcpy(&hold, m.memory->base() + offset, sizeof hold);
  auto boot = core::current_boot_id();
  CHECK(std::memcmp(hold.boot_id, boot.data(), boot.size()) == 0);
  hold.boot_id[0] ^= 0xff;  // taken before a kexec
  format::seal(hold);
  std::memcpy(m.memory->base() + offset, &hold, sizeof hold);
  m.mount();
  CHECK(m->open_report().stale_holds_released == 1);
  CHECK(m->list_holds()->empty());
}

// ---------------------------------------------------------------------------
// Making a file mappable.

TEST_CASE("on a region of 4 KiB pages a small file maps in place and holes get blocks", "[holds]") {
  Mounted m;
  Ino small = create(*m.fs, "small");
  test::write_pattern(*m.fs, small, 0, 10000, 12);
  const std::vector<Extent> before = extents_of(*m.fs, small);
  REQUIRE_OK(m->acquire_hold(small, self_holder()));
  CHECK(extents_of(*m.fs, small) == before);

  Ino sparse = create(*m.fs, "sparse");
  test::write_pattern(*m.fs, sparse, 0, 100, 13);
  test::write_pattern(*m.fs, sparse, 10 * kBlockSize, 100, 14);
  REQUIRE_OK(set_size(*m.fs, sparse, 12 * kBlockSize + 1));
  const auto data = read_all(*m.fs, sparse);
  REQUIRE_OK(m->acquire_hold(sparse, self_holder()));
  CHECK(mappable(*m.fs, sparse, kBlockSize));
  CHECK(m->getattr(sparse)->blocks == 13 * kBlockSize / 512);
  CHECK(read_all(*m.fs, sparse) == data);
  m.require_clean();
}

TEST_CASE("on a region of 2 MiB pages a small file moves into a chunk of its own", "[holds]") {
  Mounted m(64 * kMiB, kChunkSize);
  CHECK(m->mapping_page_size() == kChunkSize);
  Ino dir = m->mkdir(kRootIno, "iommu", 0755, {})->ino;
  Ino before_file = create(*m.fs, "a", dir);
  test::write_pattern(*m.fs, before_file, 0, 9000, 15);
  Ino file = create(*m.fs, "pt", dir);
  test::write_pattern(*m.fs, file, 0, 10000, 16);
  Ino after_file = create(*m.fs, "b", dir);
  test::write_pattern(*m.fs, after_file, 0, 3000, 17);
  const auto data = read_all(*m.fs, file);
  const auto neighbour_extents = extents_of(*m.fs, before_file);
  const uint64_t free_before = free_blocks(*m.fs);
  REQUIRE(extents_of(*m.fs, file).front().region_block % format::kBlocksPerChunk != 0);

  auto id = m->acquire_hold(file, self_holder());
  REQUIRE_OK(id);
  auto moved = extents_of(*m.fs, file);
  REQUIRE(moved.size() == 1);
  CHECK(moved[0].file_block == 0);
  CHECK(moved[0].block_count == format::kBlocksPerChunk);
  CHECK(moved[0].region_block % format::kBlocksPerChunk == 0);
  CHECK(read_all(*m.fs, file) == data);
  CHECK(m->getattr(file)->size == 10000);
  // The cost: a hugepage for a 10 KB file (its 3 blocks went back).
  CHECK(free_blocks(*m.fs) == free_before - format::kBlocksPerChunk + 3);
  // Its neighbours did not move.
  CHECK(extents_of(*m.fs, before_file) == neighbour_extents);
  CHECK(read_all(*m.fs, before_file) == test::pattern(9000, 15));
  CHECK(read_all(*m.fs, after_file) == test::pattern(3000, 17));
  m.require_clean();

  // Held again, it does not move again; it keeps its chunk after release.
  REQUIRE_OK(m->release_hold(id.value()));
  REQUIRE_OK(m->acquire_hold(file, self_holder()));
  CHECK(extents_of(*m.fs, file) == moved);
  m.remount();
  CHECK(extents_of(*m.fs, file) == moved);
  CHECK(read_all(*m.fs, file) == data);
  m.require_clean();
}

TEST_CASE("on a region of 2 MiB pages holes and packed tails of a large file get chunks", "[holds]") {
  Mounted m(64 * kMiB, kChunkSize);
  Ino file = create(*m.fs, "ram");
  test::write_pattern(*m.fs, file, 0, 100, 18);                // 4 KiB blocks in page 0
  test::write_pattern(*m.fs, file, 3 * kMiB, 100000, 19);      // a whole chunk for page 1
  test::write_pattern(*m.fs, file, 6 * kMiB + 100, 5000, 20);  // page 3; page 2 is a hole
  const auto data = read_all(*m.fs, file);
  REQUIRE_FALSE(mappable(*m.fs, file, kChunkSize));
  const uint64_t free_before = free_blocks(*m.fs);
  const auto page1 = extents_of(*m.fs, file)[1];

  REQUIRE_OK(m->acquire_hold(file, self_holder()));
  CHECK(mappable(*m.fs, file, kChunkSize));
  CHECK(read_all(*m.fs, file) == data);
  CHECK(m->getattr(file)->blocks == 4 * kChunkSize / 512);
  bool page1_kept = false;
  for (const Extent& extent : extents_of(*m.fs, file)) {
    page1_kept |= extent.region_block <= page1.region_block &&
                  extent.region_block + extent.block_count >= page1.region_block + page1.block_count &&
                  extent.file_block + (page1.region_block - extent.region_block) == page1.file_block;
  }
  CHECK(page1_kept);
  CHECK(free_blocks(*m.fs) < free_before);
  m.require_clean();
}

TEST_CASE("making a file mappable without a free chunk fails with ENOSPC and changes nothing", "[holds]") {
  Mounted m(32 * kMiB, kChunkSize);
  Ino small = create(*m.fs, "small");
  test::write_pattern(*m.fs, small, 0, 5000, 21);
  const auto extents = extents_of(*m.fs, small);
  // Take every whole chunk left.
  Ino filler = create(*m.fs, "filler");
  uint64_t offset = 0;
  while (m->fallocate(filler, 0, offset, kChunkSize).ok()) offset += kChunkSize;
  auto held = m->acquire_hold(small, self_holder());
  CHECK(code_of(held) == ENOSPC);
  CHECK(m->list_holds()->empty());
  CHECK(extents_of(*m.fs, small) == extents);
  CHECK(read_all(*m.fs, small) == test::pattern(5000, 21));
  m.require_clean();
  // With a chunk given back it works.
  REQUIRE_OK(m->unlink(kRootIno, "filler"));
  REQUIRE_OK(m->acquire_hold(small, self_holder()));
  CHECK(mappable(*m.fs, small, kChunkSize));
}

TEST_CASE("a sparse file larger than the free space is refused at once and changes nothing", "[holds]") {
  // A petabyte of holes: finding what to allocate walks extents, not pages,
  // and the refusal comes before any page is filled or moved.
  Mounted m(64 * kMiB, kChunkSize);
  Ino sparse = create(*m.fs, "sparse");
  test::write_pattern(*m.fs, sparse, 4 * kMiB, 100, 22);
  test::write_pattern(*m.fs, sparse, (uint64_t{1} << 50) - 100, 100, 23);
  const uint64_t free_before = free_blocks(*m.fs);
  const auto extents = extents_of(*m.fs, sparse);
  auto held = m->acquire_hold(sparse, self_holder());
  CHECK(code_of(held) == ENOSPC);
  CHECK(held.error().message().find("more whole 2 MiB page(s)") != std::string::npos);
  CHECK(m->list_holds()->empty());
  CHECK(extents_of(*m.fs, sparse) == extents);
  CHECK(free_blocks(*m.fs) == free_before);
  m.require_clean();
}

// ---------------------------------------------------------------------------
// Guest-RAM allocation.

TEST_CASE("growing an empty file takes as few chunk runs as free space allows", "[holds][alloc]") {
  Mounted m(64 * kMiB);
  // Single-chunk files over every free chunk, then free runs of 2, 1 and 3.
  std::vector<Ino> files;
  for (int i = 0;; ++i) {
    Ino file = create(*m.fs, "c" + std::to_string(i));
    REQUIRE_OK(set_size(*m.fs, file, kChunkSize));
    if (extents_of(*m.fs, file).empty()) {
      REQUIRE_OK(m->unlink(kRootIno, "c" + std::to_string(i)));
      break;
    }
    files.push_back(file);
    REQUIRE(i < 64);
  }
  REQUIRE(files.size() >= 12);
  for (int i : {1, 2, 5, 8, 9, 10}) REQUIRE_OK(m->unlink(kRootIno, "c" + std::to_string(i)));
  Ino ram = create(*m.fs, "ram");
  REQUIRE_OK(set_size(*m.fs, ram, 5 * kChunkSize));
  auto extents = extents_of(*m.fs, ram);
  REQUIRE(extents.size() == 2);  // the 3-chunk run and the 2-chunk run
  CHECK(extents[0].block_count == 3 * format::kBlocksPerChunk);
  CHECK(extents[1].block_count == 2 * format::kBlocksPerChunk);
  for (const Extent& extent : extents) CHECK(extent.region_block % format::kBlocksPerChunk == 0);
  // The last free chunk goes to a one-chunk fallocate.
  Ino one = create(*m.fs, "one");
  REQUIRE_OK(m->fallocate(one, 0, 0, kChunkSize));
  CHECK(extents_of(*m.fs, one).size() == 1);
  m.require_clean();
}

TEST_CASE("growing an empty file by whole gigabytes is 1 GiB aligned", "[holds][alloc]") {
  Mounted m(4 * kGiB);
  Ino ram = create(*m.fs, "ram");
  REQUIRE_OK(set_size(*m.fs, ram, 2 * kGiB));
  auto extents = extents_of(*m.fs, ram);
  REQUIRE(extents.size() == 1);
  CHECK(extents[0].file_block == 0);
  CHECK(extents[0].block_count == 2 * kGiB / kBlockSize);
  CHECK(uint64_t{extents[0].region_block} * kBlockSize % kGiB == 0);
  // 2 MiB pages (and 1 GiB pages) map it as it is.
  CHECK(mappable(*m.fs, ram, kChunkSize));
  CHECK(mappable(*m.fs, ram, kGiB));
  // A size that is not whole gigabytes is chunk aligned only.
  Ino other = create(*m.fs, "other");
  REQUIRE_OK(m->fallocate(other, 0, 0, kGiB / 2 + kChunkSize));
  extents = extents_of(*m.fs, other);
  REQUIRE(extents.size() == 1);
  CHECK(extents[0].region_block % format::kBlocksPerChunk == 0);
}

}  // namespace

namespace {

uint64_t chunk_of(Filesystem& fs, Ino ino) {
  auto extents = extents_of(fs, ino);
  REQUIRE(extents.size() == 1);
  return extents[0].region_block / format::kBlocksPerChunk;
}

TEST_CASE("small files of one directory share split chunks", "[holds][alloc]") {
  Mounted m;
  Ino vm1 = m->mkdir(kRootIno, "vm1", 0755, {})->ino;
  Ino vm2 = m->mkdir(kRootIno, "vm2", 0755, {})->ino;
  Ino first = create(*m.fs, "f0", vm1);
  test::write_pattern(*m.fs, first, 0, 100, 30);
  const uint64_t vm1_chunk = chunk_of(*m.fs, first);
  // Fill the rest of that chunk, so the next small file splits another.
  Ino filler = create(*m.fs, "filler");
  test::write_pattern(*m.fs, filler, 0, (format::kBlocksPerChunk - 2) * kBlockSize, 31);
  REQUIRE(chunk_of(*m.fs, filler) == vm1_chunk);
  Ino other = create(*m.fs, "x", vm2);
  test::write_pattern(*m.fs, other, 0, 100, 32);
  const uint64_t vm2_chunk = chunk_of(*m.fs, other);
  REQUIRE(vm2_chunk != vm1_chunk);
  // Both chunks have room now; the lowest is the allocator's default.
  REQUIRE_OK(m->unlink(kRootIno, "filler"));
  Ino second = create(*m.fs, "f1", vm1);
  test::write_pattern(*m.fs, second, 0, 5000, 33);
  CHECK(chunk_of(*m.fs, second) == vm1_chunk);
  Ino third = create(*m.fs, "y", vm2);
  test::write_pattern(*m.fs, third, 0, 5000, 34);
  CHECK(chunk_of(*m.fs, third) == vm2_chunk);
  Ino loose = create(*m.fs, "z");
  test::write_pattern(*m.fs, loose, 0, 100, 35);
  CHECK(chunk_of(*m.fs, loose) == std::min(vm1_chunk, vm2_chunk));
  for (Ino ino : {first, other, second, third, loose}) {
    CHECK(read_all(*m.fs, ino) == test::pattern(m->getattr(ino)->size, ino == first    ? 30
                                                                       : ino == other  ? 32
                                                                       : ino == second ? 33
                                                                       : ino == third  ? 34
                                                                                       : 35));
  }
  m.require_clean();
}

}  // namespace
