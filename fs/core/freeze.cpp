// fs/core/freeze.cpp: content checksums recorded before a kexec and checked
// after it; see FORMAT.md, "Freeze records".
//
// Owns: choosing the files (paths or the whole tree), hashing their content
// in parallel straight from the region, and the freeze records kept in the
// hidden attribute kFreezeXattr. A hash is XXH3-64 (seed 0) of the list of
// the XXH3-64 hashes of a list of pieces of the file, each a little-endian
// u64; holes hash as zeroes. The whole-content hash's pieces are the file's
// consecutive chunk_bytes pieces (the last one shorter); the sampled hash's
// are 4 KiB pages, one per stratum (see sample_ranges). Chunk size, sample
// count and sample seed are part of the record, so verify picks exactly the
// pieces freeze did.
//
// Why sampling: the kexec blackout (VMs paused) includes freeze before the
// kexec and verify after it. Hashing every byte of guest RAM costs about a
// second per 5 GiB and core, so a host with 1 TiB of guest RAM would stay
// dark for minutes. Files up to FreezeOptions::whole_max_bytes (state files,
// IOMMU page tables) are hashed whole; guest RAM is checked at a bounded
// number of pages, which catches a kernel that reused the carve-out (it
// scribbles over many pages) in O(files), not O(bytes). A single flipped
// byte in guest RAM is caught only by a whole-content check, which is on
// request (freeze and verify with `full`).
#include "fs/core/freeze.h"

#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "fs/core/internal.h"

namespace pkfs::core {

using format::Extent;
using format::kBlockSize;

namespace {

constexpr uint64_t kMinChunkBytes = uint64_t{64} << 10;
constexpr uint64_t kMaxChunkBytes = uint64_t{1} << 30;
constexpr unsigned kMaxThreads = 64;
constexpr std::string_view kManifestXattr = "pkfs.freeze-manifest";
constexpr auto kProgressInterval = std::chrono::milliseconds(100);
constexpr uint64_t kSamplePageBytes = 4096;

// A file's freeze record, stored as text (see FORMAT.md, "Freeze records"):
//   v=1 size=S mtime_ns=M chunk=C xxh3=H frozen_ns=F        whole only
//   v=2 size=S mtime_ns=M samples=N sseed=X sxxh3=H [chunk=C xxh3=H] frozen_ns=F
// (H and X in 16 hex digits). v=1 is exactly what builds before sampling
// wrote and read, so a small file's record stays readable by them.
struct Record {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::optional<uint64_t> chunk_bytes;  // with hash: the whole-content hash
  uint64_t hash = 0;
  uint32_t samples = 0;  // 0: no sampled hash
  uint64_t sample_seed = 0;
  uint64_t sample_hash = 0;
  int64_t frozen_ns = 0;
};

std::string hex16(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::string record_text(const Record& record) {
  std::string head = "size=" + std::to_string(record.size) + " mtime_ns=" + std::to_string(record.mtime_ns);
  std::string whole;
  if (record.chunk_bytes)
    whole = " chunk=" + std::to_string(*record.chunk_bytes) + " xxh3=" + hex16(record.hash);
  std::string tail = " frozen_ns=" + std::to_string(record.frozen_ns);
  if (record.samples == 0) return "v=1 " + head + whole + tail;
  return "v=2 " + head + " samples=" + std::to_string(record.samples) +
         " sseed=" + hex16(record.sample_seed) + " sxxh3=" + hex16(record.sample_hash) + whole + tail;
}

bool parse_decimal(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 20) return false;
  uint64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (result > (UINT64_MAX - digit) / 10) return false;
    result = result * 10 + digit;
  }
  value = result;
  return true;
}

bool parse_signed(std::string_view text, int64_t& value) {
  bool negative = text.starts_with('-');
  uint64_t magnitude = 0;
  if (!parse_decimal(negative ? text.substr(1) : text, magnitude)) return false;
  if (magnitude > static_cast<uint64_t>(INT64_MAX)) return false;
  value = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
  return true;
}

bool parse_hex16(std::string_view text, uint64_t& value) {
  if (text.size() != 16) return false;
  uint64_t result = 0;
  for (char c : text) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return false;
    result = result << 4 | static_cast<uint64_t>(digit);
  }
  value = result;
  return true;
}

