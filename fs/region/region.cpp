// fs/region/region.cpp: opening, classifying, locking and mapping regions.
//
// Owns: telling a hugetlbfs file, a tmpfs file and a device-dax device apart
// (and refusing everything else), creating a region file, the single-user
// POSIX record lock and the per-process register that keeps it from being
// dropped by accident, the 2 MiB-aligned MAP_SHARED mapping, and turning each
// failure into an Error that names the path and says what to do.
//
// Lock rule. POSIX record locks belong to (process, inode) and the kernel
// drops ALL of a process's locks on an inode as soon as the process closes ANY
// descriptor for that inode. So a FileRegion keeps its one descriptor open for
// its whole life, and nothing in this library may open and close a region
// that this process holds: probe() only stat()s and reads sysfs, and open()
// and lock_holder() consult the OpenRegions register below before opening
// anything. (OFD locks would not have this trap, but F_OFD_GETLK reports no
// pid, and "in use by pid N" is the message users need.)
#include "fs/region/region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "fs/base/fd.h"
#include "fs/format/format.h"
#include "fs/region/zero.h"

namespace pkfs::region {
namespace {

constexpr uint64_t kHugetlbfsMagic = 0x958458f6;
constexpr uint64_t kTmpfsMagic = 0x01021994;
constexpr uint64_t kTmpfsPageSize = 4096;
constexpr uint64_t kDevdaxDefaultAlign = uint64_t{2} << 20;
// Mappings start on a 2 MiB boundary even for 4 KiB backings so that the
// format can place 2 MiB-aligned extents that the kernel (and a VMM mapping
// the same fd) can back with huge pages.
constexpr uint64_t kMapAlignment = uint64_t{2} << 20;
constexpr const char* kSupported =
    "pkfs regions live in a file on hugetlbfs or tmpfs, or on a device-dax character device "
    "(/dev/daxN.M)";

std::string bytes_text(uint64_t bytes) { return std::to_string(bytes) + " bytes"; }

// First line of a small text file (sysfs, procfs), or nullopt.
std::optional<std::string> read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<uint64_t> read_number(const std::string& path) {
  auto line = read_line(path);
  if (!line || line->empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(line->c_str(), &end, 10);
  if (errno != 0 || end == line->c_str()) return std::nullopt;
  return static_cast<uint64_t>(value);
}

// "pid 1234 (pkfs)", or "pid 1234" when its comm cannot be read (it exited,
// or /proc is hidden from us).
std::string describe_pid(pid_t pid) {
  std::string text = "pid " + std::to_string(pid);
  if (auto comm = read_line("/proc/" + std::to_string(pid) + "/comm")) text += " (" + *comm + ")";
  return text;
}

std::string filesystem_name(uint64_t magic) {
  switch (magic) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    case 0x6969: return "nfs";
    case 0x01021997: return "9p";
    case 0x65735546: return "fuse";
    case 0x6a656a63: return "virtiofs";
    case 0x1373: return "devtmpfs";
    default: {
      char text[40];
      std::snprintf(text, sizeof text, "filesystem magic 0x%llx", static_cast<unsigned long long>(magic));
      return text;
    }
  }
}

std::string parent_directory(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// ---------------------------------------------------------------------------
// The per-process register of open regions. It exists only because of the
// lock rule in the file header: before open() or lock_holder() opens a
// descriptor for a path, they check that this process does not hold a lock on
// that inode; otherwise the close() on any later error (or the second
// Region's destructor) would silently release the first Region's lock.

struct InodeKey {
  dev_t dev;
  ino_t ino;
  auto operator<=>(const InodeKey&) const = default;
};

InodeKey key_of(const struct stat& st) { return {st.st_dev, st.st_ino}; }

class OpenRegions {
 public:
  static OpenRegions& instance() {
    static OpenRegions registry;
    return registry;
  }

  // Records one more open of `key`; `locks` says whether it will hold a lock.
  // Refused when either the existing opens or this one lock: two lock-free
  // read-only views are harmless, anything else risks a dropped lock.
  Result<void> claim(const InodeKey& key, bool locks, const std::string& path) {
    std::lock_guard guard(m_mutex);
    forget_if_forked();
    Use& use = m_uses[key];
    if (use.count > 0 && (use.locked || locks)) {
      return Error(EBUSY, "region " + path + " is already open in this process (" + describe_pid(::getpid()) +
                              "); a second open would release its lock when closed");
    }
    ++use.count;
    use.locked = use.locked || locks;
    return success();
  }

  void release(const InodeKey& key, bool locks) {
    std::lock_guard guard(m_mutex);
    if (forget_if_forked()) return;
    auto it = m_uses.find(key);
    if (it == m_uses.end()) return;
    if (locks) it->second.locked = false;
    if (--it->second.count <= 0) m_uses.erase(it);
  }

  // Runs `fn(locked_here)` with the register held, so no other thread can
  // start opening (and locking) the inode while `fn` opens and closes it.
  template <typename Fn>
  auto with_inode(const InodeKey& key, Fn&& fn) {
    std::lock_guard guard(m_mutex);
    forget_if_forked();
    auto it = m_uses.find(key);
    return fn(it != m_uses.end() && it->second.locked);
  }

 private:
  struct Use {
    int count = 0;
    bool locked = false;
  };

  // POSIX locks are not inherited across fork(), so a child starts with
  // nothing held even though it has a copy of the parent's register.
  bool forget_if_forked() {
    pid_t pid = ::getpid();
    if (pid == m_pid) return false;
    m_uses.clear();
    m_pid = pid;
    return true;
  }

  std::mutex m_mutex;
  std::map<InodeKey, Use> m_uses;
  pid_t m_pid = ::getpid();
};

// A claim in OpenRegions, released when the owning region is gone.
class Claim {
 public:
  Claim(InodeKey key, bool locks) : m_key(key), m_locks(locks), m_active(true) {}
  Claim(Claim&& other) noexcept
      : m_key(other.m_key), m_locks(other.m_locks), m_active(std::exchange(other.m_active, false)) {}
  Claim& operator=(Claim&&) = delete;
  Claim(const Claim&) = delete;
  ~Claim() {
    if (m_active) OpenRegions::instance().release(m_key, m_locks);
  }

 private:
  InodeKey m_key;
  bool m_locks;
  bool m_active;
};

// ---------------------------------------------------------------------------
// Classification.

Result<Info> classify_devdax(const std::string& path, const struct stat& st) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path link =
      "/sys/dev/char/" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  fs::path dir = fs::canonical(link, ec);
  if (ec) {
    return Error(ENOTSUP, path + ": character device " + link.filename().string() +
                              " has no sysfs entry, so it cannot be a device-dax device; " + kSupported);
  }
  fs::path subsystem = fs::read_symlink(dir / "subsystem", ec);
  if (ec || subsystem.filename() != "dax") {
    std::string what = ec ? std::string("unknown") : subsystem.filename().string();
    return Error(ENOTSUP, path + ": character device of subsystem '" + what +
                              "' is not a device-dax device; " + kSupported);
  }
  auto size = read_number((dir / "size").string());
  if (!size) {
    return Error(EIO, path + ": cannot read the device-dax size from " + (dir / "size").string());
  }
  // Kernels before 5.10 keep align only on the parent's dax_region; older
  // ones have none, and their device-dax mappings are 2 MiB.
  auto align = read_number((dir / "align").string());
  if (!align) align = read_number((dir.parent_path() / "dax_region" / "align").string());
  if (!align || *align == 0) align = kDevdaxDefaultAlign;
  Info info;
  info.path = path;
  info.kind = Kind::kDevdax;
  info.size_bytes = *size;
  info.page_size = *align;
  info.survives_kexec = survives_kexec(info.kind);
  return info;
}

// `fs` is the statfs of the file; only read for regular files.
Result<Info> classify(const std::string& path, const struct stat& st, const struct statfs& fs) {
  if (S_ISREG(st.st_mode)) {
    auto magic = static_cast<uint64_t>(fs.f_type);
    Info info;
    info.path = path;
    info.size_bytes = static_cast<uint64_t>(st.st_size);
    if (magic == kHugetlbfsMagic) {
      info.kind = Kind::kHugetlbfs;
      info.page_size = static_cast<uint64_t>(fs.f_bsize);
    } else if (magic == kTmpfsMagic) {
      info.kind = Kind::kTmpfs;
      info.page_size = kTmpfsPageSize;
    } else {
      return Error(ENOTSUP, path + ": file is on " + filesystem_name(magic) +
                                ", whose pages do not outlive the process as memory; " + kSupported);
    }
    return info;
  }
  if (S_ISCHR(st.st_mode)) return classify_devdax(path, st);
  if (S_ISDIR(st.st_mode)) return Error(EINVAL, path + ": is a directory; " + kSupported);
  if (S_ISBLK(st.st_mode)) return Error(ENOTSUP, path + ": block devices are not supported; " + kSupported);
  return Error(EINVAL, path + ": not a regular file or character device; " + kSupported);
}

// Whole-inode probe by path. Never opens `path` (see the lock rule).
Result<Info> probe_path(const std::string& path, struct stat* st_out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return Error(ENOENT, path + ": does not exist; " + kSupported);
    return Error::from_errno(err, path);
  }
  struct statfs fs {};
  if (S_ISREG(st.st_mode) && ::statfs(path.c_str(), &fs) != 0) return Error::from_errno(errno, path);
  if (st_out != nullptr) *st_out = st;
  return classify(path, st, fs);
}

Result<void> check_geometry(const std::string& path, uint64_t size, uint64_t page_size) {
  if (size < format::kMinRegionBytes) {
    return Error(EINVAL,
                 path + ": too small to format: " + bytes_text(size) + ", pkfs needs at least 16 MiB");
  }
  if (page_size == 0 || size % page_size != 0) {
    return Error(EINVAL, path + ": size " + bytes_text(size) + " is not a multiple of the page size (" +
                             bytes_text(page_size) + ")");
  }
  return success();
}

// ---------------------------------------------------------------------------
// Locking.

// Takes the region lock: F_WRLCK for a writer, F_RDLCK for a read-only opener
// that wants no writer underneath it. Fails with EBUSY naming the holder.
Result<void> take_lock(int fd, short type, const std::string& path) {
  // Two attempts: the holder may exit between our F_SETLK and F_GETLK, and
  // then there is nobody to name and the lock is probably free.
  for (int attempt = 0; attempt < 2; ++attempt) {
    struct flock want {};
    want.l_type = type;
    want.l_whence = SEEK_SET;
    want.l_start = 0;
    want.l_len = 0;  // the whole file, however long it grows
    if (::fcntl(fd, F_SETLK, &want) == 0) return success();
    int err = errno;
    if (err != EAGAIN && err != EACCES) return Error::from_errno(err, path + ": cannot lock region");
    struct flock holder = want;
    if (::fcntl(fd, F_GETLK, &holder) != 0) break;
    if (holder.l_type == F_UNLCK) continue;
    // l_pid is 0 when the holder lives in a pid namespace we cannot see.
    std::string who = holder.l_pid > 0 ? describe_pid(holder.l_pid) : "a process in another pid namespace";
    return Error(EBUSY, "region " + path + " is in use by " + who);
  }
  return Error(EBUSY, "region " + path + " is in use by another process");
}

// ---------------------------------------------------------------------------
// Mapping.

// The default hugepage size in kB ("Hugepagesize:" in /proc/meminfo), or 0.
uint64_t default_hugepage_kb() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  while (meminfo >> key) {
    uint64_t value = 0;
    if (key == "Hugepagesize:") return meminfo >> value ? value : 0;
    meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

// Explains a hugetlbfs mapping that the kernel refused for want of pages.
//
// The numbers are an estimate made after the fact, on purpose: mapping a
// hugetlbfs file MAP_SHARED reserves every page it does not yet have, and the
// reservation stays with the inode after munmap() and close(). A file mapped
// before (by an earlier daemon) thus already owns reserved pages that
// resv_hugepages counts against everybody, and a "free - resv >= needed"
// test made in advance would refuse a reopen the kernel allows (and would
// ignore surplus pages from nr_overcommit_hugepages). So the kernel's
// reservation at mmap() is the check, and this only explains its answer.
Error hugepage_shortage(const std::string& path, int fd, const Info& info) {
  uint64_t page_kb = info.page_size / 1024;
  std::string pool = "/sys/kernel/mm/hugepages/hugepages-" + std::to_string(page_kb) + "kB/";
  // /proc/sys/vm/nr_hugepages sizes the default hugepage pool only.
  std::string nr_path =
      page_kb == default_hugepage_kb() ? "/proc/sys/vm/nr_hugepages" : pool + "nr_hugepages";
  std::string pages = std::to_string(page_kb) + " kB hugepages";
  auto nr = read_number(pool + "nr_hugepages");
  auto free_pages = read_number(pool + "free_hugepages");
  auto reserved = read_number(pool + "resv_hugepages");
  struct stat st {};
  if (!nr || !free_pages || !reserved || ::fstat(fd, &st) != 0) {
    return Error(ENOMEM, path + ": not enough free " + pages + " to map " + bytes_text(info.size_bytes) +
                             "; raise " + nr_path);
  }
  uint64_t total = info.size_bytes / info.page_size;
  uint64_t have = std::min(total, static_cast<uint64_t>(st.st_blocks) * 512 / info.page_size);
  uint64_t needed = total - have;
  uint64_t available = *free_pages > *reserved ? *free_pages - *reserved : 0;
  if (needed > available) {
    uint64_t target = *nr + (needed - available);
    return Error(ENOMEM, path + ": needs " + std::to_string(needed) + " free " + pages + ", " +
                             std::to_string(available) + " are free; run: echo " + std::to_string(target) +
                             " > " + nr_path);
  }
  return Error(ENOMEM, path + ": the kernel refused to reserve " + std::to_string(needed) + " " + pages +
                           " although " + std::to_string(available) +
                           " look free (a hugetlb cgroup limit, or another process took them); see " +
                           nr_path);
}

Error mapping_error(int err, const std::string& path, int fd, const Info& info) {
  if (err == ENOMEM && info.kind == Kind::kHugetlbfs) return hugepage_shortage(path, fd, info);
  std::string what = path + ": cannot map " + bytes_text(info.size_bytes) + " (" + kind_name(info.kind) + ")";
  if (err == ENOMEM) return Error(ENOMEM, what + ": not enough memory or address space");
  if (err == EINVAL && info.kind == Kind::kDevdax) {
    return Error(EINVAL, what + ": the device refused a mapping aligned to " + bytes_text(info.page_size));
  }
  return Error::from_errno(err, what);
}

// Maps the whole backing MAP_SHARED at an address aligned to
// max(2 MiB, page size): mmap() only promises page alignment, so reserve
// size + alignment of inaccessible address space, map the region over its
// aligned middle with MAP_FIXED, and hand the slack on both sides back.
Result<std::byte*> map_aligned(int fd, const Info& info, bool writable, bool populate) {
  uint64_t align = std::max(kMapAlignment, info.page_size);
  uint64_t size = info.size_bytes;
  size_t reserve_length = size + align;
  void* reserve =
      ::mmap(nullptr, reserve_length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserve == MAP_FAILED) {
    return Error(ENOMEM, info.path + ": cannot reserve " + bytes_text(reserve_length) + " of address space");
  }
  auto start = reinterpret_cast<uintptr_t>(reserve);
  uintptr_t aligned = (start + align - 1) / align * align;
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
  void* mapped = ::mmap(reinterpret_cast<void*>(aligned), size, prot, flags, fd, 0);
  if (mapped == MAP_FAILED) {
    int err = errno;
    ::munmap(reserve, reserve_length);
    return mapping_error(err, info.path, fd, info);
  }
  if (aligned > start) ::munmap(reserve, aligned - start);
  uintptr_t end = aligned + size;
  uintptr_t reserve_end = start + reserve_length;
  if (reserve_end > end) ::munmap(reinterpret_cast<void*>(end), reserve_end - end);
  // No MADV_DONTDUMP: the default coredump_filter (0x33) already leaves out
  // shared file, shared hugetlb and DAX mappings, so a crash dump stays small.
  return static_cast<std::byte*>(mapped);
}

// ---------------------------------------------------------------------------
// The region.

class FileRegion final : public Region {
 public:
  FileRegion(int fd, int read_only_fd, std::byte* base, Info info, bool read_only, bool created, Claim claim)
      : m_fd(fd), m_read_only_fd(read_only_fd), m_claim(std::move(claim)) {
    m_base = base;
    m_info = std::move(info);
    m_read_only = read_only;
    m_created = created;
  }

  // Unmaps, then closes (dropping the lock); m_claim is released after the
  // close so no thread of ours can lock the inode before we let go of it.
  ~FileRegion() override {
    ::munmap(m_base, m_info.size_bytes);
    if (m_read_only_fd >= 0 && m_read_only_fd != m_fd) ::close(m_read_only_fd);
    ::close(m_fd);
  }

  int fd() const override { return m_fd; }
  int shared_fd(Access access) const override {
    if (access == Access::kReadOnly) return m_read_only_fd;
    return m_read_only ? -1 : m_fd;
  }

  void zero(uint64_t offset, uint64_t length, unsigned threads = 0) override {
    // A punch that fails (a kernel without it for this file) falls back to
    // stores: the range must read as zeros either way.
    if (m_info.kind == Kind::kTmpfs && !m_read_only &&
        ::fallocate(m_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0) {
      return;
    }
    Region::zero(offset, length, threads);
  }

  Result<void> sync() override {
    if (m_read_only) return success();
    // A device-dax mapping is the memory itself: there is no page cache to
    // write back, and the device has no fsync, so msync() fails with EINVAL.
    // A kexec keeps the memory and the caches stay coherent: a fence is all.
    if (m_info.kind == Kind::kDevdax) {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      return success();
    }
    if (::msync(m_base, m_info.size_bytes, MS_SYNC) != 0) {
      return Error::from_errno(errno, m_info.path + ": cannot flush the region (msync)");
    }
    return success();
  }

 private:
  int m_fd;
  // A read-only descriptor of the same backing for clients (m_fd itself on
  // a read-only region). Opened with the region and closed with it, so the
  // lock rule holds: no descriptor of the region closes while it is locked.
  int m_read_only_fd;
  Claim m_claim;
};

// Removes a file open() created unless dismissed: a failed create leaves
// nothing behind.
class CreatedFileGuard {
 public:
  explicit CreatedFileGuard(std::string path) : m_path(std::move(path)) {}
  ~CreatedFileGuard() {
    if (m_armed) ::unlink(m_path.c_str());
  }
  CreatedFileGuard(const CreatedFileGuard&) = delete;
  CreatedFileGuard& operator=(const CreatedFileGuard&) = delete;
  void dismiss() { m_armed = false; }

 private:
  std::string m_path;
  bool m_armed = true;
};

short lock_type_for(const OpenOptions& options) {
  if (options.access == Access::kReadWrite) return F_WRLCK;
  return options.locking == Locking::kExclusive ? F_RDLCK : F_UNLCK;
}

Error open_error(int err, const std::string& path, bool writable) {
  if (writable && (err == EROFS || err == EACCES || err == EPERM)) {
    return Error(err, path + ": read-only file, cannot open it read-write (" + errno_text(err) +
                          "); open it read-only or fix its permissions or mount");
  }
  return Error::from_errno(err, path + ": cannot open");
}

// From an open, locked descriptor to a mapped FileRegion. Takes `fd` and
// `claim` only on success; on failure the caller closes the descriptor
// before it releases the claim (see FileRegion's destructor for why).
Result<std::unique_ptr<Region>> finish_open(const std::string& path, UniqueFd& fd, Claim& claim,
                                            const OpenOptions& options, bool created) {
  struct stat st {};
  struct statfs fs {};
  if (::fstat(fd.get(), &st) != 0 || ::fstatfs(fd.get(), &fs) != 0) {
    return Error::from_errno(errno, path);
  }
  TRY_ASSIGN(Info info, classify(path, st, fs));
  TRY(check_geometry(path, info.size_bytes, info.page_size));
  bool writable = options.access == Access::kReadWrite;
  TRY_ASSIGN(std::byte * base, map_aligned(fd.get(), info, writable, options.populate));
  // The read-only descriptor for clients reopens the very file (not the
  // path, which may have been replaced) through /proc/self/fd.
  int read_only_fd = fd.get();
  if (writable) {
    std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    read_only_fd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (read_only_fd < 0) {
      int err = errno;
      ::munmap(base, info.size_bytes);
      return Error::from_errno(err, path + ": cannot reopen the region read-only through " + self);
    }
  }
  return std::unique_ptr<Region>(std::make_unique<FileRegion>(
      fd.release(), read_only_fd, base, std::move(info), !writable, created, std::move(claim)));
}

Result<std::unique_ptr<Region>> open_existing(const std::string& path, const OpenOptions& options) {
  // Classify by path first: a directory, an ext4 file or /dev/null is refused
  // without ever being opened.
  struct stat before {};
  TRY(probe_path(path, &before));
  short lock_type = lock_type_for(options);
  bool locks = lock_type != F_UNLCK;
  InodeKey key = key_of(before);
  TRY(OpenRegions::instance().claim(key, locks, path));
  Claim claim(key, locks);  // declared before fd: released after the close

  bool writable = options.access == Access::kReadWrite;
  UniqueFd fd(::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return open_error(errno, path, writable);
  struct stat after {};
  if (::fstat(fd.get(), &after) != 0) return Error::from_errno(errno, path);
  if (key_of(after) != key) return Error(EAGAIN, path + ": was replaced while being opened; try again");
  if (locks) TRY(take_lock(fd.get(), lock_type, path));
  return finish_open(path, fd, claim, options, /*created=*/false);
}

Result<std::unique_ptr<Region>> create(const std::string& path, uint64_t size, const OpenOptions& options) {
  if (options.access != Access::kReadWrite) {
    return Error(EINVAL, path + ": does not exist, and a read-only open cannot create it");
  }
  std::string parent = parent_directory(path);
  struct statfs fs {};
  if (::statfs(parent.c_str(), &fs) != 0) {
    int err = errno;
    if (err == ENOENT)
      return Error(ENOENT, path + ": cannot create, directory " + parent + " does not exist");
    return Error::from_errno(err, path + ": cannot create");
  }
  auto magic = static_cast<uint64_t>(fs.f_type);
  uint64_t page_size;
  if (magic == kHugetlbfsMagic) {
    page_size = static_cast<uint64_t>(fs.f_bsize);
  } else if (magic == kTmpfsMagic) {
    page_size = kTmpfsPageSize;
  } else {
    return Error(ENOTSUP, path + ": cannot create a region in " + parent + ", which is on " +
                              filesystem_name(magic) + "; " + kSupported);
  }
  TRY(check_geometry(path, size, page_size));
  if (size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return Error(EFBIG, path + ": size " + bytes_text(size) + " is too large");
  }

  std::optional<Claim> claim;  // declared before fd: released after the close
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    int err = errno;
    // Somebody created it since our stat(): it is theirs, open it as such.
    if (err == EEXIST) return open_existing(path, options);
    return Error::from_errno(err, path + ": cannot create");
  }
  CreatedFileGuard guard(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(errno, path);
  // A brand-new inode: nothing in this process can hold it.
  TRY(OpenRegions::instance().claim(key_of(st), true, path));
  claim.emplace(key_of(st), true);
  TRY(take_lock(fd.get(), F_WRLCK, path));
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return Error::from_errno(errno, path + ": cannot size new region to " + bytes_text(size));
  }
  TRY_ASSIGN(auto region, finish_open(path, fd, *claim, options, /*created=*/true));
  guard.dismiss();
  return region;
}

}  // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kHugetlbfs: return "hugetlbfs";
    case Kind::kDevdax: return "devdax";
    case Kind::kTmpfs: return "tmpfs";
    case Kind::kMemory: return "memory";
  }
  return "unknown";
}

