// tests/unit/region_test.cpp: behaviour of fs/region (kinds, creation,
// locking, mapping and the errors for everything refused).
//
// Every case works in its own temporary directory and removes it, and the
// hugetlbfs case restores nr_hugepages and unmounts whatever happens. Lock
// conflicts are checked from forked children: POSIX locks never conflict
// within one process.
#include "fs/region/region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "fs/format/format.h"

namespace {

using namespace pkfs;
using namespace pkfs::region;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kTwoMiB = 2 * kMiB;
constexpr uint64_t kHugetlbfsMagic = 0x958458f6;
constexpr uint64_t kTmpfsMagic = 0x01021994;

bool on_filesystem(const std::string& path, uint64_t magic) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<uint64_t>(fs.f_type) == magic;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// A private directory, removed with everything in it at scope exit.
class TempDir {
 public:
  explicit TempDir(const std::string& under) {
    std::string pattern = under + "/pkfs-region-test-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) m_path = pattern;
  }
  ~TempDir() {
    if (m_path.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  bool ok() const { return !m_path.empty(); }
  const std::string& path() const { return m_path; }
  std::string file(const std::string& name) const { return m_path + "/" + name; }

 private:
  std::string m_path;
};

// A temp dir on tmpfs (/dev/shm), where regions can be created.
struct ShmDir : TempDir {
  ShmDir() : TempDir("/dev/shm") {}
  bool usable() const { return ok() && on_filesystem(path(), kTmpfsMagic); }
};

// Makes a plain file of `size` bytes (sparse), outside region::open().
bool make_file(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0;
  ::close(fd);
  return ok;
}

OpenOptions create_options(uint64_t size) {
  OpenOptions options;
  options.create_size_bytes = size;
  return options;
}

OpenOptions read_only_options(Locking locking) {
  OpenOptions options;
  options.access = Access::kReadOnly;
  options.locking = locking;
  return options;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string own_comm() {
  std::ifstream in("/proc/self/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// Runs `fn` in a forked child and returns its exit code (-1 if it died).
// The child leaves with _exit so no Catch2 or static state runs twice.
template <typename Fn>
int run_in_child(Fn fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return -2;
  if (pid == 0) {
    int code = 97;
    try {
      code = fn();
    } catch (...) {
      code = 98;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -2;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Reports a child's failing Result on stderr before its exit code says so.
int child_fail(int code, const std::string& why) {
  std::fprintf(stderr, "child: %s\n", why.c_str());
  return code;
}

void fill_pattern(std::byte* base, uint64_t size) {
  for (uint64_t offset = 0; offset < size; offset += 4096) {
    base[offset] = static_cast<std::byte>((offset / 4096) * 7 + 1);
  }
}

bool has_pattern(const std::byte* base, uint64_t size) {
  for (uint64_t offset = 0; offset < size; offset += 4096) {
    if (base[offset] != static_cast<std::byte>((offset / 4096) * 7 + 1)) return false;
  }
  return true;
}

bool aligned_to(const void* address, uint64_t alignment) {
  return reinterpret_cast<uintptr_t>(address) % alignment == 0;
}

}  // namespace

TEST_CASE("kind_name names every kind", "[region]") {
  CHECK(std::string(kind_name(Kind::kHugetlbfs)) == "hugetlbfs");
  CHECK(std::string(kind_name(Kind::kDevdax)) == "devdax");
  CHECK(std::string(kind_name(Kind::kTmpfs)) == "tmpfs");
  CHECK(std::string(kind_name(Kind::kMemory)) == "memory");
}

TEST_CASE("only device-dax survives a kexec", "[region]") {
  CHECK(survives_kexec(Kind::kDevdax));
  CHECK_FALSE(survives_kexec(Kind::kHugetlbfs));
  CHECK_FALSE(survives_kexec(Kind::kTmpfs));
  CHECK_FALSE(survives_kexec(Kind::kMemory));
}

TEST_CASE("sync flushes a tmpfs region and is a no-op on a read-only one", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  {
    auto opened = open(path, create_options(16 * kMiB));
    REQUIRE(opened.ok());
    fill_pattern(opened.value()->base(), 16 * kMiB);
    auto synced = opened.value()->sync();
    if (!synced) FAIL(synced.error().message());
  }
  OpenOptions read_only;
  read_only.access = Access::kReadOnly;
  auto opened = open(path, read_only);
  REQUIRE(opened.ok());
  CHECK(opened.value()->sync().ok());
  CHECK(has_pattern(opened.value()->base(), 16 * kMiB));
}

TEST_CASE("a memory region is zero-filled, writable and has no descriptor", "[region]") {
  MemoryRegion region(4 * kMiB);
  CHECK(region.size() == 4 * kMiB);
  CHECK(region.info().kind == Kind::kMemory);
  CHECK(region.info().path == "(memory)");
  CHECK(region.fd() == -1);
  CHECK_FALSE(region.read_only());
  CHECK(region.created());
  bool all_zero = true;
  for (uint64_t i = 0; i < region.size(); i += 512) all_zero = all_zero && region.base()[i] == std::byte{0};
  CHECK(all_zero);
  region.base()[region.size() - 1] = std::byte{0x5a};
  region.persist(region.size() - 1, 1);
  CHECK(region.base()[region.size() - 1] == std::byte{0x5a});
}

TEST_CASE("a tmpfs region is created, mapped 2 MiB-aligned, and keeps its contents across reopen",
          "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  const uint64_t size = 16 * kMiB;
  {
    auto opened = open(path, create_options(size));
    REQUIRE(opened.ok());
    Region& region = *opened.value();
    CHECK(region.created());
    CHECK_FALSE(region.read_only());
    CHECK(region.size() == size);
    CHECK(region.info().kind == Kind::kTmpfs);
    CHECK(region.info().page_size == 4096);
    CHECK_FALSE(region.info().survives_kexec);
    CHECK(region.info().path == path);
    CHECK(region.fd() >= 0);
    CHECK(aligned_to(region.base(), kTwoMiB));
    fill_pattern(region.base(), size);
    region.persist(0, size);

    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(static_cast<uint64_t>(st.st_size) == size);
    CHECK((st.st_mode & 0777) == 0600);
  }
  auto reopened = open(path, OpenOptions{});
  REQUIRE(reopened.ok());
  CHECK_FALSE(reopened.value()->created());
  CHECK(reopened.value()->size() == size);
  CHECK(has_pattern(reopened.value()->base(), size));
}

TEST_CASE("a populated tmpfs region has every page allocated at open", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  REQUIRE(make_file(path, 16 * kMiB));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(st.st_blocks == 0);  // sparse until populated
  OpenOptions options;
  options.populate = true;
  auto opened = open(path, options);
  REQUIRE(opened.ok());
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 == 16 * kMiB);
}

TEST_CASE("probe reports a tmpfs file's kind, size and page size without opening it", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  REQUIRE(make_file(path, 32 * kMiB));
  auto info = probe(path);
  REQUIRE(info.ok());
  CHECK(info->kind == Kind::kTmpfs);
  CHECK(info->size_bytes == 32 * kMiB);
  CHECK(info->page_size == 4096);
  CHECK(info->path == path);
  CHECK_FALSE(info->survives_kexec);
}

TEST_CASE("opening an existing region with a create size never resizes it", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  REQUIRE(make_file(path, 20 * kMiB));
  auto opened = open(path, create_options(16 * kMiB));
  REQUIRE(opened.ok());
  CHECK_FALSE(opened.value()->created());
  CHECK(opened.value()->size() == 20 * kMiB);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == 20 * kMiB);
}

TEST_CASE("a second read-write open from another process fails with EBUSY naming the holder", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  auto held = open(path, create_options(16 * kMiB));
  REQUIRE(held.ok());
  const std::string holder = "pid " + std::to_string(::getpid()) + " (" + own_comm() + ")";

  int code = run_in_child([&] {
    auto second = open(path, OpenOptions{});
    if (second.ok()) return child_fail(1, "second read-write open succeeded");
    if (second.error().code() != EBUSY) return child_fail(2, second.error().message());
    if (!contains(second.error().message(), holder)) return child_fail(3, second.error().message());
    if (!contains(second.error().message(), path)) return child_fail(4, second.error().message());
    // A read-only open that asks for the lock wants no writer: refused too.
    auto reader = open(path, read_only_options(Locking::kExclusive));
    if (reader.ok() || reader.error().code() != EBUSY)
      return child_fail(5, "locked read-only open not refused");
    if (lock_holder(path) != holder) return child_fail(6, "lock_holder gave '" + lock_holder(path) + "'");
    return 0;
  });
  CHECK(code == 0);
  // Nothing the child did released our lock.
  CHECK(lock_holder(path) == holder);
}

TEST_CASE("a read-only open without locking works while another process holds the region", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  const uint64_t size = 16 * kMiB;
  auto held = open(path, create_options(size));
  REQUIRE(held.ok());
  fill_pattern(held.value()->base(), size);

  int code = run_in_child([&] {
    {
      auto reader = open(path, read_only_options(Locking::kNone));
      if (!reader.ok()) return child_fail(1, reader.error().message());
      if (!reader.value()->read_only()) return child_fail(2, "not read-only");
      if (!has_pattern(reader.value()->base(), size)) return child_fail(3, "contents differ");
    }
    // Closing the read-only view did not release the holder's lock.
    auto writer = open(path, OpenOptions{});
    if (writer.ok() || writer.error().code() != EBUSY)
      return child_fail(4, "lock lost after read-only close");
    return 0;
  });
  CHECK(code == 0);
}

TEST_CASE("a second open of a held region in the same process is refused, not silently sharing the lock",
          "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  {
    auto held = open(path, create_options(16 * kMiB));
    REQUIRE(held.ok());

    auto second = open(path, OpenOptions{});
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().code() == EBUSY);
    CHECK(contains(second.error().message(), "this process"));

    // Even a lock-free view would release the lock when it closed its fd.
    auto view = open(path, read_only_options(Locking::kNone));
    REQUIRE_FALSE(view.ok());
    CHECK(view.error().code() == EBUSY);
  }
  // Once the holder is gone the region opens again.
  CHECK(lock_holder(path).empty());
  auto again = open(path, OpenOptions{});
  CHECK(again.ok());
}

TEST_CASE("lock_holder names this process while it holds a region and is empty otherwise", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  CHECK(lock_holder(path).empty());  // missing
  REQUIRE(make_file(path, 16 * kMiB));
  CHECK(lock_holder(path).empty());  // unlocked
  {
    auto held = open(path, OpenOptions{});
    REQUIRE(held.ok());
    CHECK(lock_holder(path) == "pid " + std::to_string(::getpid()) + " (" + own_comm() + ")");
    // lock_holder opened nothing that could have dropped the lock.
    int code = run_in_child([&] { return open(path, OpenOptions{}).ok() ? 1 : 0; });
    CHECK(code == 0);
  }
  CHECK(lock_holder(path).empty());
}

TEST_CASE("creating a region whose size is not a multiple of the page size fails and creates nothing",
          "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  const uint64_t size = 16 * kMiB + 100;
  auto opened = open(path, create_options(size));
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EINVAL);
  CHECK(contains(opened.error().message(), std::to_string(size)));
  CHECK(contains(opened.error().message(), "4096"));
  CHECK(contains(opened.error().message(), path));
  CHECK_FALSE(exists(path));
}

TEST_CASE("creating a region smaller than 16 MiB fails and creates nothing", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  for (uint64_t size : {uint64_t{0}, 8 * kMiB, format::kMinRegionBytes - 4096}) {
    auto opened = open(path, create_options(size));
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code() == EINVAL);
    CHECK(contains(opened.error().message(), "too small to format: " + std::to_string(size) + " bytes"));
    CHECK(contains(opened.error().message(), "16 MiB"));
    CHECK_FALSE(exists(path));
  }
}

TEST_CASE("an existing file smaller than 16 MiB is refused and left untouched", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  REQUIRE(make_file(path, 4 * kMiB));
  auto opened = open(path, create_options(16 * kMiB));
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EINVAL);
  CHECK(contains(opened.error().message(), "too small"));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == 4 * kMiB);
  CHECK(lock_holder(path).empty());
}

