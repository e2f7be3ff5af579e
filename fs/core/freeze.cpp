// fs/core/freeze.cpp: content checksums recorded before a kexec and checked
// after it; see FORMAT.md, "Freeze records".
//
// Owns: choosing the files (paths or the whole tree), hashing their content
// in parallel straight from the region, and the freeze records kept in the
// hidden attribute kFreezeXattr. A file's hash is XXH3-64 (seed 0) of the
// list of the XXH3-64 hashes of its consecutive chunk_bytes pieces (the last
// one shorter), each a little-endian u64; holes hash as zeroes. The chunk
// size is part of the record, so verify splits a file exactly as freeze did.
#include <sys/xattr.h>
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

// A file's freeze record, stored as text: "v=1 size=S mtime_ns=M chunk=C
// xxh3=H frozen_ns=F" (H in 16 hex digits).
struct Record {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t chunk_bytes = 0;
  uint64_t hash = 0;
  int64_t frozen_ns = 0;
};

std::string record_text(const Record& record) {
  char text[160];
  std::snprintf(text, sizeof text, "v=1 size=%llu mtime_ns=%lld chunk=%llu xxh3=%016llx frozen_ns=%lld",
                static_cast<unsigned long long>(record.size), static_cast<long long>(record.mtime_ns),
                static_cast<unsigned long long>(record.chunk_bytes),
                static_cast<unsigned long long>(record.hash), static_cast<long long>(record.frozen_ns));
  return text;
}

// Parses a record; nullopt for anything malformed (records are region data,
// hence untrusted).
std::optional<Record> parse_record(const std::string& text) {
  Record record;
  unsigned long long size = 0, chunk = 0, hash = 0;
  long long mtime = 0, frozen = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "v=1 size=%llu mtime_ns=%lld chunk=%llu xxh3=%16llx frozen_ns=%lld%n", &size,
                  &mtime, &chunk, &hash, &frozen, &consumed) != 5 ||
      static_cast<size_t>(consumed) != text.size()) {
    return std::nullopt;
  }
  if (chunk < kMinChunkBytes || chunk > kMaxChunkBytes || (chunk & (chunk - 1)) != 0) return std::nullopt;
  record.size = size;
  record.mtime_ns = mtime;
  record.chunk_bytes = chunk;
  record.hash = hash;
  record.frozen_ns = frozen;
  return record;
}

// The whole-filesystem manifest on the root directory: "v=1 files=N frozen_ns=F".
std::string manifest_text(uint64_t files, int64_t frozen_ns) {
  return "v=1 files=" + std::to_string(files) + " frozen_ns=" + std::to_string(frozen_ns);
}

std::optional<std::pair<uint64_t, int64_t>> parse_manifest(const std::string& text) {
  unsigned long long files = 0;
  long long frozen = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "v=1 files=%llu frozen_ns=%lld%n", &files, &frozen, &consumed) != 2 ||
      static_cast<size_t>(consumed) != text.size()) {
    return std::nullopt;
  }
  return std::make_pair(static_cast<uint64_t>(files), static_cast<int64_t>(frozen));
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

// One file to hash: its extents (copied under m_mutex) and, after
// hash_files(), its chunk hashes and the file hash.
struct Filesystem::HashJob {
  FileCheck* check = nullptr;  // where the result goes
  uint64_t size = 0;
  uint64_t chunk_bytes = 0;
  std::vector<Extent> extents;
  std::vector<uint64_t> chunk_hashes;
  uint64_t chunks() const { return (size + chunk_bytes - 1) / chunk_bytes; }
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
  // Work items are (job, chunk) pairs handed out in order, so threads share
  // the chunks of one large file as well as many small files.
  struct Item {
    uint32_t job;
    uint64_t chunk;
  };
  std::vector<Item> items;
  FreezeProgress totals;
  totals.files_total = jobs.size();
  for (uint32_t j = 0; j < jobs.size(); ++j) {
    HashJob& job = jobs[j];
    job.chunk_hashes.assign(job.chunks(), 0);
    totals.bytes_total += job.size;
    for (uint64_t c = 0; c < job.chunks(); ++c) items.push_back({j, c});
  }
  std::vector<std::atomic<uint64_t>> chunks_left(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) chunks_left[j].store(jobs[j].chunks(), std::memory_order_relaxed);

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes_done{0};
  std::atomic<uint64_t> files_done{0};
  std::mutex state_mutex;  // protects last_path, finished
  std::condition_variable state_changed;
  std::string last_path;
  unsigned finished = 0;

