// tests/unit/crash_test.cpp: crash injection for every core operation.
//
// For each operation: build a base state, run the operation once on a
// FaultRegion to count the persists P it performs, then for every N in 1..P
// run it again from the same base, taking the crash image at persist N (the
// process "died right after it"), mount the image (recovery runs), and
// require that check_region finds nothing and that the logical tree equals
// the tree before the operation or the tree after it. Data is not journaled
// (ordered mode), so operations here never overwrite bytes a reader could
// see before they commit: writes append or fill holes.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/fsck/fsck.h"
#include "support/data_pattern.h"
#include "support/fault_region.h"
#include "support/result_checks.h"
#include "support/test_region.h"

namespace {

using namespace pkfs;
using namespace pkfs::test;
using core::Filesystem;
using core::Ino;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kBlock = format::kBlockSize;

// Every crash point of every case run in this process.
uint64_t g_total_points = 0;

Ino resolve(Filesystem& fs, const std::string& path) {
  Ino at = format::kRootIno;
  size_t position = 1;
  while (position < path.size()) {
    size_t slash = path.find('/', position);
    if (slash == std::string::npos) slash = path.size();
    auto attr = fs.lookup(at, path.substr(position, slash - position));
    INFO("resolving " << path << ": " << (attr ? std::string() : attr.error().message()));
    REQUIRE(attr);
    at = attr->ino;
    position = slash + 1;
  }
  return at;
}

// The parent directory and last name of a path.
std::pair<Ino, std::string> split(Filesystem& fs, const std::string& path) {
  size_t slash = path.rfind('/');
  Ino parent = slash == 0 ? format::kRootIno : resolve(fs, path.substr(0, slash));
  return {parent, path.substr(slash + 1)};
}

Ino create(Filesystem& fs, const std::string& path, uint32_t mode = S_IFREG | 0644) {
  auto [parent, name] = split(fs, path);
  auto attr = fs.mknod(parent, name, mode, 0, {});
  INFO("creating " << path << ": " << (attr ? std::string() : attr.error().message()));
  REQUIRE(attr);
  return attr->ino;
}

void make_dir(Filesystem& fs, const std::string& path) {
  auto [parent, name] = split(fs, path);
  REQUIRE_OK(fs.mkdir(parent, name, 0755, {}));
}

void set_size(Filesystem& fs, Ino ino, uint64_t size) {
  core::SetAttr change;
  change.size = size;
  REQUIRE_OK(fs.setattr(ino, change, {}));
}

// ---------------------------------------------------------------------------
// The logical tree: what a user can observe, times excepted.

std::string content_hash(Filesystem& fs, Ino ino, uint64_t size) {
  std::vector<std::byte> content(size);
  uint64_t done = 0;
  while (done < size) {
    auto read = fs.read(ino, done, std::span<std::byte>(content.data() + done, size - done));
    if (!read) return "read failed: " + read.error().message();
    if (read.value() == 0) return "short read at " + std::to_string(done);
    done += read.value();
  }
  return std::to_string(format::xxh3(content.data(), content.size()));
}

void dump_into(Filesystem& fs, Ino ino, const std::string& path, bool namespace_only,
               std::map<std::string, std::string>& lines, int depth) {
  auto attr = fs.getattr(ino);
  if (!attr) {
    lines[path] = "getattr failed: " + attr.error().message();
    return;
  }
  char mode[16];
  std::snprintf(mode, sizeof mode, "%06o", attr->mode);
  std::string line = std::string(mode).substr(0, 2);  // the type digits
  if (!namespace_only) {
    line = std::string(mode) + " uid " + std::to_string(attr->uid) + " gid " + std::to_string(attr->gid) +
           " nlink " + std::to_string(attr->nlink);
    if (S_ISREG(attr->mode)) {
      line += " size " + std::to_string(attr->size) + " hash " + content_hash(fs, ino, attr->size);
    }
    if (S_ISLNK(attr->mode)) {
      auto target = fs.readlink(ino);
      line += " -> " + (target ? target.value() : "readlink failed: " + target.error().message());
    }
    auto names = fs.listxattr(ino);
    if (!names) {
      line += " listxattr failed: " + names.error().message();
    } else {
      std::vector<std::string> sorted = names.value();
      std::sort(sorted.begin(), sorted.end());
      for (const std::string& name : sorted) {
        auto value = fs.getxattr(ino, name);
        line += " [" + name + "=" + (value ? value.value() : "getxattr failed") + "]";
      }
    }
  }
  lines[path] = line;
  if (!S_ISDIR(attr->mode) || depth > 32) return;
  std::vector<std::pair<std::string, Ino>> children;
  auto listed = fs.readdir(ino, 0, [&](const core::DirEntry& entry) {
    if (entry.name != "." && entry.name != "..") children.emplace_back(std::string(entry.name), entry.ino);
    return true;
  });
  if (!listed) lines[path] += " readdir failed: " + listed.error().message();
  for (const auto& [name, child] : children) {
    dump_into(fs, child, (path == "/" ? "/" : path + "/") + name, namespace_only, lines, depth + 1);
  }
}

std::string dump(Filesystem& fs, bool namespace_only) {
  std::map<std::string, std::string> lines;
  dump_into(fs, format::kRootIno, "/", namespace_only, lines, 0);
  std::string text;
  for (const auto& [path, line] : lines) text += path + " " + line + "\n";
  // Holds are observable too (pkfsctl lists them).
  auto holds = fs.list_holds();
  if (!holds) return text + "list_holds failed: " + holds.error().message() + "\n";
  for (const core::HoldInfo& hold : holds.value()) {
    text += "hold " + std::to_string(hold.id) + ": inode " + std::to_string(hold.ino) + " pid " +
            std::to_string(hold.holder.pid) + "\n";
  }
  return text;
}

std::string describe(const fsck::CheckReport& report) {
  std::string text;
  for (const auto& problem : report.problems) text += "\n    " + problem.code + ": " + problem.message;
  return text;
}

// ---------------------------------------------------------------------------
// Bases and the runner.

struct BaseOptions {
  uint64_t region_bytes = 32 * kMiB;
  std::function<bool(const format::Hold&)> holder_alive;  // empty: the /proc check
};

// Formats a region, runs `populate` on it and unmounts: the base image.
Bytes build_base(const std::function<void(Filesystem&)>& populate, const BaseOptions& options = {}) {
  auto region = std::make_unique<FaultRegion>(Bytes(options.region_bytes), std::make_shared<FaultState>());
  core::FormatOptions format_options;
  format_options.data_known_zero = true;
  REQUIRE_OK(core::format_region(*region, format_options));
  core::OpenOptions open_options;
  open_options.holder_alive = options.holder_alive;
  auto opened = Filesystem::open(std::move(region), open_options);
  REQUIRE_OK(opened);
  Filesystem& fs = *opened.value();
  populate(fs);
  REQUIRE_OK(fs.close());
  Bytes image = snapshot(fs.region());
  auto report = fsck::check_region(fs.region(), {.verify_known_zero = true});
  REQUIRE(report);
  INFO("base state:" << describe(*report));
  REQUIRE(report->clean());
  return image;
}

struct CrashCase {
  std::string name;
  std::function<void(Filesystem&)> op;
  bool namespace_only = false;  // an open file's fate is not in the tree
  uint64_t min_transactions = 1;
  // The page size the operation's region reports (2 MiB: as on hugetlbfs).
  uint64_t page_size = 4096;
  // Used by the operation's mount and the recovery mount; empty: /proc.
  std::function<bool(const format::Hold&)> holder_alive = {};
};

// The holder of the "ghost" hold in the holds base: alive until a case says
// its process is gone. Every mount of a case's base starts with it alive.
bool g_ghost_alive = true;

struct Mounted {
  std::unique_ptr<Filesystem> fs;
  std::shared_ptr<FaultState> state;
};

Mounted mount_copy(const Bytes& base, const CrashCase& crash_case) {
  auto state = std::make_shared<FaultState>();
  auto region = std::make_unique<FaultRegion>(base, state);
  region->test_report_page_size(crash_case.page_size);
  g_ghost_alive = true;
  core::OpenOptions options;
  options.holder_alive = crash_case.holder_alive;
  auto opened = Filesystem::open(std::move(region), options);
  REQUIRE_OK(opened);
  state->persists = 0;  // the mount's own transaction is not the operation's
  state->watched_offset = opened.value()->superblock().journal_offset;
  state->watched_persists = 0;
  return {std::move(opened).value(), state};
}

// Runs `crash_case` at every crash point; returns how many there were.
uint64_t run_case(const Bytes& base, const CrashCase& crash_case, std::vector<std::string>& failures) {
  const bool namespace_only = crash_case.namespace_only;
  // Reference run: the states before and after, and the persist count.
  std::string before, after;
  uint64_t points = 0;
  {
    Mounted mounted = mount_copy(base, crash_case);
    before = dump(*mounted.fs, namespace_only);
    crash_case.op(*mounted.fs);
    points = mounted.state->persists;
    // Each transaction persists the journal header when it starts and commits.
    uint64_t transactions = mounted.state->watched_persists / 2;
    INFO(crash_case.name << ": " << transactions << " transactions");
    CHECK(transactions >= crash_case.min_transactions);
    after = dump(*mounted.fs, namespace_only);
    REQUIRE_OK(mounted.fs->close());
    auto report = fsck::check_region(mounted.fs->region(), {.verify_known_zero = true});
    REQUIRE(report);
    if (!report->clean())
      failures.push_back(crash_case.name + ", completed: check found" + describe(*report));
  }
  REQUIRE(points > 0);
  REQUIRE(before != after);

  for (uint64_t n = 1; n <= points; ++n) {
    std::string where =
        crash_case.name + ", crash at persist " + std::to_string(n) + " of " + std::to_string(points);
    Mounted mounted = mount_copy(base, crash_case);
    mounted.state->crash_at = n;
    crash_case.op(*mounted.fs);
    REQUIRE(mounted.state->crash_image);
    Bytes image = std::move(*mounted.state->crash_image);
    mounted.fs.reset();  // the process died: no close, no destructor work matters

    core::OpenOptions recovery_options;
    recovery_options.holder_alive = crash_case.holder_alive;
    auto recovered = Filesystem::open(std::make_unique<HeapRegion>(std::move(image)), recovery_options);
    if (!recovered) {
      failures.push_back(where + ": mount failed: " + recovered.error().message());
      continue;
    }
    Filesystem& fs = *recovered.value();
    std::string now = dump(fs, namespace_only);
    auto closed = fs.close();
    if (!closed) failures.push_back(where + ": close failed: " + closed.error().message());
    auto report = fsck::check_region(fs.region(), {.verify_known_zero = true});
    REQUIRE(report);
    if (!report->clean()) failures.push_back(where + ", after recovery: check found" + describe(*report));
    if (now != before && now != after) {
      failures.push_back(where + ": the tree is neither the one before nor the one after\n--- before\n" +
                         before + "--- after\n" + after + "--- recovered\n" + now);
    } else if (n == points && now != after) {
      // Past its last persist the operation is complete: a crash keeps it.
      failures.push_back(where + ": the operation's last persist did not make it durable");
    }
  }
  return points;
}

void run_cases(const Bytes& base, const std::vector<CrashCase>& cases) {
  uint64_t points = 0;
  std::vector<std::string> failures;
  for (const CrashCase& crash_case : cases) {
    size_t failed_before = failures.size();
    uint64_t case_points = run_case(base, crash_case, failures);
    points += case_points;
    std::cout << "  " << crash_case.name << ": " << case_points << " crash points"
              << (failures.size() > failed_before ? " (FAILED)" : "") << "\n";
  }
  g_total_points += points;
  std::cout << "crash points covered: " << points << " (total in this run: " << g_total_points << ")"
            << std::endl;
  CHECK(points > 0);
  // The first few failures in full, the count of all.
  std::string shown;
  for (size_t i = 0; i < failures.size() && i < 4; ++i) shown += failures[i] + "\n";
  INFO(failures.size() << " failed crash points:\n" << shown);
  CHECK(failures.empty());
}

// ---------------------------------------------------------------------------
// The common base state.

void populate_common(Filesystem& fs) {
  make_dir(fs, "/a");
  make_dir(fs, "/b");
  make_dir(fs, "/b/empty");
  make_dir(fs, "/b/sub");
  make_dir(fs, "/c");
  make_dir(fs, "/c/d");
  write_pattern(fs, create(fs, "/a/f1"), 0, 10000, 1);
  write_pattern(fs, create(fs, "/a/f2"), 0, 5000, 2);
  write_pattern(fs, create(fs, "/a/victim"), 0, 3000, 3);
  write_pattern(fs, create(fs, "/b/sub/inner"), 0, 100, 4);
  Ino hole = create(fs, "/hole");
  write_pattern(fs, hole, 0, kBlock, 5);
  write_pattern(fs, hole, 4 * kBlock, kBlock, 6);
  create(fs, "/grow");
  Ino big = create(fs, "/big");
  set_size(fs, big, 2 * kMiB);  // one whole chunk
  write_pattern(fs, big, 0, 100000, 7);
  Ino x = create(fs, "/x");
  write_pattern(fs, x, 0, 1000, 8);
  REQUIRE_OK(fs.setxattr(x, "user.a", "1", 0));
  REQUIRE_OK(fs.setxattr(x, "user.b", "two", 0));
  Ino y = create(fs, "/y");
  REQUIRE_OK(fs.setxattr(y, "user.only", "alone", 0));
  REQUIRE_OK(fs.symlink(format::kRootIno, "s", "a/f1", {}));
  Ino l1 = create(fs, "/l1");
  write_pattern(fs, l1, 0, 2000, 9);
  REQUIRE_OK(fs.link(l1, resolve(fs, "/a"), "l2"));
  write_pattern(fs, create(fs, "/open"), 0, 7000, 10);
  write_pattern(fs, create(fs, "/t"), 0, 40 * 1024, 11);
  write_pattern(fs, create(fs, "/fa"), 0, 16 * 1024, 12);
  // Seven extents: all inline, the next one needs an extent block.
  Ino seven = create(fs, "/seven");
  for (uint64_t block = 0; block < 14; block += 2) write_pattern(fs, seven, block * kBlock, 100, 13);
  Ino many8 = create(fs, "/many8");
  for (uint64_t block = 0; block < 16; block += 2) write_pattern(fs, many8, block * kBlock, kBlock, 14);
}

const Bytes& common_base() {
  static const Bytes base = build_base(populate_common);
  return base;
}

void rename_ok(Filesystem& fs, const std::string& from, const std::string& to, unsigned flags) {
  auto [from_dir, from_name] = split(fs, from);
  auto [to_dir, to_name] = split(fs, to);
  REQUIRE_OK(fs.rename(from_dir, from_name, to_dir, to_name, flags));
}

TEST_CASE("namespace operations recover to before or after at every crash point", "[crash]") {
  const Bytes& base = common_base();
  std::vector<CrashCase> cases = {
      {"create file", [](Filesystem& fs) { create(fs, "/a/new", S_IFREG | 0640); }},
      {"mkdir", [](Filesystem& fs) { make_dir(fs, "/a/newdir"); }},
      {"symlink", [](Filesystem& fs) { REQUIRE_OK(fs.symlink(resolve(fs, "/b"), "sl", "../a/f2", {})); }},
      {"link",
       [](Filesystem& fs) { REQUIRE_OK(fs.link(resolve(fs, "/a/f1"), resolve(fs, "/c"), "f1link")); }},
      {"unlink", [](Filesystem& fs) { REQUIRE_OK(fs.unlink(resolve(fs, "/a"), "f2")); }},
      {"unlink of one of two links", [](Filesystem& fs) { REQUIRE_OK(fs.unlink(format::kRootIno, "l1")); }},
      {"unlink of an open file, then release",
       [](Filesystem& fs) {
         Ino ino = resolve(fs, "/open");
         REQUIRE_OK(fs.open_file(ino));
         REQUIRE_OK(fs.unlink(format::kRootIno, "open"));
         REQUIRE_OK(fs.release_file(ino));
       },
       true},
      {"rmdir", [](Filesystem& fs) { REQUIRE_OK(fs.rmdir(resolve(fs, "/b"), "empty")); }},
      {"rename plain", [](Filesystem& fs) { rename_ok(fs, "/a/f1", "/c/moved", 0); }},
      {"rename of a directory", [](Filesystem& fs) { rename_ok(fs, "/b/sub", "/c/sub2", 0); }},
      {"rename over an existing file", [](Filesystem& fs) { rename_ok(fs, "/a/f1", "/a/victim", 0); }},
      {"rename over an empty directory", [](Filesystem& fs) { rename_ok(fs, "/c/d", "/b/empty", 0); }},
      {"rename with RENAME_NOREPLACE",
       [](Filesystem& fs) { rename_ok(fs, "/a/f2", "/b/f2new", RENAME_NOREPLACE); }},
      {"RENAME_EXCHANGE of a file and a directory across directories",
       [](Filesystem& fs) { rename_ok(fs, "/a/f1", "/b/sub", RENAME_EXCHANGE); }},
  };
  run_cases(base, cases);
}

TEST_CASE("data operations recover to before or after at every crash point", "[crash]") {
  const Bytes& base = common_base();
  std::vector<CrashCase> cases = {
      {"write extending", [](Filesystem& fs) { write_pattern(fs, resolve(fs, "/a/f2"), 5000, 9000, 20); }},
      {"write extending into a new chunk",
       [](Filesystem& fs) { write_pattern(fs, resolve(fs, "/big"), 2 * kMiB, 64 * 1024, 21); }},
      {"write into a hole",
       [](Filesystem& fs) { write_pattern(fs, resolve(fs, "/hole"), kBlock, 2 * kBlock, 22); }},
      {"write adding the extent that needs an extent block",
       [](Filesystem& fs) { write_pattern(fs, resolve(fs, "/seven"), 14 * kBlock, 100, 23); }},
      {"fallocate PUNCH_HOLE that drops the extent block",
       [](Filesystem& fs) {
         REQUIRE_OK(
             fs.fallocate(resolve(fs, "/many8"), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2 * kBlock));
       }},
      {"truncate shrink", [](Filesystem& fs) { set_size(fs, resolve(fs, "/t"), 5000); }},
      {"truncate shrink to zero", [](Filesystem& fs) { set_size(fs, resolve(fs, "/t"), 0); }},
      {"truncate grow", [](Filesystem& fs) { set_size(fs, resolve(fs, "/a/f2"), 20000); }},
      {"truncate grow from empty to whole chunks",
       [](Filesystem& fs) { set_size(fs, resolve(fs, "/grow"), 4 * kMiB + 100); }},
      {"fallocate",
       [](Filesystem& fs) { REQUIRE_OK(fs.fallocate(resolve(fs, "/fa"), 0, 16 * 1024, 32 * 1024)); }},
      {"fallocate KEEP_SIZE",
       [](Filesystem& fs) {
         Ino ino = resolve(fs, "/fa");
         REQUIRE_OK(fs.fallocate(ino, FALLOC_FL_KEEP_SIZE, 64 * 1024, 16 * 1024));
         // Nothing visible changes: make the change observable afterwards.
         set_size(fs, ino, 80 * 1024);
       }},
      {"fallocate PUNCH_HOLE",
       [](Filesystem& fs) {
         REQUIRE_OK(fs.fallocate(resolve(fs, "/fa"), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192));
       }},
      {"fallocate ZERO_RANGE",
       [](Filesystem& fs) {
         REQUIRE_OK(fs.fallocate(resolve(fs, "/hole"), FALLOC_FL_ZERO_RANGE, 1000, 12000));
       }},
  };
  run_cases(base, cases);
}

TEST_CASE("attribute operations recover to before or after at every crash point", "[crash]") {
  const Bytes& base = common_base();
  std::vector<CrashCase> cases = {
      {"setxattr new",
       [](Filesystem& fs) { REQUIRE_OK(fs.setxattr(resolve(fs, "/a/f1"), "user.new", "value", 0)); }},
      {"setxattr replace",
       [](Filesystem& fs) { REQUIRE_OK(fs.setxattr(resolve(fs, "/x"), "user.a", "22", XATTR_REPLACE)); }},
      {"removexattr", [](Filesystem& fs) { REQUIRE_OK(fs.removexattr(resolve(fs, "/x"), "user.b")); }},
      {"removexattr of the last attribute",
       [](Filesystem& fs) { REQUIRE_OK(fs.removexattr(resolve(fs, "/y"), "user.only")); }},
      {"chmod",
       [](Filesystem& fs) {
         core::SetAttr change;
         change.mode = 0600;
         REQUIRE_OK(fs.setattr(resolve(fs, "/a/f1"), change, {}));
       }},
      {"chown",
       [](Filesystem& fs) {
         core::SetAttr change;
         change.uid = 1000;
         change.gid = 100;
         REQUIRE_OK(fs.setattr(resolve(fs, "/a/f1"), change, {}));
       }},
      {"utimens, then chmod",
       [](Filesystem& fs) {
         Ino ino = resolve(fs, "/a/f1");
         core::SetAttr times;
         times.atime = core::TimeSet{false, {1000, 5}};
         times.mtime = core::TimeSet{true, {}};
         REQUIRE_OK(fs.setattr(ino, times, {}));
         // Times are not in the tree: a visible change after them.
         core::SetAttr mode;
         mode.mode = 0640;
         REQUIRE_OK(fs.setattr(ino, mode, {}));
       }},
  };
  run_cases(base, cases);
}

// A file whose blocks are spread over two split chunks, with an extent
// block and an xattr block: its reclaim frees data, chain and xattr blocks
// and empties a split chunk, over several transactions.
void populate_many(Filesystem& fs) {
  Ino filler = create(fs, "/filler");
  write_pattern(fs, filler, 0, 400 * kBlock, 30);
  Ino many = create(fs, "/many");
  for (uint64_t block = 0; block < 2 * 256; block += 2) write_pattern(fs, many, block * kBlock, kBlock, 31);
  REQUIRE_OK(fs.setxattr(many, "user.kind", "many", 0));
  REQUIRE_OK(fs.unlink(format::kRootIno, "filler"));
  write_pattern(fs, create(fs, "/other"), 0, 3000, 32);
  auto extents = fs.extents(many);
  REQUIRE_OK(extents);
  REQUIRE(extents->size() == 256);
}

TEST_CASE("unlinking a file with many extents recovers at every crash point of its chained frees",
          "[crash]") {
  static const Bytes base = build_base(populate_many);
  CrashCase unlink_many{"unlink of a file with 256 extents",
                        [](Filesystem& fs) { REQUIRE_OK(fs.unlink(format::kRootIno, "many")); }};
  // unlink; the bounded frees; the xattr block and the inode slot.
  unlink_many.min_transactions = 3;
  CrashCase shrink_many{"truncate of a file with 256 extents to one block",
                        [](Filesystem& fs) { set_size(fs, resolve(fs, "/many"), 100); }};
  // the size and trim mark; the bounded frees; clearing the mark.
  shrink_many.min_transactions = 3;
  run_cases(base, {unlink_many, shrink_many});
}

// ---------------------------------------------------------------------------
// Holds.

core::Holder self_holder() {
  auto ticks = core::process_start_ticks(static_cast<uint32_t>(getpid()));
  REQUIRE_OK(ticks);
  return {static_cast<uint32_t>(getpid()), 0, ticks.value()};
}

constexpr uint32_t kGhostPid = 999999999;  // no process: alive only while g_ghost_alive says so

bool holds_base_alive(const format::Hold& hold) {
  return hold.pid == kGhostPid ? g_ghost_alive : core::holder_alive(hold);
}

// Small files packed in one split chunk, a large file with a packed page
// and a hole, and three holds: on /held (slot 0), on an unlinked file (slot
// 1), and the ghost's on another unlinked file (slot 2).
void populate_holds(Filesystem& fs) {
  make_dir(fs, "/iommu");
  write_pattern(fs, create(fs, "/iommu/a"), 0, 9000, 40);
  write_pattern(fs, create(fs, "/iommu/small"), 0, 10000, 41);
  write_pattern(fs, create(fs, "/iommu/b"), 0, 3000, 42);
  Ino sparse = create(fs, "/sparse");
  write_pattern(fs, sparse, 0, 100, 43);           // page 0: 4 KiB blocks
  write_pattern(fs, sparse, 2 * kMiB, 50000, 44);  // page 1: a whole chunk
  set_size(fs, sparse, 5 * kMiB);                  // page 2: a hole
  Ino held = create(fs, "/held");
  write_pattern(fs, held, 0, 20000, 45);
  REQUIRE(fs.acquire_hold(held, self_holder()).value() == 0);
  Ino orphan = create(fs, "/orphan");
  write_pattern(fs, orphan, 0, 30000, 46);
  REQUIRE(fs.acquire_hold(orphan, self_holder()).value() == 1);
  REQUIRE_OK(fs.unlink(format::kRootIno, "orphan"));
  Ino ghost = create(fs, "/ghost");
  write_pattern(fs, ghost, 0, 40000, 47);
  REQUIRE(fs.acquire_hold(ghost, {kGhostPid, 0, 1}).value() == 2);
  REQUIRE_OK(fs.unlink(format::kRootIno, "ghost"));
}

TEST_CASE("hold operations recover to before or after at every crash point", "[crash][holds]") {
  static const Bytes base =
      build_base(populate_holds, {.region_bytes = 32 * kMiB, .holder_alive = holds_base_alive});
  auto acquire = [](const std::string& path) {
    return [path](Filesystem& fs) { REQUIRE_OK(fs.acquire_hold(resolve(fs, path), self_holder())); };
  };
  std::vector<CrashCase> cases = {
      {"acquire a hold on a small file (4 KiB pages)", acquire("/iommu/small")},
      {"acquire a hold that moves a small file into a chunk (2 MiB pages)", acquire("/iommu/small")},
      {"acquire a hold that moves a packed page and fills a hole (2 MiB pages)", acquire("/sparse")},
      {"release a hold", [](Filesystem& fs) { REQUIRE_OK(fs.release_hold(0)); }},
      {"release the last hold of an unlinked file", [](Filesystem& fs) { REQUIRE_OK(fs.release_hold(1)); }},
      {"unlink a held file", [](Filesystem& fs) { REQUIRE_OK(fs.unlink(format::kRootIno, "held")); }},
      {"release a stale hold and reclaim its unlinked file",
       [](Filesystem& fs) {
         g_ghost_alive = false;
         auto released = fs.release_stale_holds();
         REQUIRE_OK(released);
         REQUIRE(released.value() == 1);
       }},
  };
  cases[1].page_size = format::kChunkSize;
  cases[2].page_size = format::kChunkSize;
  cases[2].min_transactions = 3;  // page 0, page 2, the hold
  cases[4].min_transactions = 3;  // the hold, the frees, the inode slot
  cases[6].min_transactions = 3;
  for (CrashCase& crash_case : cases) crash_case.holder_alive = holds_base_alive;
  run_cases(base, cases);
  g_ghost_alive = true;
}

}  // namespace