TEST_CASE("a missing path without a create size fails with ENOENT and creates nothing", "[region]") {
  ShmDir dir;
  REQUIRE(dir.ok());
  std::string path = dir.file("missing");
  auto opened = open(path, OpenOptions{});
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == ENOENT);
  CHECK(contains(opened.error().message(), path));
  auto info = probe(path);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code() == ENOENT);
  CHECK(contains(info.error().message(), "hugetlbfs"));
  // Creating in a directory that does not exist names the directory.
  auto nested = open(dir.file("no/such/region"), create_options(16 * kMiB));
  REQUIRE_FALSE(nested.ok());
  CHECK(nested.error().code() == ENOENT);
  CHECK_FALSE(exists(path));
}

TEST_CASE("a read-only open does not create a missing region", "[region]") {
  ShmDir dir;
  REQUIRE(dir.ok());
  std::string path = dir.file("region");
  OpenOptions options = read_only_options(Locking::kNone);
  options.create_size_bytes = 16 * kMiB;
  auto opened = open(path, options);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EINVAL);
  CHECK_FALSE(opened.error().message().empty());
  CHECK_FALSE(exists(path));
}

TEST_CASE("a file on a filesystem other than tmpfs or hugetlbfs is refused with ENOTSUP", "[region]") {
  const std::string base = "/tmp";
  if (on_filesystem(base, kTmpfsMagic) || on_filesystem(base, kHugetlbfsMagic)) {
    WARN("skipped: /tmp is tmpfs or hugetlbfs here, so it cannot stand in for an unsupported filesystem");
    return;
  }
  TempDir dir(base);
  REQUIRE(dir.ok());

  std::string existing = dir.file("existing");
  REQUIRE(make_file(existing, 16 * kMiB));
  auto opened = open(existing, OpenOptions{});
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == ENOTSUP);
  CHECK(contains(opened.error().message(), existing));
  CHECK(contains(opened.error().message(), "hugetlbfs"));
  CHECK(contains(opened.error().message(), "tmpfs"));
  auto info = probe(existing);
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code() == ENOTSUP);

  std::string fresh = dir.file("fresh");
  auto created = open(fresh, create_options(16 * kMiB));
  REQUIRE_FALSE(created.ok());
  CHECK(created.error().code() == ENOTSUP);
  CHECK(contains(created.error().message(), fresh));
  CHECK_FALSE(exists(fresh));
}

