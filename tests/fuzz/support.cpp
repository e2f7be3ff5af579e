// tests/fuzz/support.cpp: seed regions, patches and the mount's operations
// for the region fuzz targets (see support.h).
#include "support.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "fs/journal/journal.h"
#include "support/fault_region.h"
#include "support/memory_view.h"
#include "support/test_region.h"

namespace pkfs::fuzz {
namespace {

using core::Filesystem;
using core::Ino;
using format::kBlockSize;
using format::kChunkSize;
using format::kRootIno;

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Seed construction must work: a failure here is a broken test, not a
// finding, so it stops the process with the reason.
[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "fuzz support: %s\n", what.c_str());
  std::abort();
}

template <typename T>
T must(Result<T> result, const std::string& what) {
  if (!result) die(what + ": " + result.error().message());
  return std::move(result).value();
}
void must(Result<void> result, const std::string& what) {
  if (!result) die(what + ": " + result.error().message());
}

std::vector<std::byte> pattern(size_t length, unsigned seed) {
  std::vector<std::byte> data(length);
  for (size_t i = 0; i < length; ++i)
    data[i] = static_cast<std::byte>((i * 131 + seed * 7 + (i >> 12)) & 0xff);
  return data;
}

void write_pattern(Filesystem& fs, Ino ino, uint64_t offset, size_t length, unsigned seed) {
  auto data = pattern(length, seed);
  auto written = must(fs.write(ino, offset, data), "write " + std::to_string(ino));
  if (written != length) die("short write to inode " + std::to_string(ino));
}

core::OpenOptions open_options() {
  core::OpenOptions options;
  options.holder_alive = fuzz_holder_alive;
  options.log = [](const std::string&) {};
  return options;
}

std::unique_ptr<Filesystem> mount(std::vector<std::byte>& bytes) {
  return must(Filesystem::open(std::make_unique<testing::MemoryView>(bytes), open_options()), "open seed");
}

// A builder of one seed: formats a region and remembers where the files it
// makes live, for landmarks.
struct Builder {
  std::vector<std::byte> bytes = std::vector<std::byte>(kRegionBytes);
  format::Layout layout{};
  std::vector<std::pair<std::string, Ino>> named;  // landmark name -> inode

  Builder() {
    core::FormatOptions options;
    options.data_known_zero = true;
    options.label = "fuzz";
    // Fixed, so a reproducer's image is the same wherever it runs (times differ).
    options.uuid = std::array<uint8_t, 16>{0x70, 0x6b, 0x66, 0x73, 0x2d, 0x66, 0x75, 0x7a,
                                           0x7a, 0x2d, 0x73, 0x65, 0x65, 0x64, 0x00, 0x01};
    testing::MemoryView view(bytes);
    layout = must(core::format_region(view, options), "format");
  }