// Parses a record; nullopt for anything malformed (records are region data,
// hence untrusted): fields in the documented order, each exactly once.
std::optional<Record> parse_record(const std::string& text) {
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  std::string_view rest(text);
  while (!rest.empty()) {
    size_t space = rest.find(' ');
    std::string_view token = rest.substr(0, space);
    size_t equals = token.find('=');
    if (equals == std::string_view::npos || equals == 0) return std::nullopt;
    fields.emplace_back(token.substr(0, equals), token.substr(equals + 1));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
    if (rest.empty()) return std::nullopt;  // a trailing space
  }
  size_t at = 0;
  auto next = [&](std::string_view key) -> std::optional<std::string_view> {
    if (at < fields.size() && fields[at].first == key) return fields[at++].second;
    return std::nullopt;
  };
  Record record;
  auto version = next("v");
  if (!version || (*version != "1" && *version != "2")) return std::nullopt;
  auto size = next("size");
  auto mtime = next("mtime_ns");
  if (!size || !parse_decimal(*size, record.size) || !mtime || !parse_signed(*mtime, record.mtime_ns)) {
    return std::nullopt;
  }
  if (*version == "2") {
    auto samples = next("samples");
    auto seed = next("sseed");
    auto hash = next("sxxh3");
    uint64_t count = 0;
    if (!samples || !parse_decimal(*samples, count) || count == 0 || count > kMaxFreezeSamples || !seed ||
        !parse_hex16(*seed, record.sample_seed) || !hash || !parse_hex16(*hash, record.sample_hash)) {
      return std::nullopt;
    }
    record.samples = static_cast<uint32_t>(count);
  }
  if (auto chunk = next("chunk")) {
    uint64_t bytes = 0;
    auto hash = next("xxh3");
    if (!parse_decimal(*chunk, bytes) || bytes < kMinChunkBytes || bytes > kMaxChunkBytes ||
        (bytes & (bytes - 1)) != 0 || !hash || !parse_hex16(*hash, record.hash)) {
      return std::nullopt;
    }
    record.chunk_bytes = bytes;
  } else if (*version == "1") {
    return std::nullopt;
  }
  auto frozen = next("frozen_ns");
  if (!frozen || !parse_signed(*frozen, record.frozen_ns) || at != fields.size()) return std::nullopt;
  return record;
}

// The sampled pieces of a file of `size` bytes: its 4 KiB pages split into
// `samples` strata of (nearly) equal page counts, and from stratum i the page
// at XXH3-64(i as a little-endian u64, seed) modulo the stratum's page count;
// the file's last page may be shorter. A file of at most `samples` pages has
// every page sampled. Random within strata, so a scribble cannot hide
// between fixed positions; seeded per freeze, so verify draws the same pages.
std::vector<std::pair<uint64_t, uint64_t>> sample_ranges(uint64_t size, uint32_t samples, uint64_t seed) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  uint64_t pages = (size + kSamplePageBytes - 1) / kSamplePageBytes;
  uint64_t count = std::min<uint64_t>(samples, pages);
  ranges.reserve(count);
  // Stratum i starts at floor(pages * i / count), computed without the
  // product (which overflows for huge sparse files): remainder * i stays
  // below 2^40 since count <= kMaxFreezeSamples.
  const uint64_t quotient = count == 0 ? 0 : pages / count;
  const uint64_t remainder = count == 0 ? 0 : pages % count;
  auto stratum_start = [&](uint64_t i) { return quotient * i + remainder * i / count; };
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t first = stratum_start(i);
    uint64_t last = stratum_start(i + 1);
    uint64_t index_le = i;  // little-endian asserted in fs/format
    uint64_t page = first + XXH3_64bits_withSeed(&index_le, sizeof index_le, seed) % (last - first);
    uint64_t begin = page * kSamplePageBytes;
    ranges.emplace_back(begin, std::min(size, begin + kSamplePageBytes));
  }
  return ranges;
}