TEST_CASE("a directory is refused with EINVAL", "[region]") {
  ShmDir dir;
  REQUIRE(dir.ok());
  auto opened = open(dir.path(), create_options(16 * kMiB));
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == EINVAL);
  CHECK(contains(opened.error().message(), "directory"));
  auto info = probe(dir.path());
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code() == EINVAL);
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("a character device that is not device-dax is refused with ENOTSUP", "[region]") {
  auto info = probe("/dev/null");
  REQUIRE_FALSE(info.ok());
  CHECK(info.error().code() == ENOTSUP);
  CHECK(contains(info.error().message(), "device-dax"));
  auto opened = open("/dev/null", OpenOptions{});
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == ENOTSUP);
}

namespace {

// Mounts a filesystem on a fresh temp dir; unmounts (and removes it) at scope
// exit whatever happened in between.
class ScopedMount {
 public:
  ScopedMount(const char* type, const std::string& data) : m_dir("/tmp") {
    if (m_dir.ok()) m_mounted = ::mount("none", m_dir.path().c_str(), type, 0, data.c_str()) == 0;
    if (!m_mounted) m_error = std::strerror(errno);  // NOLINT(concurrency-mt-unsafe): no other thread
  }
  ~ScopedMount() {
    if (m_mounted) ::umount2(m_dir.path().c_str(), MNT_DETACH);
  }
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  bool mounted() const { return m_mounted; }
  const std::string& error() const { return m_error; }
  const TempDir& dir() const { return m_dir; }

