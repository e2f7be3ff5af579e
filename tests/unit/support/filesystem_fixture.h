// tests/unit/support/filesystem_fixture.h: a core::Filesystem mounted on
// memory the test owns, and the POSIX-level helpers the unit tests of core
// (namespace_test, rename_test, data_test, xattr_test, space_test,
// mount_test) share: create, read and write through core, list directories,
// describe attributes.
//
// The filesystem always runs on a MemoryView of memory the test owns, so a
// case can drop it (cleanly or as a crash) and open the same bytes again.
// The helpers FAIL the case on an unexpected error, with its message. A test
// file takes them, and the names of core it uses (Filesystem, Ino, Attr,
// SetAttr, Caller, kBlockSize, kRootIno), with
// `using namespace pkfs::test::fixture;`.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"
#include "fs/region/region.h"
#include "support/memory_view.h"

namespace pkfs::test::fixture {

using core::Attr;
using core::Caller;
using core::Filesystem;
using core::Ino;
using core::SetAttr;
using format::kBlockSize;
using format::kRootIno;

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline constexpr uint64_t kGiB = uint64_t{1} << 30;
inline constexpr uint64_t kRegionBytes = 64 * kMiB;
inline constexpr uint64_t kSectorsPerBlock = kBlockSize / 512;  // Attr::blocks counts 512-byte units
inline const Caller kRoot{};
// The root directory as a link target's new parent (kRootIno reads like an
// inode argument to clang-tidy's swapped-argument check).
inline constexpr Ino kRootDir = kRootIno;

inline core::FormatOptions default_format() {
  core::FormatOptions options;
  options.data_known_zero = true;  // MemoryRegion starts zeroed
  options.label = "unit";
  return options;
}

// A formatted region the test owns and the filesystem mounted on it.
struct Mounted {
  std::unique_ptr<region::MemoryRegion> memory;
  format::Layout layout{};
  std::unique_ptr<Filesystem> fs;

  explicit Mounted(uint64_t bytes = kRegionBytes, const core::FormatOptions& options = default_format()) {
    memory = std::make_unique<region::MemoryRegion>(bytes);
    auto formatted = core::format_region(*memory, options);
    REQUIRE(formatted.ok());
    layout = formatted.value();
    mount();
  }

  Result<std::unique_ptr<Filesystem>> try_mount(const core::OpenOptions& options = {},
                                                bool read_only_region = false) const {
    return Filesystem::open(testing::MemoryView::of(*memory, read_only_region), options);
  }
  void mount(const core::OpenOptions& options = {}) {
    auto opened = try_mount(options);
    if (!opened) FAIL("open failed: " << opened.error().message());
    fs = std::move(opened).value();
  }
  void close_and_remount(const core::OpenOptions& options = {}) {
    REQUIRE(fs->close().ok());
    fs.reset();
    mount(options);
  }
  // Drops the filesystem without close(): what a killed process leaves.
  void crash_and_remount() {
    fs.reset();
    mount();
  }
  Filesystem* operator->() const { return fs.get(); }
};

inline std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// Deterministic bytes that differ from offset to offset and seed to seed.
inline std::string pattern(size_t length, uint32_t seed) {
  std::string text(length, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < length; ++i) {
    state = state * 1103515245u + 12345u;
    text[i] = static_cast<char>(state >> 16);
  }
  return text;
}

inline bool all_zero(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c == 0; });
}

inline Ino create(Filesystem& fs, Ino parent, std::string_view name, uint32_t mode = 0644,
                  const Caller& caller = kRoot) {
  auto attr = fs.mknod(parent, name, S_IFREG | mode, 0, caller);
  if (!attr) FAIL("mknod " << name << ": " << attr.error().message());
  return attr->ino;
}

inline Ino make_dir(Filesystem& fs, Ino parent, std::string_view name, uint32_t mode = 0755,
                    const Caller& caller = kRoot) {
  auto attr = fs.mkdir(parent, name, mode, caller);
  if (!attr) FAIL("mkdir " << name << ": " << attr.error().message());
  return attr->ino;
}