// ---------------------------------------------------------------------------
// Zeroing of free space.

// A large file's chunks freed (dirty) next to a file that stays.
void populate_freed(Filesystem& fs) {
  write_pattern(fs, create(fs, "/big"), 0, 8 * kMiB, 50);
  write_pattern(fs, create(fs, "/keep"), 0, 3 * kMiB + 100, 51);
  REQUIRE_OK(fs.unlink(format::kRootIno, "big"));
}

void zero_everything(Filesystem& fs) {
  for (;;) {
    auto step = fs.zero_free_space(2 * kMiB);
    REQUIRE_OK(step);
    if (!step.value()) return;
  }
}

// Zeroing changes no file, so the tree must equal the base at every crash
// point; what matters is that check's verify_known_zero finds no chunk
// recorded zero that holds a nonzero byte, and that zeroing finishes after
// recovery.
TEST_CASE("zeroing free space never records a chunk zero that is not, at any crash point",
          "[crash][zeroing]") {
  static const Bytes base = build_base(populate_freed);
  CrashCase zeroing{"zero every free dirty chunk", zero_everything};
  std::string before;
  uint64_t points = 0;
  {
    Mounted mounted = mount_copy(base, zeroing);
    before = dump(*mounted.fs, false);
    REQUIRE(mounted.fs->zeroing_status().free_dirty_bytes >= 8 * kMiB);
    zero_everything(*mounted.fs);
    CHECK(mounted.fs->zeroing_status().free_dirty_bytes == 0);
    points = mounted.state->persists;
    CHECK(dump(*mounted.fs, false) == before);
    REQUIRE_OK(mounted.fs->close());
  }
  REQUIRE(points > 0);
  std::vector<std::string> failures;
  for (uint64_t n = 1; n <= points; ++n) {
    std::string where = "crash at persist " + std::to_string(n) + " of " + std::to_string(points);
    Mounted mounted = mount_copy(base, zeroing);
    mounted.state->crash_at = n;
    zero_everything(*mounted.fs);
    REQUIRE(mounted.state->crash_image);
    Bytes image = std::move(*mounted.state->crash_image);
    mounted.fs.reset();
    auto recovered = Filesystem::open(std::make_unique<HeapRegion>(std::move(image)));
    if (!recovered) {
      failures.push_back(where + ": mount failed: " + recovered.error().message());
      continue;
    }
    Filesystem& fs = *recovered.value();
    if (dump(fs, false) != before) failures.push_back(where + ": the tree changed");
    REQUIRE_OK(fs.close());
    auto report = fsck::check_region(fs.region(), {.verify_known_zero = true});
    REQUIRE(report);
    if (!report->clean()) failures.push_back(where + ": check found" + describe(*report));
    // And zeroing completes on the recovered region.
    auto again = Filesystem::open(std::make_unique<HeapRegion>(snapshot(fs.region())));
    REQUIRE_OK(again);
    zero_everything(*again.value());
    if (again.value()->zeroing_status().free_dirty_bytes != 0) {
      failures.push_back(where + ": dirty space left after zeroing the recovered region");
    }
  }
  g_total_points += points;
  std::cout << "  zeroing: " << points << " crash points" << std::endl;
  std::string shown;
  for (size_t i = 0; i < failures.size() && i < 4; ++i) shown += failures[i] + "\n";
  INFO(failures.size() << " failed crash points:\n" << shown);
  CHECK(failures.empty());
}