 private:
  TempDir m_dir;  // removed after the unmount
  bool m_mounted = false;
  std::string m_error;
};

std::optional<uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

bool write_number(const std::string& path, uint64_t value) {
  std::ofstream out(path);
  out << value << '\n';
  out.flush();
  return static_cast<bool>(out);
}

const std::string kPool2M = "/sys/kernel/mm/hugepages/hugepages-2048kB/";

// Saves the 2 MiB hugepage pool size and puts it back at scope exit.
class HugepagePoolGuard {
 public:
  HugepagePoolGuard() : m_saved(read_number(kPool2M + "nr_hugepages")) {}
  ~HugepagePoolGuard() {
    if (m_saved) write_number(kPool2M + "nr_hugepages", *m_saved);
  }
  HugepagePoolGuard(const HugepagePoolGuard&) = delete;
  HugepagePoolGuard& operator=(const HugepagePoolGuard&) = delete;
  bool ok() const { return m_saved.has_value(); }
  uint64_t saved() const { return *m_saved; }

 private:
  std::optional<uint64_t> m_saved;
};

uint64_t pool_value(const char* name) { return read_number(kPool2M + name).value_or(0); }
uint64_t unreserved_free_pages() {
  uint64_t free_pages = pool_value("free_hugepages");
  uint64_t reserved = pool_value("resv_hugepages");
  return free_pages > reserved ? free_pages - reserved : 0;
}

}  // namespace