  Ino file(Filesystem& fs, Ino parent, const std::string& name, uint32_t mode = S_IFREG | 0644) {
    Ino ino = must(fs.mknod(parent, name, mode, 0, {}), "mknod " + name).ino;
    named.emplace_back(name, ino);
    return ino;
  }
  Ino dir(Filesystem& fs, Ino parent, const std::string& name) {
    Ino ino = must(fs.mkdir(parent, name, 0755, {}), "mkdir " + name).ino;
    named.emplace_back(name, ino);
    return ino;
  }
};

void set_xattr(Filesystem& fs, Ino ino, const std::string& name, size_t length, char fill) {
  must(fs.setxattr(ino, name, std::string(length, fill), 0), "setxattr " + name);
}

// Directories three deep, small, block-sized and chunk-sized files, a
// sparse file, a symlink (short and long), a FIFO, a device, a hard link,
// xattr blocks, holds of live and gone holders, a held file unlinked (its
// freeing deferred) and an orphan (unlinked while open).
void populate_tree(Builder& b, Filesystem& fs) {
  Ino docs = b.dir(fs, kRootIno, "docs");
  Ino sub = b.dir(fs, docs, "sub");
  b.dir(fs, sub, "deep");
  Ino readme = b.file(fs, kRootIno, "readme");
  write_pattern(fs, readme, 0, 100, 1);
  set_xattr(fs, readme, "user.a", 1, 'a');
  set_xattr(fs, readme, "user.b", 200, 'b');
  Ino notes = b.file(fs, docs, "notes");
  write_pattern(fs, notes, 0, 5000, 2);
  must(fs.link(notes, docs, "notes-link"), "link");
  Ino blocks = b.file(fs, sub, "blocks");
  write_pattern(fs, blocks, 0, 3 * kBlockSize, 3);
  set_xattr(fs, docs, "user.dir", 10, 'd');
  Ino big = b.file(fs, kRootIno, "big");
  for (uint64_t offset = 0; offset < 3 * kMiB; offset += 256 * 1024)
    write_pattern(fs, big, offset, 256 * 1024, 4);
  set_xattr(fs, big, "user.big", 3000, 'B');
  Ino sparse = b.file(fs, kRootIno, "sparse");
  write_pattern(fs, sparse, 10 * kMiB, kBlockSize, 5);
  must(fs.symlink(kRootIno, "link", "docs/notes", {}), "symlink");
  must(fs.symlink(docs, "long-link", std::string(1000, 'x'), {}), "long symlink");
  b.file(fs, kRootIno, "fifo", S_IFIFO | 0600);
  must(fs.mknod(kRootIno, "null", S_IFCHR | 0666, makedev(1, 3), {}), "mknod null");
  // Holds: odd pids are alive for fuzz_holder_alive, even ones are gone.
  must(fs.acquire_hold(big, core::Holder{101, 1000, 1}), "hold big");
  must(fs.acquire_hold(readme, core::Holder{102, 1000, 1}), "hold readme");
  Ino held = b.file(fs, kRootIno, "held");
  write_pattern(fs, held, 0, 2 * kBlockSize, 6);
  must(fs.acquire_hold(held, core::Holder{105, 0, 1}), "hold held");
  must(fs.unlink(kRootIno, "held"), "unlink held");
  Ino orphan = b.file(fs, kRootIno, "orphan");
  write_pattern(fs, orphan, 0, kBlockSize, 7);
  must(fs.open_file(orphan), "open orphan");
  must(fs.unlink(kRootIno, "orphan"), "unlink orphan");
}

// A file of kFragments one-block extents (every other file block written,
// so no two merge): 7 inline and three extent blocks. A second file needs
// exactly one extent block, and a directory has enough entries for readdir
// to page.
constexpr uint64_t kFragments = 7 + 2 * format::kExtentsPerBlock + 6;
void populate_chain(Builder& b, Filesystem& fs) {
  Ino chain = b.file(fs, kRootIno, "chain");
  for (uint64_t i = 0; i < kFragments; ++i) write_pattern(fs, chain, 2 * i * kBlockSize, kBlockSize, 8);
  Ino eight = b.file(fs, kRootIno, "eight");
  for (uint64_t i = 0; i < 8; ++i) write_pattern(fs, eight, 2 * i * kBlockSize, 100, 9);
  Ino many = b.dir(fs, kRootIno, "many");
  for (int i = 0; i < 40; ++i) {
    Ino ino = must(fs.mknod(many, "entry-" + std::to_string(i), S_IFREG | 0644, 0, {}), "mknod entry").ino;
    if (i % 8 == 0) write_pattern(fs, ino, 0, 10, 10);
  }
}

uint64_t inode_offset(const format::Layout& layout, Ino ino) {
  return layout.inode_table_offset + ino * sizeof(format::Inode);
}

template <typename T>
T read_at(const std::vector<std::byte>& bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

// Fills targets and landmarks from the finished bytes.
void describe(SeedImage& seed, const std::vector<std::pair<std::string, Ino>>& named) {
  const format::Layout& layout = seed.layout;
  const auto& bytes = seed.bytes;
  auto sb = read_at<format::Superblock>(bytes, 0);
  auto add = [&](uint64_t offset, uint64_t length) {
    if (offset >= bytes.size() || length == 0) return;
    length = std::min(length, bytes.size() - offset);
    seed.targets.push_back({offset, length});
  };
  add(0, sizeof(format::Superblock));
  add(layout.journal_offset, sizeof(format::JournalHeader));
  // Undo records: those of the last transaction (an interrupted one, in the
  // crashed seed) and a little beyond.
  uint64_t records = layout.journal_offset + format::kJournalRecordsOffset;
  uint64_t used = 0;
  while (records + used + sizeof(format::UndoRecordHeader) + 8 <=
         layout.journal_offset + layout.journal_bytes) {
    auto record = read_at<format::UndoRecordHeader>(bytes, records + used);
    if (record.tag != format::kUndoTag || record.length == 0) break;
    used += format::undo_record_bytes(record.length);
  }
  add(records, std::min(used + 512, layout.journal_bytes - format::kJournalRecordsOffset));
  add(layout.inode_table_offset,
      std::min(layout.inode_count, sb.inode_high_water + 4) * sizeof(format::Inode));
  add(layout.dirent_table_offset,
      std::min(layout.dirent_count, sb.dirent_high_water + 4) * sizeof(format::Dirent));
  add(layout.chunk_map_offset, layout.chunk_map_blocks * kBlockSize);
  uint64_t holds_used = 0;
  for (uint64_t slot = 0; slot < layout.hold_count; ++slot) {
    auto hold = read_at<format::Hold>(bytes, layout.hold_table_offset + slot * sizeof(format::Hold));
    if (!format::hold_is_free(hold)) holds_used = slot + 1;
  }
  add(layout.hold_table_offset, std::min(layout.hold_count, holds_used + 2) * sizeof(format::Hold));
  add(layout.backup_offset, sizeof(format::Superblock));
  // Split-chunk headers.
  for (uint64_t chunk = 0; chunk < layout.chunk_count; ++chunk) {
    uint64_t block = chunk / format::kChunksPerMapBlock;
    auto state = read_at<uint8_t>(bytes, layout.chunk_map_offset + block * kBlockSize +
                                             offsetof(format::ChunkMapBlock, state) +
                                             chunk % format::kChunksPerMapBlock);
    if (state == format::kChunkSplit) add(chunk * kChunkSize, sizeof(format::SplitHeader));
  }
  // Every extent and xattr block of an inode in use.
  for (Ino ino = 1; ino < std::min(layout.inode_count, sb.inode_high_water); ++ino) {
    auto inode = read_at<format::Inode>(bytes, inode_offset(layout, ino));
    if (inode.tag != format::kInodeTag || inode.mode == 0) continue;
    if (inode.xattr_block != 0) add(inode.xattr_block, kBlockSize);
    uint64_t next = inode.extent_block;
    for (int step = 0; next != 0 && next + kBlockSize <= bytes.size() && step < 64; ++step) {
      add(next, kBlockSize);
      next = read_at<format::ExtentBlock>(bytes, next).next;
    }
  }
  for (const Range& range : seed.targets) seed.target_bytes += range.length;

  seed.landmarks.emplace_back("superblock", 0);
  seed.landmarks.emplace_back("journal", layout.journal_offset);
  seed.landmarks.emplace_back("chunk-map", layout.chunk_map_offset);
  if (holds_used > 0) seed.landmarks.emplace_back("hold:0", layout.hold_table_offset);
  for (const auto& [name, ino] : named) {
    uint64_t offset = inode_offset(layout, ino);
    auto inode = read_at<format::Inode>(bytes, offset);
    if (inode.tag != format::kInodeTag || inode.mode == 0) continue;  // freed since (orphan)
    seed.landmarks.emplace_back("inode:" + name, offset);
    if (inode.extent_block != 0) seed.landmarks.emplace_back("extent-block:" + name, inode.extent_block);
    if (inode.xattr_block != 0) seed.landmarks.emplace_back("xattr-block:" + name, inode.xattr_block);
    for (uint64_t slot = 0; slot < sb.dirent_high_water; ++slot) {
      uint64_t at = layout.dirent_table_offset + slot * sizeof(format::Dirent);
      auto dirent = read_at<format::Dirent>(bytes, at);
      if (dirent.tag == format::kDirentTag && dirent.ino == ino && format::dirent_name(dirent) == name) {
        seed.landmarks.emplace_back("dirent:" + name, at);
        break;
      }
    }
  }
}

SeedImage finish(std::string name, Builder& b) {
  SeedImage seed;
  seed.name = std::move(name);
  seed.layout = b.layout;
  seed.bytes = std::move(b.bytes);
  describe(seed, b.named);
  seed.memfd = memfd_create(("pkfs-fuzz-" + seed.name).c_str(), MFD_CLOEXEC);
  if (seed.memfd < 0) die("memfd_create: " + std::string(std::strerror(errno)));
  const std::byte* at = seed.bytes.data();
  uint64_t left = seed.bytes.size();
  while (left > 0) {
    ssize_t written = ::write(seed.memfd, at, left);
    if (written <= 0) die("write memfd: " + std::string(std::strerror(errno)));
    at += written;
    left -= static_cast<uint64_t>(written);
  }
  return seed;
}

std::vector<SeedImage> build_seeds() {
  std::vector<SeedImage> seeds;
  {
    Builder b;
    seeds.push_back(finish("empty", b));
  }
  Builder tree;
  {
    auto fs = mount(tree.bytes);
    populate_tree(tree, *fs);
    must(fs->close(), "close tree");
  }
  {
    Builder chain;
    auto fs = mount(chain.bytes);
    populate_chain(chain, *fs);
    must(fs->close(), "close chain");
    seeds.push_back(finish("chain", chain));
  }
  {
    // A daemon killed part way through unlinking a file with data blocks:
    // an open transaction for mount (and fsck) to roll back. The crash point
    // is the first persist from the middle of the unlink on that leaves one.
    struct Run {
      uint64_t open_persists = 0;
      uint64_t unlink_persists = 0;
      std::optional<std::vector<std::byte>> image;
    };
    auto run = [&](uint64_t crash_at) {
      auto state = std::make_shared<test::FaultState>();
      state->crash_at = crash_at;
      auto fs = must(Filesystem::open(std::make_unique<test::FaultRegion>(tree.bytes, state), open_options()),
                     "open crash seed");
      Run result;
      result.open_persists = state->persists;
      Ino docs = must(fs->lookup(kRootIno, "docs"), "lookup docs").ino;
      Ino sub = must(fs->lookup(docs, "sub"), "lookup sub").ino;
      must(fs->unlink(sub, "blocks"), "unlink blocks");
      result.unlink_persists = state->persists - result.open_persists;
      result.image = std::move(state->crash_image);
      return result;
    };
    Run dry = run(0);
    Builder crashed;
    crashed.named = tree.named;
    bool found = false;
    for (uint64_t at = dry.unlink_persists / 2; at < dry.unlink_persists && !found; ++at) {
      Run crash = run(dry.open_persists + at);
      if (!crash.image) continue;
      auto header = read_at<format::JournalHeader>(*crash.image, tree.layout.journal_offset);
      if (header.open_sequence == 0) continue;
      crashed.bytes = std::move(*crash.image);
      found = true;
    }
    if (!found) die("no crash point of the unlink leaves an open transaction");
    seeds.push_back(finish("crashed", crashed));
  }
  {
    // A daemon killed between operations: the region is marked in use (not
    // clean), with an orphan for mount to reclaim.
    Builder dirty;
    dirty.bytes = tree.bytes;
    dirty.layout = tree.layout;
    dirty.named = tree.named;
    auto fs = mount(dirty.bytes);
    Ino fresh = dirty.dir(*fs, kRootIno, "fresh");
    Ino open = dirty.file(*fs, fresh, "open");
    write_pattern(*fs, open, 0, 3 * kBlockSize, 11);
    must(fs->open_file(open), "open file");
    must(fs->unlink(fresh, "open"), "unlink open file");
    fs.reset();  // no close: the kill
    seeds.push_back(finish("dirty", dirty));
  }
  seeds.push_back(finish("tree", tree));
  return seeds;
}

template <typename T>
void reseal(std::byte* base, uint64_t offset) {
  T value;
  std::memcpy(&value, base + offset, sizeof value);
  format::seal(value);
  std::memcpy(base + offset, &value, sizeof value);
}

bool inside(uint64_t offset, uint64_t begin, uint64_t length) {
  return offset >= begin && offset - begin < length;
}

}  // namespace

uint64_t SeedImage::landmark(const std::string& key) const {
  for (const auto& [landmark_name, offset] : landmarks) {
    if (landmark_name == key) return offset;
  }
  die("seed " + name + " has no landmark " + key);
}

uint32_t SeedImage::target_offset(uint64_t offset) const {
  uint64_t skipped = 0;
  for (const Range& range : targets) {
    if (inside(offset, range.offset, range.length))
      return static_cast<uint32_t>(skipped + offset - range.offset);
    skipped += range.length;
  }
  die("offset " + std::to_string(offset) + " is outside the target space of seed " + name);
}

const std::vector<SeedImage>& seed_images() {
  static const std::vector<SeedImage> seeds = build_seeds();
  return seeds;
}

PrivateCopy::PrivateCopy(const SeedImage& seed) : m_size(seed.bytes.size()) {
  void* mapped = mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, seed.memfd, 0);
  if (mapped == MAP_FAILED) die("mmap: " + std::string(std::strerror(errno)));
  m_base = static_cast<std::byte*>(mapped);
}