bool survives_kexec(Kind kind) { return kind == Kind::kDevdax; }

// Every backing is memory that a process kill or a kexec leaves intact, so
// the only thing to guarantee is store order as seen by a later reader.
void Region::persist(uint64_t /*offset*/, uint64_t /*length*/) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void Region::zero(uint64_t offset, uint64_t length, unsigned threads) {
  zero_memory(m_base + offset, length, threads);
}

Result<Info> probe(const std::string& path) { return probe_path(path, nullptr); }

Result<std::unique_ptr<Region>> open(const std::string& path, const OpenOptions& options) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err != ENOENT) return Error::from_errno(err, path);
    if (options.create_size_bytes) return create(path, *options.create_size_bytes, options);
    return Error(ENOENT,
                 path + ": does not exist (give a size to create a region file on hugetlbfs or tmpfs)");
  }
  return open_existing(path, options);
}

std::string lock_holder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) return "";
  // Held under the register so that opening and closing a descriptor here
  // cannot release a lock this process takes meanwhile.
  return OpenRegions::instance().with_inode(key_of(st), [&](bool locked_here) -> std::string {
    // F_GETLK never reports our own locks, and the close below would drop them.
    if (locked_here) return describe_pid(::getpid());
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (fd.get() < 0) return "";
    struct flock query {};
    query.l_type = F_WRLCK;
    query.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_GETLK, &query) != 0 || query.l_type == F_UNLCK) return "";
    return query.l_pid > 0 ? describe_pid(query.l_pid) : "a process in another pid namespace";
  });
}

MemoryRegion::MemoryRegion(uint64_t size_bytes) {
  if (size_bytes == 0 || size_bytes % 4096 != 0) {
    std::fprintf(stderr, "pkfs: MemoryRegion size %llu is not a positive multiple of 4096\n",
                 static_cast<unsigned long long>(size_bytes));
    std::abort();
  }
  void* mapped = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) {
    std::fprintf(stderr, "pkfs: MemoryRegion: mmap of %llu bytes failed: %s\n",
                 static_cast<unsigned long long>(size_bytes), errno_text(errno).c_str());
    std::abort();
  }
  m_base = static_cast<std::byte*>(mapped);
  m_info.path = "(memory)";
  m_info.kind = Kind::kMemory;
  m_info.size_bytes = size_bytes;
  m_info.page_size = 4096;
  m_info.survives_kexec = false;
  m_read_only = false;
  // Fresh anonymous memory is known zero, just like a file open() created.
  m_created = true;
}

MemoryRegion::~MemoryRegion() { ::munmap(m_base, m_info.size_bytes); }

}  // namespace pkfs::region