std::vector<std::pair<uint64_t, uint64_t>> chunk_ranges(uint64_t size, uint64_t chunk_bytes) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  ranges.reserve((size + chunk_bytes - 1) / chunk_bytes);
  for (uint64_t begin = 0; begin < size; begin += chunk_bytes)
    ranges.emplace_back(begin, std::min(size, begin + chunk_bytes));
  return ranges;
}

// The whole-filesystem manifest on the root directory:
// "v=2 files=N frozen_ns=F mounts=M" (FORMAT.md, "Reserved names"); builds
// before mounts= wrote "v=1 files=N frozen_ns=F", which still parses.
struct Manifest {
  uint64_t files = 0;
  int64_t frozen_ns = 0;
  std::optional<uint64_t> mount_count;  // the superblock's at freeze
};

std::string manifest_text(uint64_t files, int64_t frozen_ns, uint64_t mount_count) {
  return "v=2 files=" + std::to_string(files) + " frozen_ns=" + std::to_string(frozen_ns) +
         " mounts=" + std::to_string(mount_count);
}

std::optional<Manifest> parse_manifest(const std::string& text) {
  unsigned long long files = 0, mounts = 0;
  long long frozen = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "v=2 files=%llu frozen_ns=%lld mounts=%llu%n", &files, &frozen, &mounts,
                  &consumed) == 3 &&
      static_cast<size_t>(consumed) == text.size()) {
    return Manifest{files, frozen, mounts};
  }
  consumed = 0;
  if (std::sscanf(text.c_str(), "v=1 files=%llu frozen_ns=%lld%n", &files, &frozen, &consumed) == 2 &&
      static_cast<size_t>(consumed) == text.size()) {
    return Manifest{files, frozen, std::nullopt};
  }
  return std::nullopt;
}

unsigned thread_count(unsigned requested, uint64_t work_items) {
  unsigned threads = requested != 0 ? requested : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, kMaxThreads);
  return static_cast<unsigned>(std::max<uint64_t>(1, std::min<uint64_t>(threads, work_items)));
}

}  // namespace

const char* file_check_status_name(FileCheckStatus status) {
  switch (status) {
    case FileCheckStatus::kOk: return "OK";
    case FileCheckStatus::kCorrupt: return "CORRUPT";
    case FileCheckStatus::kChanged: return "CHANGED";
    case FileCheckStatus::kMissingRecord: return "MISSING-RECORD";
    case FileCheckStatus::kError: return "ERROR";
    case FileCheckStatus::kSampledOnly: return "SAMPLED-ONLY";
  }
  return "UNKNOWN";
}

uint64_t VerifyReport::count(FileCheckStatus status) const {
  return static_cast<uint64_t>(std::count_if(files.begin(), files.end(),
                                             [&](const FileCheck& file) { return file.status == status; }));
}

bool VerifyReport::intact() const {
  return count(FileCheckStatus::kCorrupt) == 0 && count(FileCheckStatus::kError) == 0 && missing_frozen == 0;
}

// One hash of one file: its extents (copied under m_mutex), the pieces
// hashed (sorted, disjoint [begin, end) byte ranges: consecutive chunks, or
// sampled pages) and, after hash_files(), their hashes and the result.
struct Filesystem::HashJob {
  FileCheck* check = nullptr;  // whose file; its path shows in progress
  uint64_t* result = nullptr;  // where the hash goes
  std::vector<Extent> extents;
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  std::vector<uint64_t> piece_hashes;
};