PrivateCopy::~PrivateCopy() { munmap(m_base, m_size); }

void PrivateCopy::protect(bool read_only) {
  if (mprotect(m_base, m_size, read_only ? PROT_READ : PROT_READ | PROT_WRITE) != 0)
    die("mprotect: " + std::string(std::strerror(errno)));
}

bool decode(const uint8_t* data, size_t size, Input& input) {
  if (size < 2) return false;
  const auto& seeds = seed_images();
  input.seed = &seeds[data[0] % seeds.size()];
  input.options = data[1];
  input.patches = std::span<const uint8_t>(data + 2, size - 2);
  return true;
}

void seal_at(const SeedImage& seed, std::byte* base, uint64_t offset) {
  const format::Layout& layout = seed.layout;
  const uint64_t size = seed.bytes.size();
  if (offset < sizeof(format::Superblock)) return reseal<format::Superblock>(base, 0);
  if (inside(offset, layout.backup_offset, sizeof(format::Superblock)))
    return reseal<format::Superblock>(base, layout.backup_offset);
  if (inside(offset, layout.journal_offset, sizeof(format::JournalHeader)))
    return reseal<format::JournalHeader>(base, layout.journal_offset);
  if (inside(offset, layout.journal_offset, layout.journal_bytes)) {
    // The record the journal's own walk finds at this offset.
    uint64_t position = format::kJournalRecordsOffset;
    std::byte* area = base + layout.journal_offset;
    while (position + sizeof(format::UndoRecordHeader) + sizeof(uint64_t) <= layout.journal_bytes) {
      format::UndoRecordHeader record;
      std::memcpy(&record, area + position, sizeof record);
      uint64_t total = format::undo_record_bytes(record.length);
      if (record.tag != format::kUndoTag || record.length == 0 || position + total > layout.journal_bytes)
        return;
      if (inside(offset - layout.journal_offset, position, total)) {
        uint64_t checksum = format::xxh3(area + position, total - sizeof checksum);
        std::memcpy(area + position + total - sizeof checksum, &checksum, sizeof checksum);
        return;
      }
      position += total;
    }
    return;
  }
  if (inside(offset, layout.inode_table_offset, layout.inode_count * sizeof(format::Inode))) {
    uint64_t slot = (offset - layout.inode_table_offset) / sizeof(format::Inode);
    return reseal<format::Inode>(base, layout.inode_table_offset + slot * sizeof(format::Inode));
  }
  if (inside(offset, layout.dirent_table_offset, layout.dirent_count * sizeof(format::Dirent))) {
    uint64_t slot = (offset - layout.dirent_table_offset) / sizeof(format::Dirent);
    return reseal<format::Dirent>(base, layout.dirent_table_offset + slot * sizeof(format::Dirent));
  }
  if (inside(offset, layout.hold_table_offset, layout.hold_count * sizeof(format::Hold))) {
    uint64_t slot = (offset - layout.hold_table_offset) / sizeof(format::Hold);
    return reseal<format::Hold>(base, layout.hold_table_offset + slot * sizeof(format::Hold));
  }
  if (inside(offset, layout.chunk_map_offset, layout.chunk_map_blocks * kBlockSize)) {
    uint64_t block = (offset - layout.chunk_map_offset) / kBlockSize;
    return reseal<format::ChunkMapBlock>(base, layout.chunk_map_offset + block * kBlockSize);
  }
  if (offset < layout.data_offset) return;
  // A data block: what its tag says it is.
  uint64_t block = offset / kBlockSize * kBlockSize;
  if (block + kBlockSize > size) return;
  uint32_t tag;
  std::memcpy(&tag, base + block, sizeof tag);
  if (tag == format::kExtentBlockTag) return reseal<format::ExtentBlock>(base, block);
  if (tag == format::kXattrBlockTag) return reseal<format::XattrBlock>(base, block);
  if (tag == format::kSplitHeaderTag && block % kChunkSize == 0 &&
      offset - block < sizeof(format::SplitHeader))
    return reseal<format::SplitHeader>(base, block);
}