inline void write_text(Filesystem& fs, Ino ino, uint64_t offset, std::string_view text) {
  auto written = fs.write(ino, offset, bytes_of(text));
  if (!written) FAIL("write: " << written.error().message());
  REQUIRE(written.value() == text.size());
}

inline std::string read_text(Filesystem& fs, Ino ino, uint64_t offset, size_t length) {
  std::string buffer(length, '\x7f');
  auto got = fs.read(ino, offset, std::as_writable_bytes(std::span<char>(buffer.data(), buffer.size())));
  if (!got) FAIL("read: " << got.error().message());
  buffer.resize(got.value());
  return buffer;
}

inline std::string read_all(Filesystem& fs, Ino ino) {
  auto attr = fs.getattr(ino);
  REQUIRE(attr.ok());
  return read_text(fs, ino, 0, attr->size);
}

inline Attr attr_of(Filesystem& fs, Ino ino) {
  auto attr = fs.getattr(ino);
  if (!attr) FAIL("getattr " << ino << ": " << attr.error().message());
  return attr.value();
}

inline Ino ino_of(Filesystem& fs, Ino parent, std::string_view name) {
  auto attr = fs.lookup(parent, name);
  if (!attr) FAIL("lookup " << name << ": " << attr.error().message());
  return attr->ino;
}

inline uint64_t free_blocks(Filesystem& fs) {
  auto stats = fs.statfs();
  REQUIRE(stats.ok());
  return stats->free_blocks;
}

inline Result<Attr> set_size(Filesystem& fs, Ino ino, uint64_t size) {
  SetAttr changes;
  changes.size = size;
  return fs.setattr(ino, changes, kRoot);
}

struct Entry {
  std::string name;
  Ino ino;
  uint32_t mode;
  uint64_t next_cookie;
};

// Entries from `cookie` on; at most `limit`.
inline std::vector<Entry> list_from(Filesystem& fs, Ino dir, uint64_t cookie, size_t limit = SIZE_MAX) {
  std::vector<Entry> entries;
  auto result = fs.readdir(dir, cookie, [&](const core::DirEntry& entry) {
    entries.push_back({std::string(entry.name), entry.ino, entry.mode, entry.next_cookie});
    return entries.size() < limit;
  });
  if (!result) FAIL("readdir: " << result.error().message());
  return entries;
}

// Names in a directory, without . and .., sorted.
inline std::vector<std::string> names_in(Filesystem& fs, Ino dir) {
  std::vector<std::string> names;
  for (const Entry& entry : list_from(fs, dir, 0)) {
    if (entry.name != "." && entry.name != "..") names.push_back(entry.name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

inline std::vector<std::string> names_of(const std::vector<Entry>& entries) {
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (const Entry& entry : entries) names.push_back(entry.name);
  return names;
}

inline Ino dotdot_of(Filesystem& fs, Ino dir) {
  for (const Entry& entry : list_from(fs, dir, 0)) {
    if (entry.name == "..") return entry.ino;
  }
  FAIL("no .. entry");
  return 0;
}

inline std::string describe_attr(const Attr& a) {
  std::ostringstream out;
  out << "ino=" << a.ino << " gen=" << a.generation << " mode=" << std::oct << a.mode << std::dec
      << " nlink=" << a.nlink << " uid=" << a.uid << " gid=" << a.gid << " size=" << a.size
      << " blocks=" << a.blocks << " rdev=" << a.rdev << " atime=" << a.atime.tv_sec << "." << a.atime.tv_nsec
      << " mtime=" << a.mtime.tv_sec << "." << a.mtime.tv_nsec << " ctime=" << a.ctime.tv_sec << "."
      << a.ctime.tv_nsec << " btime=" << a.btime.tv_sec << "." << a.btime.tv_nsec;
  return out.str();
}

}  // namespace pkfs::test::fixture
