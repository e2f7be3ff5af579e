// tests/fuzz/support.h: what the region fuzz targets (fuzz_mount,
// fuzz_check) and the seed writer share.
//
// Owns: the seed regions (small filesystems built in memory at start-up:
// empty, a populated tree with xattrs and holds, a long extent chain, an
// interrupted transaction, a region left mounted), the fuzz input format (a
// list of patches applied to a private copy of one seed region), and the
// operations a mount runs on what it opened. Must not touch fs/: a finding is
// a bug to report there, never to work around here.
//
// Why patches: a region is at least 16 MiB, far too big for libFuzzer to
// mutate as a whole, and nearly all of it is data the parsers never look at.
// An input names a seed and patches; patch offsets land in the seed's
// structures (its "target space", below), and a patch may ask for the
// structure it hit to be resealed, so damage gets past the checksums to the
// deeper checks, as a resealed struct does in tests/unit/check_test.cpp.
//
// Input format (little-endian):
//   byte 0    seed index (modulo the number of seeds)
//   byte 1    options, per target (kMount*, kCheck* below)
//   then any number of patches, at most kMaxPatches:
//     byte 0  control: kPatchSeal, kPatchAbsolute
//     1..4    u32 offset: into the target space, or with kPatchAbsolute
//             into the whole region (both modulo their size)
//     5       length in bytes (cut at the end of the input and the region)
//     6..     the bytes
// Trailing bytes too short for a patch header are ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/format.h"

namespace pkfs::fuzz {

inline constexpr uint64_t kRegionBytes = format::kMinRegionBytes;  // 16 MiB, the smallest pkfs region
inline constexpr size_t kPatchHeaderBytes = 6;
inline constexpr size_t kMaxPatches = 256;

inline constexpr uint8_t kPatchSeal = 1u << 0;      // reseal the structure(s) the patch touched
inline constexpr uint8_t kPatchAbsolute = 1u << 1;  // offset into the whole region

// fuzz_mount options (input byte 1).
inline constexpr uint8_t kMountReadOnly = 1u << 0;      // open read-only (pkfsctl, fsck -n) instead
inline constexpr uint8_t kMountHugePages = 1u << 1;     // the region reports 2 MiB pages
inline constexpr uint8_t kMountWrite = 1u << 2;         // also run changing operations
inline constexpr uint8_t kMountRestart = 1u << 3;       // drop without close (kill -9), open again
inline constexpr uint8_t kMountReleaseStale = 1u << 4;  // release_stale_holds() after the walk

// fuzz_check options (input byte 1).
inline constexpr uint8_t kCheckKnownZero = 1u << 0;  // CheckOptions::verify_known_zero
inline constexpr uint8_t kCheckRepair = 1u << 1;     // repair a copy, then check it again
inline constexpr uint8_t kCheckPreen = 1u << 2;      // repair as fsck -p rather than -y
inline constexpr uint8_t kCheckMount = 1u << 3;      // open the repaired copy and walk it

// A byte range of a region.
struct Range {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// One seed region, built once at start-up.
struct SeedImage {
  std::string name;
  std::vector<std::byte> bytes;  // the whole region
  int memfd = -1;                // the same bytes, for cheap private copies
  format::Layout layout{};       // as mkfs laid it out
  // The target space: these ranges, concatenated in this order. The
  // superblock and its backup, the journal header and the start of its
  // records, every inode, dirent and hold slot up to the high-water marks
  // (and a few beyond), the chunk map, and the extent blocks, xattr blocks
  // and split-chunk headers the seed's files use.
  std::vector<Range> targets;
  uint64_t target_bytes = 0;
  // Region offsets of a few structures the seed writer aims patches at, e.g.
  // "inode:chain", "extent-block:chain", "dirent:docs", "hold:0".
  std::vector<std::pair<std::string, uint64_t>> landmarks;

  uint64_t landmark(const std::string& key) const;  // aborts when missing
  // The target-space offset of region offset `offset` (which must be in a target range).
  uint32_t target_offset(uint64_t offset) const;
};

// Every seed, built on first use (about a second under the sanitizers).
const std::vector<SeedImage>& seed_images();

// A private copy-on-write mapping of a seed region: only the pages a run
// writes are copied, so each input starts from the seed at little cost.
class PrivateCopy {
 public:
  explicit PrivateCopy(const SeedImage& seed);
  ~PrivateCopy();
  PrivateCopy(const PrivateCopy&) = delete;
  PrivateCopy& operator=(const PrivateCopy&) = delete;

  std::byte* base() const { return m_base; }
  uint64_t size() const { return m_size; }
  // Makes the mapping read-only (true) or writable again: check_region must
  // never write, and a write it attempts becomes a crash with a stack.
  void protect(bool read_only);

 private:
  std::byte* m_base = nullptr;
  uint64_t m_size = 0;
};

// The parts of an input.
struct Input {
  const SeedImage* seed = nullptr;
  uint8_t options = 0;
  std::span<const uint8_t> patches;
};
// Returns false when the input is too short to name a seed.
bool decode(const uint8_t* data, size_t size, Input& input);

// Applies every patch of `patches` to a copy of `seed` at `base`.
void apply_patches(const SeedImage& seed, std::byte* base, std::span<const uint8_t> patches);

// Recomputes the checksum of the structure of `seed`'s layout that contains
// region offset `offset`, if any (for undo records, the record the journal's
// own walk finds there).
void seal_at(const SeedImage& seed, std::byte* base, uint64_t offset);

// Appends one patch to an input (for the seed writer).
void append_patch(std::vector<uint8_t>& input, uint8_t control, uint32_t offset,
                  std::span<const std::byte> bytes);

// The holder check every fuzz open injects: deterministic, no /proc (odd
// pids are alive, even ones are gone).
bool fuzz_holder_alive(const format::Hold& hold);

// What the daemon does with a region it mounted, bounded so a huge (damaged)
// size or a long directory cannot make a run slow by itself: walks the tree
// from the root (readdir in pages, lookup, getattr, readlink, xattrs, extents,
// reads at a few offsets of each file), statfs, list_holds; with `write`,
// creates, writes, truncates, punches, renames, unlinks, sets xattrs and
// takes and releases a hold. Every error is ignored: the run only has to
// survive.
void exercise(core::Filesystem& fs, bool write);

// Whether PKFS_FUZZ_STRICT=1 asks for the stricter checks (scripts/fuzz
// --strict): a repair must leave a clean region, a mount must keep one clean.
bool strict();

}  // namespace pkfs::fuzz