void apply_patches(const SeedImage& seed, std::byte* base, std::span<const uint8_t> patches) {
  const uint64_t size = seed.bytes.size();
  size_t at = 0;
  for (size_t count = 0; count < kMaxPatches && at + kPatchHeaderBytes <= patches.size(); ++count) {
    uint8_t control = patches[at];
    uint32_t offset = uint32_t{patches[at + 1]} | uint32_t{patches[at + 2]} << 8 |
                      uint32_t{patches[at + 3]} << 16 | uint32_t{patches[at + 4]} << 24;
    size_t length = std::min<size_t>(patches[at + 5], patches.size() - at - kPatchHeaderBytes);
    at += kPatchHeaderBytes;
    uint64_t target = 0;
    if (control & kPatchAbsolute) {
      target = offset % size;
    } else {
      uint64_t left = offset % seed.target_bytes;
      for (const Range& range : seed.targets) {
        if (left < range.length) {
          target = range.offset + left;
          break;
        }
        left -= range.length;
      }
    }
    size_t copied = static_cast<size_t>(std::min<uint64_t>(length, size - target));
    std::memcpy(base + target, patches.data() + at, copied);
    at += length;
    if (control & kPatchSeal) {
      seal_at(seed, base, target);
      if (copied > 1) seal_at(seed, base, target + copied - 1);
    }
  }
}