Result<Ino> Filesystem::resolve_path(const std::string& path) {
  Ino current = format::kRootIno;
  size_t position = 0;
  while (position < path.size()) {
    size_t slash = path.find('/', position);
    if (slash == std::string::npos) slash = path.size();
    std::string_view name(path.data() + position, slash - position);
    position = slash + 1;
    if (name.empty() || name == ".") continue;
    if (name == "..") return Error(EINVAL, path + ": \"..\" is not allowed in a path here");
    auto slot = find_entry(current, name);
    if (!slot) return Error(slot.error().code(), path + ": " + slot.error().message());
    TRY_ASSIGN(Directory * dir, directory(current));
    auto child = dir->by_slot.find(slot.value());
    if (child == dir->by_slot.end()) return Error(EUCLEAN, path + ": directory index out of step");
    current = child->second;
  }
  return current;
}

Result<std::vector<std::pair<std::string, Ino>>> Filesystem::collect_files(
    const std::vector<std::string>& paths) {
  std::vector<std::pair<std::string, Ino>> files;
  std::set<Ino> seen;
  // Depth first, names sorted, so reports come out in a stable order. With
  // an explicit stack and each directory visited once: a damaged region
  // whose entry names an ancestor must not loop or exhaust the stack.
  auto walk = [&](const std::string& top, Ino top_ino) -> Result<void> {
    std::set<Ino> visited_dirs;
    std::vector<std::pair<std::string, Ino>> stack{{top, top_ino}};
    while (!stack.empty()) {
      auto [path, ino] = std::move(stack.back());
      stack.pop_back();
      TRY_ASSIGN(Node * n, node(ino));
      if (n->dir) {
        if (!visited_dirs.insert(ino).second) {
          return Error(EUCLEAN,
                       path + ": directory " + std::to_string(ino) + " is reached twice; run fsck.pkfs");
        }
        std::vector<std::pair<std::string, Ino>> children;
        for (const auto& [name, slot] : n->dir->by_name) {
          auto child = n->dir->by_slot.find(slot);
          if (child != n->dir->by_slot.end()) children.emplace_back(name, child->second);
        }
        std::sort(children.begin(), children.end());
        std::string prefix = path == "/" ? "/" : path + "/";
        for (auto it = children.rbegin(); it != children.rend(); ++it)
          stack.emplace_back(prefix + it->first, it->second);
        continue;
      }
      if (S_ISREG(inode_ref(ino).mode) && seen.insert(ino).second) files.emplace_back(path, ino);
    }
    return success();
  };
  if (paths.empty()) {
    TRY(walk("/", format::kRootIno));
    return files;
  }
  for (const std::string& given : paths) {
    std::string path = given.starts_with('/') ? given : "/" + given;
    TRY_ASSIGN(Ino ino, resolve_path(path));
    TRY_ASSIGN(Node * n, node(ino));
    if (!n->dir && !S_ISREG(inode_ref(ino).mode)) {
      return Error(EINVAL, path + ": not a regular file or directory");
    }
    TRY(walk(path, ino));
  }
  return files;
}