TEST_CASE("a read-write open on a read-only mount reports a read-only file", "[region]") {
  if (::geteuid() != 0) {
    WARN("skipped: mounting a read-only tmpfs needs root");
    return;
  }
  ScopedMount mount("tmpfs", "size=32m,mode=0700");
  if (!mount.mounted()) {
    WARN("skipped: cannot mount tmpfs: " << mount.error());
    return;
  }
  std::string path = mount.dir().file("region");
  {
    auto created = open(path, create_options(16 * kMiB));
    REQUIRE(created.ok());
  }
  REQUIRE(::mount(nullptr, mount.dir().path().c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
  auto writer = open(path, OpenOptions{});
  REQUIRE_FALSE(writer.ok());
  CHECK(writer.error().code() == EROFS);
  CHECK(contains(writer.error().message(), "read-only file"));
  CHECK(contains(writer.error().message(), path));
  auto reader = open(path, read_only_options(Locking::kExclusive));
  REQUIRE(reader.ok());
  CHECK(reader.value()->read_only());
}

TEST_CASE("a hugetlbfs region maps 2 MiB pages and a hugepage shortage says how to fix it", "[region]") {
  if (::geteuid() != 0) {
    WARN("skipped: mounting hugetlbfs and sizing the hugepage pool need root");
    return;
  }
  // Declaration order is teardown order in reverse: regions go first, then
  // the mount (freeing its pages), then the pool size is restored.
  HugepagePoolGuard pool;
  if (!pool.ok()) {
    WARN("skipped: this kernel has no 2 MiB hugepage pool");
    return;
  }
  ScopedMount mount("hugetlbfs", "pagesize=2M,mode=0700");
  if (!mount.mounted()) {
    WARN("skipped: cannot mount hugetlbfs: " << mount.error());
    return;
  }
  write_number(kPool2M + "nr_hugepages", pool.saved() + 16);
  if (unreserved_free_pages() < 8) {
    WARN("skipped: could not get 8 free 2 MiB hugepages (have " << unreserved_free_pages() << ")");
    return;
  }

  std::string path = mount.dir().file("region");
  const uint64_t size = 16 * kMiB;
  {
    auto opened = open(path, create_options(size));
    REQUIRE(opened.ok());
    Region& region = *opened.value();
    CHECK(region.created());
    CHECK(region.info().kind == Kind::kHugetlbfs);
    CHECK(region.info().page_size == kTwoMiB);
    CHECK_FALSE(region.info().survives_kexec);
    CHECK(aligned_to(region.base(), kTwoMiB));
    // Touch two of the eight pages; the other six stay reserved, not allocated.
    region.base()[0] = std::byte{0x11};
    region.base()[size - 1] = std::byte{0x22};
    region.persist(0, size);

    auto info = probe(path);
    REQUIRE(info.ok());
    CHECK(info->kind == Kind::kHugetlbfs);
    CHECK(info->page_size == kTwoMiB);
    CHECK(info->size_bytes == size);

    // Ask for more pages than are free: ENOMEM, the exact fix, no file left.
    uint64_t available = unreserved_free_pages();
    uint64_t wanted = std::max<uint64_t>(available + 3, 8);
    uint64_t target = pool_value("nr_hugepages") + (wanted - available);
    std::string big = mount.dir().file("too-big");
    auto refused = open(big, create_options(wanted * kTwoMiB));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code() == ENOMEM);
    CHECK(contains(refused.error().message(), "nr_hugepages"));
    CHECK(contains(refused.error().message(), "echo " + std::to_string(target) + " > "));
    CHECK(contains(refused.error().message(), big));
    CHECK_FALSE(exists(big));
  }

  // The kernel keeps a shared mapping's reservation with the file after
  // munmap and close. Leave no unreserved page in the pool: reopening must
  // still work, since the file's own reservation covers what it lacks.
  uint64_t spare = unreserved_free_pages();
  write_number(kPool2M + "nr_hugepages", pool_value("nr_hugepages") - spare);
  CHECK(unreserved_free_pages() == 0);
  auto reopened = open(path, OpenOptions{});
  REQUIRE(reopened.ok());
  CHECK_FALSE(reopened.value()->created());
  CHECK(reopened.value()->base()[0] == std::byte{0x11});
  CHECK(reopened.value()->base()[size - 1] == std::byte{0x22});
}

TEST_CASE("a region's shared descriptors match the access asked and never cost the lock", "[region]") {
  ShmDir dir;
  if (!dir.usable()) {
    WARN("skipped: /dev/shm is not a writable tmpfs");
    return;
  }
  std::string path = dir.file("region");
  auto held = open(path, create_options(16 * kMiB));
  REQUIRE(held.ok());
  Region& region = *held.value();
  const std::string holder = "pid " + std::to_string(::getpid()) + " (" + own_comm() + ")";

  int writer = region.shared_fd(Access::kReadWrite);
  int reader = region.shared_fd(Access::kReadOnly);
  REQUIRE(writer == region.fd());
  REQUIRE(reader >= 0);
  CHECK(reader != writer);
  CHECK((::fcntl(reader, F_GETFL) & O_ACCMODE) == O_RDONLY);
  CHECK((::fcntl(writer, F_GETFL) & O_ACCMODE) == O_RDWR);
  struct stat a {
  }, b{};
  REQUIRE(::fstat(reader, &a) == 0);
  REQUIRE(::fstat(writer, &b) == 0);
  CHECK(a.st_ino == b.st_ino);
  CHECK(a.st_dev == b.st_dev);
  // The read-only descriptor cannot be mapped writable.
  void* denied = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, reader, 0);
  CHECK(denied == MAP_FAILED);
  // It maps the region's bytes read-only.
  region.base()[4096] = std::byte{0x5a};
  void* view = ::mmap(nullptr, 8192, PROT_READ, MAP_SHARED, reader, 0);
  REQUIRE(view != MAP_FAILED);
  CHECK(static_cast<const unsigned char*>(view)[4096] == 0x5a);
  ::munmap(view, 8192);

  // Handing the descriptors out (as the daemon does, without closing them)
  // keeps the lock: another process is still refused.
  int code = run_in_child([&] {
    auto second = open(path, OpenOptions{});
    if (second.ok()) return child_fail(1, "second read-write open succeeded");
    if (second.error().code() != EBUSY) return child_fail(2, second.error().message());
    return 0;
  });
  CHECK(code == 0);
  CHECK(lock_holder(path) == holder);

  // A read-only region hands out its one descriptor for reading, none for writing.
  held = Error(0, "");
  auto view_only = open(path, read_only_options(Locking::kExclusive));
  REQUIRE(view_only.ok());
  CHECK(view_only.value()->shared_fd(Access::kReadWrite) == -1);
  CHECK(view_only.value()->shared_fd(Access::kReadOnly) == view_only.value()->fd());
}