void append_patch(std::vector<uint8_t>& input, uint8_t control, uint32_t offset,
                  std::span<const std::byte> bytes) {
  if (bytes.size() > 255) die("a patch carries at most 255 bytes");
  input.push_back(control);
  for (int shift = 0; shift < 32; shift += 8) input.push_back(static_cast<uint8_t>(offset >> shift));
  input.push_back(static_cast<uint8_t>(bytes.size()));
  for (std::byte value : bytes) input.push_back(static_cast<uint8_t>(value));
}

bool fuzz_holder_alive(const format::Hold& hold) { return (hold.pid & 1) != 0; }

namespace {

// Bounds of one walk: enough to reach every file of every seed.
constexpr size_t kMaxEntries = 256;
constexpr size_t kMaxDirectories = 64;
constexpr int kReaddirPage = 16;
constexpr int kMaxReaddirPages = 64;
constexpr size_t kReadBytes = 64 * 1024;
constexpr size_t kMaxXattrs = 16;
constexpr uint64_t kMaxHoldBytes = uint64_t{1} << 40;  // see write_ops

struct Found {
  Ino parent;
  std::string name;
  Ino ino;
  uint32_t mode;
};

// Lists `dir` in pages of kReaddirPage, continuing from each page's last cookie.
void list(Filesystem& fs, Ino dir, std::vector<Found>& found) {
  uint64_t cookie = 0;
  for (int page = 0; page < kMaxReaddirPages && found.size() < kMaxEntries; ++page) {
    int emitted = 0;
    auto result = fs.readdir(dir, cookie, [&](const core::DirEntry& entry) {
      cookie = entry.next_cookie;
      ++emitted;
      if (entry.name != "." && entry.name != "..")
        found.push_back({dir, std::string(entry.name), entry.ino, entry.mode});
      return emitted < kReaddirPage && found.size() < kMaxEntries;
    });
    if (!result || emitted < kReaddirPage) return;
  }
}

void read_file(Filesystem& fs, Ino ino, uint64_t size) {
  static std::vector<std::byte> buffer(kReadBytes);
  uint64_t middle = size / 2 / kBlockSize * kBlockSize;
  uint64_t tail = size > kReadBytes ? size - kReadBytes : 0;
  for (uint64_t offset : {uint64_t{0}, middle, tail, size + 1}) (void)fs.read(ino, offset, buffer);
  (void)fs.read(ino, 1, std::span<std::byte>(buffer).first(kBlockSize * 2));
}

void write_ops(Filesystem& fs, const std::vector<Found>& found) {
  const core::Caller caller{1000, 1000, 022};
  auto data = pattern(3 * kBlockSize + 100, 12);
  int files = 0;
  for (const Found& entry : found) {
    if (!S_ISREG(entry.mode) || files++ >= 4) continue;
    (void)fs.open_file(entry.ino);
    auto attr = fs.getattr(entry.ino);
    uint64_t size = attr ? attr->size : 0;
    (void)fs.write(entry.ino, 0, data);
    (void)fs.write(entry.ino, size, std::span<const std::byte>(data).first(kBlockSize));
    (void)fs.fallocate(entry.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kBlockSize, kBlockSize);
    (void)fs.fallocate(entry.ino, 0, size, kChunkSize);
    core::SetAttr shrink;
    shrink.size = size / 2;
    (void)fs.setattr(entry.ino, shrink, caller);
    (void)fs.setxattr(entry.ino, "user.fuzz", std::string(300, 'f'), 0);
    auto names = fs.listxattr(entry.ino);
    if (names && !names->empty()) (void)fs.removexattr(entry.ino, names->front());
    // FIXME: acquire_hold's make_mappable visits every page of the file's
    // size before it allocates (a 4 PiB sparse file: 2^31 pages, seconds
    // even uninstrumented); reported, and skipped here for huge files so a
    // known slowness does not time CI's runs out.
    if (size <= kMaxHoldBytes) {
      auto hold = fs.acquire_hold(entry.ino, core::Holder{201, 1000, 1});
      if (hold) (void)fs.release_hold(hold.value());
    }
    (void)fs.release_file(entry.ino);
  }
  // The namespace: create, link, rename across directories, unlink, rmdir.
  Ino other = kRootIno;
  for (const Found& entry : found) {
    if (S_ISDIR(entry.mode)) {
      other = entry.ino;
      break;
    }
  }
  auto made = fs.mknod(kRootIno, "fuzz-new", S_IFREG | 0644, 0, caller);
  if (made) {
    (void)fs.write(made->ino, 0, data);
    (void)fs.link(made->ino, other, "fuzz-link");
    (void)fs.rename(kRootIno, "fuzz-new", other, "fuzz-moved", 0);
    (void)fs.unlink(other, "fuzz-link");
  }
  (void)fs.mkdir(other, "fuzz-dir", 0755, caller);
  (void)fs.symlink(other, "fuzz-symlink", "fuzz-dir", caller);
  for (const Found& entry : found) {
    if (entry.parent == kRootIno && S_ISDIR(entry.mode)) {
      (void)fs.rename(kRootIno, entry.name, other, "fuzz-renamed", RENAME_NOREPLACE);
      break;
    }
  }
  for (const Found& entry : found) {
    if (!S_ISDIR(entry.mode)) {
      (void)fs.unlink(entry.parent, entry.name);
      break;
    }
  }
  for (const Found& entry : found) {
    if (S_ISDIR(entry.mode) && entry.ino != other) {
      (void)fs.rmdir(entry.parent, entry.name);
      break;
    }
  }
  (void)fs.rename(kRootIno, "fuzz-missing", kRootIno, "fuzz-other", RENAME_EXCHANGE);
}

}  // namespace