void Filesystem::hash_files(std::vector<HashJob>& jobs, unsigned threads,
                            const std::function<void(const FreezeProgress&)>& progress) {
  // Work items are (job, piece) pairs handed out in order, so threads share
  // the pieces of one large file as well as many small files.
  struct Item {
    uint32_t job;
    uint64_t chunk;
  };
  std::vector<Item> items;
  FreezeProgress totals;
  totals.files_total = jobs.size();
  for (uint32_t j = 0; j < jobs.size(); ++j) {
    HashJob& job = jobs[j];
    job.piece_hashes.assign(job.pieces.size(), 0);
    for (uint64_t c = 0; c < job.pieces.size(); ++c) {
      items.push_back({j, c});
      totals.bytes_total += job.pieces[c].second - job.pieces[c].first;
    }
  }
  std::vector<std::atomic<uint64_t>> chunks_left(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j)
    chunks_left[j].store(jobs[j].pieces.size(), std::memory_order_relaxed);

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes_done{0};
  std::atomic<uint64_t> files_done{0};
  std::mutex state_mutex;  // protects last_path, finished
  std::condition_variable state_changed;
  std::string last_path;
  unsigned finished = 0;

  auto finish_job = [&](uint32_t j) {
    HashJob& job = jobs[j];
    *job.result = XXH3_64bits(job.piece_hashes.data(), job.piece_hashes.size() * sizeof(uint64_t));
    files_done.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard guard(state_mutex);
    last_path = job.check->path;
  };
  // Files without data finish at once.
  for (uint32_t j = 0; j < jobs.size(); ++j) {
    if (jobs[j].pieces.empty()) finish_job(j);
  }

  static const std::array<std::byte, 64 * 1024> zeroes{};
  const std::byte* base = m_region->base();
  auto worker = [&] {
    XXH3_state_t* state = XXH3_createState();
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < items.size();) {
      HashJob& job = jobs[items[i].job];
      const uint64_t begin = job.pieces[items[i].chunk].first;
      const uint64_t end = job.pieces[items[i].chunk].second;
      XXH3_64bits_reset(state);
      uint64_t filled = begin;
      auto feed_zeroes = [&](uint64_t length) {
        while (length > 0) {
          uint64_t piece = std::min<uint64_t>(length, zeroes.size());
          XXH3_64bits_update(state, zeroes.data(), piece);
          length -= piece;
        }
      };
      // Extents are sorted by file block: skip to the first that reaches `begin`.
      auto it = std::partition_point(job.extents.begin(), job.extents.end(), [&](const Extent& extent) {
        return (extent.file_block + extent.block_count) * kBlockSize <= begin;
      });
      for (; it != job.extents.end() && it->file_block * kBlockSize < end; ++it) {
        uint64_t extent_begin = it->file_block * kBlockSize;
        uint64_t from = std::max(begin, extent_begin);
        uint64_t to = std::min(end, (it->file_block + it->block_count) * kBlockSize);
        if (from >= to) continue;
        if (from > filled) feed_zeroes(from - filled);
        XXH3_64bits_update(state, base + uint64_t{it->region_block} * kBlockSize + (from - extent_begin),
                           to - from);
        filled = to;
      }
      if (end > filled) feed_zeroes(end - filled);
      job.piece_hashes[items[i].chunk] = XXH3_64bits_digest(state);
      bytes_done.fetch_add(end - begin, std::memory_order_relaxed);
      // The thread that hashes a file's last chunk finishes the file; the
      // acq_rel count makes every other chunk's hash visible to it.
      if (chunks_left[items[i].job].fetch_sub(1, std::memory_order_acq_rel) == 1) finish_job(items[i].job);
    }
    XXH3_freeState(state);
    std::lock_guard guard(state_mutex);
    ++finished;
    state_changed.notify_all();
  };

  unsigned count = thread_count(threads, items.size());
  std::vector<std::thread> pool;
  pool.reserve(count);
  for (unsigned t = 0; t < count; ++t) pool.emplace_back(worker);
  auto report = [&] {
    if (!progress) return;
    FreezeProgress now = totals;
    now.files_done = files_done.load(std::memory_order_relaxed);
    now.bytes_done = bytes_done.load(std::memory_order_relaxed);
    {
      std::lock_guard guard(state_mutex);
      now.last_path = last_path;
    }
    progress(now);
  };
  {
    std::unique_lock lock(state_mutex);
    while (finished < count) {
      state_changed.wait_for(lock, kProgressInterval);
      if (finished < count) {
        lock.unlock();
        report();
        lock.lock();
      }
    }
  }
  for (std::thread& thread : pool) thread.join();
  report();
}

