// fs/core/freeze.h: the types of Filesystem::freeze and Filesystem::verify,
// content checksums that prove a region came through a kexec intact (see
// FORMAT.md, "Freeze records"; freeze.cpp does the work).
//
// Owns: what to hash (FreezeOptions, VerifyOptions and their defaults), what
// was found (FileCheck, FreezeReport, VerifyReport), and the hidden
// attribute the records live in, which core's public xattr calls refuse.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/core/ino.h"

namespace pkfs::core {

// The hidden attribute holding a file's freeze record. Kernel xattr names
// carry a namespace prefix (user., trusted., ...), but FUSE forwards any
// name, so core's public xattr calls refuse (set) or hide (get, list,
// remove) every name starting with "pkfs.".
inline constexpr std::string_view kFreezeXattr = "pkfs.freeze";
inline constexpr std::string_view kReservedXattrPrefix = "pkfs.";
bool is_reserved_xattr(std::string_view name);

struct FreezeProgress {
  uint64_t files_done = 0;
  uint64_t files_total = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  std::string last_path;  // the file finished last, or empty
};

// What freeze hashes, and so what verify can check (see FORMAT.md, "Freeze
// records"). The kexec blackout must grow with metadata, not with guest RAM:
// files up to whole_max_bytes (state files: IOMMU page tables, device state)
// are hashed whole; larger ones (guest RAM) by `samples` pages of 4 KiB, one
// drawn at random from each of `samples` equal strata of the file, unless
// `full` asks for whole-content hashes of them too.
inline constexpr uint64_t kDefaultWholeMaxBytes = uint64_t{8} << 20;
inline constexpr uint32_t kDefaultFreezeSamples = 1024;
inline constexpr uint32_t kMaxFreezeSamples = uint32_t{1} << 20;

struct FreezeOptions {
  // Paths inside the filesystem ("/vm/ram"); a directory means every regular
  // file below it. Empty: every regular file.
  std::vector<std::string> paths;
  // Bytes hashed per work item: 64 KiB to 1 GiB, a power of two; default 4 MiB.
  uint64_t chunk_bytes = uint64_t{4} << 20;
  // Files of at most this many bytes are hashed whole; default 8 MiB. Larger
  // ones are sampled. UINT64_MAX hashes every file whole without samples
  // (the records of builds before sampling).
  uint64_t whole_max_bytes = kDefaultWholeMaxBytes;
  // Pages sampled per larger file: 1 to kMaxFreezeSamples; default 1024
  // (4 MiB hashed per file, whatever its size).
  uint32_t samples = kDefaultFreezeSamples;
  // Also hash larger files whole, so that `verify` with `full` can check
  // every byte of them later. Costs one pass over all guest RAM.
  bool full = false;
  // Hashing threads; 0 means one per CPU (at most 64).
  unsigned threads = 0;
  // Called from the calling thread about every 100 ms and once at the end.
  std::function<void(const FreezeProgress&)> progress;
};

struct VerifyOptions {
  std::vector<std::string> paths;  // as FreezeOptions::paths
  // Check sampled files whole too, against the whole-content hash a freeze
  // with `full` recorded; a file frozen with samples only is kSampledOnly.
  // Without it, a sampled file is checked at its sampled pages only.
  bool full = false;
  unsigned threads = 0;
  std::function<void(const FreezeProgress&)> progress;
};

enum class FileCheckStatus {
  kOk,             // freeze: recorded; verify: content matches the record
  kCorrupt,        // verify: content differs from the record
  kChanged,        // verify: size or mtime differ from the record (written since)
  kMissingRecord,  // verify: no (readable) freeze record
  kError,          // the file could not be read or its record not written
  kSampledOnly,    // verify with `full`: sampled pages match, but no whole-content hash was recorded
};
const char* file_check_status_name(FileCheckStatus status);  // "OK", "CORRUPT", ...

struct FileCheck {
  std::string path;
  Ino ino = 0;
  uint64_t size = 0;
  FileCheckStatus status = FileCheckStatus::kOk;
  uint64_t hash = 0;     // the content hash computed now (0 when not hashed)
  bool sampled = false;  // only sampled pages were hashed (hash is their hash)
  std::string detail;    // why, for anything but kOk
};

struct FreezeReport {
  std::vector<FileCheck> files;
  uint64_t bytes_hashed = 0;
  int64_t freeze_time_ns = 0;
};

struct VerifyReport {
  std::vector<FileCheck> files;
  uint64_t bytes_hashed = 0;
  int64_t freeze_time_ns = 0;   // of the last whole-filesystem freeze, or 0
  uint64_t frozen_files = 0;    // files that freeze recorded, per the root record
  uint64_t missing_frozen = 0;  // of those, how many carry no record from that freeze now
  uint64_t count(FileCheckStatus status) const;
  // No kCorrupt, kError or missing frozen file (kSampledOnly is not a fault
  // of the region: pkfsctl verify --full reports it separately).
  bool intact() const;
};

}  // namespace pkfs::core