void exercise(Filesystem& fs, bool write) {
  (void)fs.statfs();
  (void)fs.getattr(kRootIno);
  std::vector<Found> found;
  std::deque<Ino> directories{kRootIno};
  size_t listed = 0;
  while (!directories.empty() && listed < kMaxDirectories && found.size() < kMaxEntries) {
    Ino dir = directories.front();
    directories.pop_front();
    size_t first = found.size();
    list(fs, dir, found);
    ++listed;
    for (size_t i = first; i < found.size(); ++i) {
      const Found& entry = found[i];
      auto looked = fs.lookup(entry.parent, entry.name);
      if (!looked) continue;
      auto attr = fs.getattr(looked->ino);
      if (!attr) continue;
      if (S_ISDIR(attr->mode)) directories.push_back(attr->ino);
      if (S_ISREG(attr->mode)) {
        (void)fs.extents(attr->ino);
        read_file(fs, attr->ino, attr->size);
      }
      if (S_ISLNK(attr->mode)) (void)fs.readlink(attr->ino);
      auto names = fs.listxattr(attr->ino);
      if (names) {
        for (size_t n = 0; n < names->size() && n < kMaxXattrs; ++n)
          (void)fs.getxattr(attr->ino, (*names)[n]);
      }
      (void)fs.getxattr(attr->ino, "user.missing");
    }
  }
  (void)fs.list_holds();
  (void)fs.lookup(kRootIno, "no-such-name");
  if (write) write_ops(fs, found);
}

bool strict() {
  static const bool value = [] {
    const char* text = std::getenv("PKFS_FUZZ_STRICT");
    return text != nullptr && std::strcmp(text, "1") == 0;
  }();
  return value;
}

}  // namespace pkfs::fuzz