Result<FreezeReport> Filesystem::freeze(const FreezeOptions& options) {
  uint64_t chunk = options.chunk_bytes;
  if (chunk < kMinChunkBytes || chunk > kMaxChunkBytes || (chunk & (chunk - 1)) != 0) {
    return Error(EINVAL, "freeze chunk size must be a power of two from 64 KiB to 1 GiB");
  }
  if (options.samples == 0 || options.samples > kMaxFreezeSamples) {
    return Error(EINVAL, "freeze samples must be from 1 to " + std::to_string(kMaxFreezeSamples));
  }
  stop_background_zeroing();
  std::unique_lock lock(m_mutex);
  if (m_closed) return Error(EIO, "filesystem already closed");
  if (m_read_only) return Error(EROFS, "freeze needs the region read-write");
  TRY_ASSIGN(auto files, collect_files(options.paths));

  FreezeReport report;
  report.freeze_time_ns = now_ns();
  // One seed per freeze: the pages sampled differ from one freeze to the next.
  const uint64_t seed = XXH3_64bits_withSeed(&report.freeze_time_ns, sizeof report.freeze_time_ns,
                                             static_cast<uint64_t>(::getpid()));
  report.files.resize(files.size());
  std::vector<Record> records(files.size());
  std::vector<HashJob> jobs;
  jobs.reserve(files.size() * 2);
  for (size_t i = 0; i < files.size(); ++i) {
    FileCheck& check = report.files[i];
    Record& record = records[i];
    check.path = files[i].first;
    check.ino = files[i].second;
    const format::Inode inode = inode_copy(check.ino);
    check.size = inode.size;
    record.size = inode.size;
    record.mtime_ns = inode.mtime_ns;
    record.frozen_ns = report.freeze_time_ns;
    auto extents = load_extents(inode);
    if (!extents) {
      check.status = FileCheckStatus::kError;
      check.detail = extents.error().message();
      continue;
    }
    const bool sampled = inode.size > options.whole_max_bytes;
    if (sampled) {
      record.samples = options.samples;
      record.sample_seed = seed;
      check.sampled = !options.full;
      HashJob job{
          &check, &record.sample_hash, extents.value(), sample_ranges(inode.size, options.samples, seed), {}};
      for (const auto& piece : job.pieces) report.bytes_hashed += piece.second - piece.first;
      jobs.push_back(std::move(job));
    }
    if (!sampled || options.full) {
      record.chunk_bytes = chunk;
      jobs.push_back({&check, &record.hash, std::move(extents).value(), chunk_ranges(inode.size, chunk), {}});
      report.bytes_hashed += inode.size;
    }
  }
  hash_files(jobs, options.threads, options.progress);

  uint64_t recorded = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    FileCheck& check = report.files[i];
    if (check.status != FileCheckStatus::kOk) continue;
    check.hash = records[i].chunk_bytes ? records[i].hash : records[i].sample_hash;
    if (auto stored = store_xattr_locked(check.ino, kFreezeXattr, record_text(records[i]), 0, Ctime::kKeep);
        !stored) {
      check.status = FileCheckStatus::kError;
      check.detail = "cannot store the freeze record: " + stored.error().message();
      continue;
    }
    ++recorded;
  }
  if (options.paths.empty()) {
    TRY(store_xattr_locked(format::kRootIno, kManifestXattr,
                           manifest_text(recorded, report.freeze_time_ns, superblock().mount_count), 0,
                           Ctime::kKeep));
  }
  lock.unlock();
  TRY(close());
  TRY(m_region->sync());
  return report;
}

