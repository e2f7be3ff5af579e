// tests/client/reply_check.cpp: libpkfs's checks of a daemon's word
// (fs/client/reply.cpp) on hand-made and random input, for client_spoof.sh.
//
//   pkfs_test_reply_check [ITERATIONS]
//
// Map replies: a valid one passes; each bound (head size, extent count
// against the bytes, page size, mapped bytes, extent order, alignment,
// region end, overflow, coverage, region path) fails with EPROTO; then
// ITERATIONS (default 200000) random and mutated payloads must neither crash
// nor pass without meeting every bound. Identity: another inode or
// generation is EPERM. Region descriptors: a memfd (also named by its
// /proc/self/fd path), an unlinked tmpfs file, a file that is not the path
// named, a pipe and /dev/null are EPERM; a linked tmpfs file at the path
// named passes. Also mountinfo and generation parsing.
//
// Prints "ok: N checks" and exits 0, or prints each failure and exits 1.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fs/client/protocol.h"

using namespace pkfs::control;

namespace {

int g_checks = 0;
int g_failures = 0;

void expect(bool condition, const std::string& what) {
  ++g_checks;
  if (!condition) {
    ++g_failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

struct Built {
  MapReply head;
  std::vector<ExtentRecord> extents;
  std::string path = "/dev/hugepages/region";
};

// A valid reply: a 3-page file of 2 MiB pages in two extents.
Built valid() {
  Built b;
  b.head.hold_id = 5;
  b.head.ino = 12;
  b.head.generation = 3;
  b.head.page_size = 2 << 20;
  b.head.file_size = 3 * (2 << 20) - 100;
  b.head.mapped_bytes = 3 * (2 << 20);
  b.head.region_size = 64 << 20;
  b.extents.push_back({0, 8 << 20, 2 << 20});
  b.extents.push_back({2 << 20, 32 << 20, 4 << 20});
  b.head.extent_count = b.extents.size();
  return b;
}

std::vector<std::byte> bytes_of(const Built& b) {
  std::vector<std::byte> out;
  append(out, b.head);
  for (const ExtentRecord& e : b.extents) append(out, e);
  const auto* path = reinterpret_cast<const std::byte*>(b.path.data());
  out.insert(out.end(), path, path + b.path.size());
  return out;
}

int parse(const std::vector<std::byte>& payload, std::string* error = nullptr) {
  MapReply head;
  std::vector<ExtentRecord> extents;
  std::string path;
  std::string message;
  int rc = parse_map_reply(payload, head, extents, path, message);
  if (error != nullptr) *error = message;
  return rc;
}

template <typename Change>
void expect_bad(const std::string& what, Change change) {
  Built b = valid();
  change(b);
  std::string error;
  int rc = parse(bytes_of(b), &error);
  expect(rc == EPROTO, what + ": wanted EPROTO, got " + std::to_string(rc));
  expect(rc == 0 || !error.empty(), what + ": no message");
}

void check_map_replies() {
  {
    MapReply head;
    std::vector<ExtentRecord> extents;
    std::string path;
    std::string error;
    int rc = parse_map_reply(bytes_of(valid()), head, extents, path, error);
    expect(rc == 0, "a valid reply is refused: " + error);
    expect(extents.size() == 2 && path == "/dev/hugepages/region" && head.hold_id == 5,
           "a valid reply is not parsed as sent");
  }
  for (size_t size = 0; size < sizeof(MapReply); ++size) {
    std::vector<std::byte> payload = bytes_of(valid());
    payload.resize(size);
    expect(parse(payload) == EPROTO, "a " + std::to_string(size) + "-byte reply passes");
  }
  expect_bad("extent count 2^64-1", [](Built& b) { b.head.extent_count = UINT64_MAX; });
  expect_bad("extent count beyond the bytes", [](Built& b) { b.head.extent_count = 1000; });
  expect_bad("extent count one short of the bytes", [](Built& b) {
    b.head.extent_count = 3;
    b.path = "";
  });
  for (uint64_t page : {uint64_t{0}, uint64_t{1}, uint64_t{3}, uint64_t{2048}, uint64_t{3} << 20,
                        uint64_t{2} << 30, uint64_t{1} << 63}) {
    expect_bad("page size " + std::to_string(page), [page](Built& b) { b.head.page_size = page; });
  }
  expect_bad("no mapped bytes", [](Built& b) {
    b.head.mapped_bytes = 0;
    b.head.file_size = 0;
    b.extents.clear();
    b.head.extent_count = 0;
  });
  expect_bad("mapped bytes not a page multiple", [](Built& b) { b.head.mapped_bytes += 4096; });
  expect_bad("file size above mapped bytes", [](Built& b) { b.head.file_size = b.head.mapped_bytes + 1; });
  expect_bad("a whole page past the file size", [](Built& b) { b.head.file_size = 2 << 20; });
  expect_bad("mapped bytes above the region", [](Built& b) { b.head.region_size = 4 << 20; });
  expect_bad("a gap between extents", [](Built& b) { b.extents[1].file_offset += 2 << 20; });
  expect_bad("overlapping extents", [](Built& b) { b.extents[1].file_offset = 0; });
  expect_bad("extents out of order", [](Built& b) { std::swap(b.extents[0], b.extents[1]); });
  expect_bad("an empty extent", [](Built& b) { b.extents[0].length = 0; });
  expect_bad("a misaligned region offset", [](Built& b) { b.extents[0].region_offset += 4096; });
  expect_bad("a misaligned length", [](Built& b) { b.extents[0].length -= 4096; });
  expect_bad("an extent past the region", [](Built& b) { b.extents[1].region_offset = 62 << 20; });
  expect_bad("an extent whose end overflows",
             [](Built& b) { b.extents[1].region_offset = UINT64_MAX - (1 << 20) + 1 - (1 << 20); });
  expect_bad("a huge length that wraps the total",
             [](Built& b) { b.extents[1].length = UINT64_MAX - (2 << 20) + 1; });
  expect_bad("extents past the mapped bytes", [](Built& b) { b.extents[1].length = 8 << 20; });
  expect_bad("extents short of the mapped bytes", [](Built& b) { b.extents[1].length = 2 << 20; });
  expect_bad("no extents", [](Built& b) {
    b.extents.clear();
    b.head.extent_count = 0;
  });
  expect_bad("no region path", [](Built& b) { b.path = ""; });
  expect_bad("a relative region path", [](Built& b) { b.path = "region"; });
  expect_bad("a region path with a NUL", [](Built& b) { b.path = std::string("/dev/shm/a\0b", 12); });
  expect_bad("a region path of 4096 bytes", [](Built& b) { b.path = "/" + std::string(4095, 'a'); });
}

// Random payloads and mutations of a valid one: no crash, and whatever
// passes meets every bound.
void check_random(unsigned long iterations) {
  std::mt19937_64 random(20261203);
  std::vector<std::byte> base = bytes_of(valid());
  unsigned long accepted = 0;
  for (unsigned long i = 0; i < iterations; ++i) {
    std::vector<std::byte> payload;
    if (i % 2 == 0) {
      payload.resize(random() % 400);
      for (auto& byte : payload) byte = static_cast<std::byte>(random());
    } else {
      payload = base;
      int flips = 1 + static_cast<int>(random() % 4);
      for (int f = 0; f < flips; ++f) {
        size_t at = random() % payload.size();
        payload[at] = static_cast<std::byte>(random());
      }
      if (random() % 8 == 0) payload.resize(random() % (payload.size() + 40));
    }
    MapReply head;
    std::vector<ExtentRecord> extents;
    std::string path;
    std::string error;
    if (parse_map_reply(payload, head, extents, path, error) != 0) continue;
    ++accepted;
    uint64_t next = 0;
    bool sound = head.page_size >= kMinPageSize && head.page_size <= kMaxPageSize &&
                 extents.size() == head.extent_count && !path.empty() && path[0] == '/';
    for (const ExtentRecord& e : extents) {
      sound = sound && e.file_offset == next && e.length != 0 && e.length % head.page_size == 0 &&
              e.region_offset % head.page_size == 0 && e.region_offset <= head.region_size &&
              e.length <= head.region_size - e.region_offset;
      next += e.length;
    }
    sound = sound && next == head.mapped_bytes;
    if (!sound) {
      expect(false, "random payload " + std::to_string(i) + " passed without meeting every bound");
      return;
    }
  }
  expect(true, "random payloads");
  std::printf("random: %lu payloads, %lu accepted (all sound)\n", iterations, accepted);
}

void check_identity() {
  MapReply head;
  head.ino = 12;
  head.generation = 3;
  std::string error;
  expect(check_map_identity(head, 12, 3, error) == 0, "the right inode and generation are refused");
  expect(check_map_identity(head, 13, 3, error) == EPERM, "another inode passes");
  expect(error.find("inode") != std::string::npos, "the inode message does not say inode: " + error);
  expect(check_map_identity(head, 12, 4, error) == EPERM, "another generation passes");
  expect(error.find("generation") != std::string::npos, "the generation message does not say so: " + error);

  uint64_t value = 0;
  expect(parse_generation("0", value) && value == 0, "generation 0");
  expect(parse_generation("18446744073709551615", value) && value == UINT64_MAX, "generation 2^64-1");
  for (const char* bad :
       {"", "18446744073709551616", "-1", " 1", "1 ", "0x1", "1a", "99999999999999999999"}) {
    expect(!parse_generation(bad, value), std::string("generation '") + bad + "' passes");
  }
}

void check_mountinfo() {
  std::string text =
      "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
      "40 22 0:45 / /srv/vm\\0401 rw,nosuid,nodev shared:7 master:3 - fuse.pkfs /dev/hugepages/r "
      "rw,user_id=0,group_id=0,default_permissions,allow_other\n"
      "41 22 0:46 / /mnt/x rw - fuse.sshfs host: rw,user_id=1000,group_id=1000\n"
      "42 22 0:47 / /broken\n";
  MountEntry entry;
  expect(find_mount(text, 0, 45, entry) == 0, "the pkfs mount is not found");
  expect(
      entry.fstype == "fuse.pkfs" && entry.mount_point == "/srv/vm 1" && entry.source == "/dev/hugepages/r",
      "the pkfs mount is misread: " + entry.mount_point + " " + entry.fstype);
  std::string owner;
  expect(mount_option(entry.super_options, "user_id", owner) && owner == "0", "user_id of the pkfs mount");
  expect(find_mount(text, 0, 46, entry) == 0 && entry.fstype == "fuse.sshfs", "the sshfs mount");
  expect(find_mount(text, 0, 99, entry) == ENOENT, "a missing device is found");
  expect(find_mount(text, 0, 47, entry) == EPROTO, "a broken line parses");
  expect(find_mount("", 0, 45, entry) == ENOENT, "an empty mountinfo");
  expect(find_mount("1 2 0:45 / /m rw -", 0, 45, entry) == EPROTO, "a line cut after the separator");
  expect(find_mount("1 2 0:45 / /m rw a b c d e f", 0, 45, entry) == EPROTO, "a line without a separator");
  expect(!mount_option("rw,user_idx=5,xuser_id=6", "user_id", owner),
         "user_idx or xuser_id taken for user_id");
  expect(mount_option("user_id=7", "user_id", owner) && owner == "7", "a lone user_id");
}

int region_check(int fd, const std::string& path, std::string& error) {
  RegionFacts facts;
  if (int err = gather_region_facts(fd, path, facts); err != 0) return err;
  return check_region_facts(facts, path, error);
}

void check_regions() {
  std::string error;
  int memfd = ::memfd_create("pkfs-check", MFD_CLOEXEC);
  expect(memfd >= 0, "memfd_create");
  expect(region_check(memfd, "/dev/shm/none", error) == EPERM, "a memfd passes");
  std::string self = "/proc/self/fd/" + std::to_string(memfd);
  expect(region_check(memfd, self, error) == EPERM, "a memfd named by its /proc/self/fd path passes");
  expect(error.find("memfd") != std::string::npos, "the memfd message does not say memfd: " + error);

  char name[] = "/dev/shm/pkfs-reply-check.XXXXXX";
  int file = ::mkstemp(name);
  expect(file >= 0, "mkstemp in /dev/shm");
  expect(region_check(file, name, error) == 0,
         std::string("a linked tmpfs file at its path is refused: ") + error);
  expect(region_check(file, "/dev/shm", error) == EPERM, "a tmpfs file passes as another path");
  expect(region_check(file, "/dev/shm/pkfs-reply-check.none", error) == EPERM,
         "a tmpfs file passes as a path that does not exist");
  RegionFacts facts;
  expect(gather_region_facts(file, name, facts) == 0, "gather_region_facts");
  facts.path_errno = EACCES;
  expect(check_region_facts(facts, name, error) == 0, "a linked tmpfs file behind an unsearchable path");
  ::unlink(name);
  expect(region_check(file, name, error) == EPERM, "an unlinked tmpfs file passes");

  int pipes[2];
  expect(::pipe(pipes) == 0, "pipe");
  expect(region_check(pipes[0], "/dev/shm", error) == EPERM, "a pipe passes");
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  expect(region_check(null, "/dev/null", error) == EPERM, "/dev/null passes as device-dax");
  int proc = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  expect(region_check(proc, "/proc/self/status", error) == EPERM, "a procfs file passes");

  RegionFacts dax;
  dax.mode = S_IFCHR | 0600;
  dax.subsystem = "../../../../bus/dax";
  expect(check_region_facts(dax, "/dev/dax0.0", error) == 0, "a device-dax device is refused");
  dax.subsystem = "../../../../class/mem";
  expect(check_region_facts(dax, "/dev/dax0.0", error) == EPERM, "a mem-class device passes");
  for (int fd : {memfd, file, pipes[0], pipes[1], null, proc}) ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long iterations = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 200000;
  check_map_replies();
  check_random(iterations);
  check_identity();
  check_mountinfo();
  check_regions();
  if (g_failures != 0) {
    std::printf("%d of %d checks failed\n", g_failures, g_checks);
    return 1;
  }
  std::printf("ok: %d checks\n", g_checks);
  return 0;
}