  auto finish_job = [&](uint32_t j) {
    HashJob& job = jobs[j];
    job.check->hash = XXH3_64bits(job.chunk_hashes.data(), job.chunk_hashes.size() * sizeof(uint64_t));
    files_done.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard guard(state_mutex);
    last_path = job.check->path;
  };
  // Files without data finish at once.
  for (uint32_t j = 0; j < jobs.size(); ++j) {
    if (jobs[j].chunks() == 0) finish_job(j);
  }

  static const std::array<std::byte, 64 * 1024> zeroes{};
  const std::byte* base = m_region->base();
  auto worker = [&] {
    XXH3_state_t* state = XXH3_createState();
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < items.size();) {
      HashJob& job = jobs[items[i].job];
      uint64_t begin = items[i].chunk * job.chunk_bytes;
      uint64_t end = std::min(job.size, begin + job.chunk_bytes);
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
      job.chunk_hashes[items[i].chunk] = XXH3_64bits_digest(state);
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
  std::unique_lock lock(m_mutex);
  if (m_closed) return Error(EIO, "filesystem already closed");
  if (m_read_only) return Error(EROFS, "freeze needs the region read-write");
  TRY_ASSIGN(auto files, collect_files(options.paths));

  FreezeReport report;
  report.files.resize(files.size());
  std::vector<HashJob> jobs;
  jobs.reserve(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    FileCheck& check = report.files[i];
    check.path = files[i].first;
    check.ino = files[i].second;
    const format::Inode inode = inode_copy(check.ino);
    check.size = inode.size;
    auto extents = load_extents(inode);
    if (!extents) {
      check.status = FileCheckStatus::kError;
      check.detail = extents.error().message();
      continue;
    }
    jobs.push_back({&check, inode.size, chunk, std::move(extents).value(), {}});
    report.bytes_hashed += inode.size;
  }
  hash_files(jobs, options.threads, options.progress);

  report.freeze_time_ns = now_ns();
  uint64_t recorded = 0;
  for (FileCheck& check : report.files) {
    if (check.status != FileCheckStatus::kOk) continue;
    Record record;
    record.size = check.size;
    record.mtime_ns = inode_ref(check.ino).mtime_ns;
    record.chunk_bytes = chunk;
    record.hash = check.hash;
    record.frozen_ns = report.freeze_time_ns;
    if (auto stored = store_xattr_locked(check.ino, kFreezeXattr, record_text(record), 0, Ctime::kKeep);
        !stored) {
      check.status = FileCheckStatus::kError;
      check.detail = "cannot store the freeze record: " + stored.error().message();
      continue;
    }
    ++recorded;
  }
  if (options.paths.empty()) {
    TRY(store_xattr_locked(format::kRootIno, kManifestXattr, manifest_text(recorded, report.freeze_time_ns),
                           0, Ctime::kKeep));
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
  std::optional<std::pair<uint64_t, int64_t>> manifest;
  if (options.paths.empty()) {
    TRY_ASSIGN(auto text, find_xattr_locked(format::kRootIno, kManifestXattr));
    if (text) manifest = parse_manifest(*text);
    if (manifest) {
      report.frozen_files = manifest->first;
      report.freeze_time_ns = manifest->second;
    }
  }
  report.files.resize(files.size());
  std::vector<HashJob> jobs;
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
    if (manifest && record->frozen_ns == manifest->second) ++from_last_freeze;
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
    expected[i] = record->hash;
    jobs.push_back({&check, inode.size, record->chunk_bytes, std::move(extents).value(), {}});
    report.bytes_hashed += inode.size;
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
      char detail[96];
      std::snprintf(detail, sizeof detail, "content differs: xxh3 %016llx at freeze, %016llx now",
                    static_cast<unsigned long long>(expected[i]),
                    static_cast<unsigned long long>(check.hash));
      check.detail = detail;
    }
  }
  return report;
}

}  // namespace pkfs::core