Result<VerifyReport> Filesystem::verify(const VerifyOptions& options) {
  std::shared_lock lock(m_mutex);
  if (m_closed) return Error(EIO, "filesystem already closed");
  TRY_ASSIGN(auto files, collect_files(options.paths));

  VerifyReport report;
  std::optional<Manifest> manifest;
  {
    TRY_ASSIGN(auto text, find_xattr_locked(format::kRootIno, kManifestXattr));
    if (text) manifest = parse_manifest(*text);
  }
  // Mounted read-write since the last whole freeze: a guest may have run,
  // and its writes through a direct mapping change content but not mtime.
  // (Known only for records of the last whole freeze, which the manifest
  // describes.)
  std::optional<uint64_t> mounts_since;
  int64_t whole_freeze_ns = manifest ? manifest->frozen_ns : 0;
  if (manifest && manifest->mount_count && superblock().mount_count > *manifest->mount_count) {
    mounts_since = superblock().mount_count - *manifest->mount_count;
  }
  std::vector<bool> mounted_since(files.size(), false);
  if (!options.paths.empty()) manifest.reset();
  if (manifest) {
    report.frozen_files = manifest->files;
    report.freeze_time_ns = manifest->frozen_ns;
  }
  report.files.resize(files.size());
  std::vector<HashJob> jobs;
  jobs.reserve(files.size());
  std::vector<uint64_t> expected(files.size(), 0);
  uint64_t from_last_freeze = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    FileCheck& check = report.files[i];
    check.path = files[i].first;
    check.ino = files[i].second;
    const format::Inode inode = inode_copy(check.ino);
    check.size = inode.size;
    auto text = find_xattr_locked(check.ino, kFreezeXattr);
    if (!text) {
      check.status = FileCheckStatus::kError;
      check.detail = text.error().message();
      continue;
    }
    std::optional<Record> record = text.value() ? parse_record(*text.value()) : std::nullopt;
    if (!record) {
      check.status = FileCheckStatus::kMissingRecord;
      check.detail = text.value() ? "the freeze record is malformed" : "not frozen";
      continue;
    }
    if (manifest && record->frozen_ns == manifest->frozen_ns) ++from_last_freeze;
    mounted_since[i] = mounts_since && record->frozen_ns == whole_freeze_ns;
    if (record->size != inode.size || record->mtime_ns != inode.mtime_ns) {
      check.status = FileCheckStatus::kChanged;
      check.detail = record->size != inode.size ? "size " + std::to_string(record->size) + " at freeze, " +
                                                      std::to_string(inode.size) + " now"
                                                : "modified since freeze";
      continue;
    }
    auto extents = load_extents(inode);
    if (!extents) {
      check.status = FileCheckStatus::kError;
      check.detail = extents.error().message();
      continue;
    }
    // The whole-content hash when the record has one and either the file
    // was never sampled or the caller asked for every byte; else the
    // sampled pages.
    const bool whole = record->chunk_bytes && (record->samples == 0 || options.full);
    if (whole) {
      expected[i] = record->hash;
      jobs.push_back({&check,
                      &check.hash,
                      std::move(extents).value(),
                      chunk_ranges(inode.size, *record->chunk_bytes),
                      {}});
      report.bytes_hashed += inode.size;
    } else {
      check.sampled = true;
      expected[i] = record->sample_hash;
      HashJob job{&check,
                  &check.hash,
                  std::move(extents).value(),
                  sample_ranges(inode.size, record->samples, record->sample_seed),
                  {}};
      for (const auto& piece : job.pieces) report.bytes_hashed += piece.second - piece.first;
      jobs.push_back(std::move(job));
    }
  }
  if (manifest && report.frozen_files > from_last_freeze) {
    report.missing_frozen = report.frozen_files - from_last_freeze;
  }
  hash_files(jobs, options.threads, options.progress);
  for (size_t i = 0; i < files.size(); ++i) {
    FileCheck& check = report.files[i];
    if (check.status != FileCheckStatus::kOk) continue;
    if (check.hash != expected[i]) {
      check.status = FileCheckStatus::kCorrupt;
      char detail[128];
      std::snprintf(detail, sizeof detail, "%s: xxh3 %016llx at freeze, %016llx now",
                    check.sampled ? "sampled pages differ" : "content differs",
                    static_cast<unsigned long long>(expected[i]),
                    static_cast<unsigned long long>(check.hash));
      check.detail = detail;
      if (mounted_since[i]) {
        check.detail += "; the region was mounted read-write " + std::to_string(*mounts_since) +
                        " time(s) since the freeze: a guest that ran changed its memory without changing "
                        "mtime (verify before the guest resumes)";
      }
    } else if (check.sampled && options.full) {
      check.status = FileCheckStatus::kSampledOnly;
      check.detail = "sampled pages match; no whole-content hash was recorded (freeze --full records one)";
    }
  }
  return report;
}

}  // namespace pkfs::core
