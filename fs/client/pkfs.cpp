// fs/client/pkfs.cpp: libpkfs (see pkfs.h for the API, protocol.h for the
// exchange with the daemon). C++ inside, C ABI outside; only pkfs_* symbols
// are exported (libpkfs.map). Links neither FUSE nor core.
#include "fs/client/pkfs.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fs/base/fd.h"
#include "fs/base/result.h"
#include "fs/client/protocol.h"

namespace {

using namespace pkfs::control;
using pkfs::errno_text;
using pkfs::UniqueFd;

thread_local std::string t_last_error;

// Records the failure and returns -1 with errno = code.
int fail(int code, const std::string& message) {
  t_last_error = message + ": " + errno_text(code);
  errno = code;
  return -1;
}

// Reads the control socket path of the file open at `fd`.
int control_path_of(int fd, const std::string& path, std::string& out) {
  char buffer[256];
  ssize_t got = ::fgetxattr(fd, kControlXattr, buffer, sizeof buffer - 1);
  if (got < 0) {
    int err = errno;
    if (err == ENODATA || err == ENOTSUP || err == EOPNOTSUPP) {
      return fail(ENOTSUP, path + ": not a file on a pkfs mount (no " + std::string(kControlXattr) + ")");
    }
    return fail(err, path + ": reading " + std::string(kControlXattr));
  }
  out.assign(buffer, static_cast<size_t>(got));
  return 0;
}

// Who may serve the control socket of a file: root, or the owner of the
// mount the file is on (a daemon started by that user through fusermount3).
struct Trust {
  uint32_t mount_owner = 0;
};

// Reads all of /proc/self/mountinfo (procfs reports no size).
int read_mountinfo(std::string& text) {
  UniqueFd file(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) return errno;
  text.clear();
  char buffer[65536];
  for (;;) {
    ssize_t got = ::read(file.get(), buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (got == 0) return 0;
    text.append(buffer, static_cast<size_t>(got));
  }
}

// Checks that the file open at `fd` (st) is on a pkfs mount: FUSE by
// fstatfs, and of type fuse.pkfs in this process's mountinfo, whose
// user_id= (the mount's owner) is returned in `trust`. ENOTSUP when it is
// not a pkfs mount; nothing is sent anywhere before this passed.
int check_mount(int fd, const struct stat& st, const std::string& path, Trust& trust) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return fail(errno, path + ": fstatfs");
  if (static_cast<uint64_t>(fs.f_type) != kFuseSuperMagic) {
    char type[24];
    std::snprintf(type, sizeof type, "%#llx", static_cast<unsigned long long>(fs.f_type));
    return fail(ENOTSUP, path + ": not a file on a pkfs mount (filesystem type " + type + ", not FUSE)");
  }
  std::string mountinfo;
  if (int err = read_mountinfo(mountinfo); err != 0)
    return fail(err, path + ": reading /proc/self/mountinfo");
  MountEntry mount;
  std::string device = std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  int found = find_mount(mountinfo, major(st.st_dev), minor(st.st_dev), mount);
  if (found == ENOENT) {
    return fail(ENOTSUP, path + ": not a file on a pkfs mount (no mount of device " + device +
                             " in /proc/self/mountinfo)");
  }
  if (found != 0) return fail(EPROTO, path + ": cannot parse the mountinfo line of device " + device);
  if (mount.fstype != kMountType) {
    return fail(ENOTSUP, path + ": not a file on a pkfs mount (" + mount.mount_point + " is of type " +
                             mount.fstype + ", not " + kMountType + ")");
  }
  std::string owner;
  uint64_t uid = 0;
  // user_id= is decimal, as a generation is: the same strict parser.
  if (!mount_option(mount.super_options, "user_id", owner) || !parse_generation(owner, uid) ||
      uid > UINT32_MAX) {
    return fail(EPERM, path + ": the pkfs mount " + mount.mount_point + " names no owner (user_id=) in '" +
                           mount.super_options + "'");
  }
  trust.mount_owner = static_cast<uint32_t>(uid);
  return 0;
}

// Reads the file's generation, as its daemon answers kGenerationXattr.
int generation_of(int fd, const std::string& path, uint64_t& generation) {
  char buffer[32];
  ssize_t got = ::fgetxattr(fd, kGenerationXattr, buffer, sizeof buffer - 1);
  if (got < 0) {
    std::string why = errno_text(errno);
    return fail(EPERM, path + ": the daemon of this pkfs mount does not answer " +
                           std::string(kGenerationXattr) + " (" + why +
                           "), so its replies cannot be checked");
  }
  if (!parse_generation(std::string_view(buffer, static_cast<size_t>(got)), generation)) {
    return fail(EPERM, path + ": " + kGenerationXattr + " is not a decimal number");
  }
  return 0;
}

// Connects to the control socket and checks who listens there: root or the
// mount's owner. Returns the socket, or -1 (errno set, nothing sent).
int connect_trusted(const std::string& socket_path, const Trust& trust, const std::string& what) {
  int socket = connect_socket(socket_path);
  if (socket < 0) {
    fail(-socket, what + ": cannot reach the pkfs daemon at " + socket_path);
    return -1;
  }
  UniqueFd connection(socket);
  ucred peer{};
  socklen_t size = sizeof peer;
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) {
    fail(errno, what + ": cannot tell who serves " + socket_path + " (SO_PEERCRED)");
    return -1;
  }
  if (peer.uid != 0 && peer.uid != trust.mount_owner) {
    fail(EPERM, what + ": " + socket_path + " is served by uid " + std::to_string(peer.uid) +
                    ", neither root nor the mount's owner (uid " + std::to_string(trust.mount_owner) +
                    "): not the pkfs daemon of this file; nothing was sent to it");
    return -1;
  }
  return connection.release();
}

// One request/reply exchange with a trusted daemon. On success `reply`
// holds the header, `payload` the rest, `fd` the descriptor (or -1).
// Returns 0 or -1 (errno set).
int exchange(const std::string& socket_path, const Trust& trust, const Request& request, int send_fd,
             Reply& reply, std::vector<std::byte>& payload, UniqueFd& received_fd, const std::string& what) {
  int socket = connect_trusted(socket_path, trust, what);
  if (socket < 0) return -1;
  UniqueFd connection(socket);
  // Never wait forever for a daemon that does not answer (a map may fill
  // and move a large file first: minutes at most).
  timeval timeout{300, 0};
  ::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (int err = send_message(socket, &request, sizeof request, send_fd); err != 0) {
    return fail(err, what + ": sending to the pkfs daemon");
  }
  Message message;
  if (int err = receive_reply(socket, message); err != 0) {
    return fail(err, what + ": no answer from the pkfs daemon");
  }
  received_fd.reset(message.fd);
  if (message.bytes.size() < sizeof reply) return fail(EPROTO, what + ": short reply from the pkfs daemon");
  std::memcpy(&reply, message.bytes.data(), sizeof reply);
  if (reply.magic != kMagic || reply.version != kVersion || reply.op != request.op ||
      reply.payload_bytes != message.bytes.size() - sizeof reply) {
    return fail(EPROTO, what + ": the pkfs daemon speaks another protocol version");
  }
  payload.assign(message.bytes.begin() + sizeof reply, message.bytes.end());
  if (reply.status != 0) {
    std::string text(reinterpret_cast<const char*>(payload.data()), payload.size());
    return fail(static_cast<int>(reply.status), what + ": " + (text.empty() ? "refused" : text));
  }
  return 0;
}

// Maps `extents` of `region_fd` onto consecutive addresses. Returns the base
// or MAP_FAILED (errno set, message recorded).
void* map_extents(int region_fd, const MapReply& info, const std::vector<ExtentRecord>& extents, int prot,
                  const std::string& path) {
  size_t length = info.mapped_bytes;
  size_t page = info.page_size;
  // Reserve length + page of address space, then keep an aligned window.
  void* reserved =
      ::mmap(nullptr, length + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) {
    fail(errno, path + ": reserving " + std::to_string(length) + " bytes of address space");
    return MAP_FAILED;
  }
  auto start = reinterpret_cast<uintptr_t>(reserved);
  uintptr_t aligned = (start + page - 1) & ~(uintptr_t{page} - 1);
  if (aligned > start) ::munmap(reserved, aligned - start);
  uintptr_t end = start + length + page;
  if (end > aligned + length) ::munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
  for (const ExtentRecord& extent : extents) {
    void* want = reinterpret_cast<void*>(aligned + extent.file_offset);
    void* got = ::mmap(want, extent.length, prot, MAP_SHARED | MAP_FIXED, region_fd,
                       static_cast<off_t>(extent.region_offset));
    if (got == MAP_FAILED) {
      int err = errno;
      ::munmap(reinterpret_cast<void*>(aligned), length);
      fail(err, path + ": mapping " + std::to_string(extent.length) + " bytes at region offset " +
                    std::to_string(extent.region_offset));
      return MAP_FAILED;
    }
  }
  return reinterpret_cast<void*>(aligned);
}

int release(const std::string& socket_path, const Trust& trust, uint64_t hold_id, uint64_t ino,
            const std::string& what) {
  Request request;
  request.op = static_cast<uint32_t>(Op::kRelease);
  request.flags = kReleaseOwnHold;
  request.arg0 = hold_id;
  request.arg1 = ino;
  Reply reply;
  std::vector<std::byte> payload;
  UniqueFd ignored;
  return exchange(socket_path, trust, request, -1, reply, payload, ignored, what);
}

// pkfs_mapping::private_reserved[0]: the mount's owner, with this mark in
// the high half so that a zeroed field (a mapping of an older libpkfs) is
// told apart from uid 0.
constexpr uint64_t kTrustMark = uint64_t{1} << 32;

}  // namespace

extern "C" {

int pkfs_map(const char* path, int prot, struct pkfs_mapping* mapping) {
  try {
    t_last_error.clear();
    if (path == nullptr || mapping == nullptr) return fail(EINVAL, "pkfs_map: null path or mapping");
    std::string name = path;
    if ((prot & ~(PROT_READ | PROT_WRITE)) != 0 || (prot & PROT_READ) == 0) {
      return fail(EINVAL, name + ": prot must be PROT_READ or PROT_READ|PROT_WRITE");
    }
    bool writable = (prot & PROT_WRITE) != 0;
    UniqueFd file(::open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY));
    if (file.get() < 0) return fail(errno, name);
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) return fail(errno, name);
    if (!S_ISREG(st.st_mode)) return fail(EINVAL, name + ": not a regular file");
    // Before the descriptor goes anywhere: the file is on a pkfs mount, and
    // what its daemon says about it (socket, generation) comes from that
    // mount's server, not from an xattr anyone may set on any file.
    Trust trust;
    if (check_mount(file.get(), st, name, trust) != 0) return -1;
    std::string socket_path;
    // NOLINTNEXTLINE(readability-suspicious-call-argument): `name` is the path; the socket's comes out
    if (control_path_of(file.get(), name, socket_path) != 0) return -1;
    uint64_t generation = 0;
    if (generation_of(file.get(), name, generation) != 0) return -1;

    Request request;
    request.op = static_cast<uint32_t>(Op::kMap);
    request.arg0 = kAccessRead | (writable ? kAccessWrite : 0);
    Reply reply;
    std::vector<std::byte> payload;
    UniqueFd region;
    if (exchange(socket_path, trust, request, file.get(), reply, payload, region, name) != 0) return -1;

    MapReply info;
    std::vector<ExtentRecord> extents;
    std::string region_path;
    std::string error;
    int parsed = parse_map_reply(payload, info, extents, region_path, error);
    if (parsed != 0 && payload.size() < sizeof info) return fail(parsed, name + ": " + error);
    // From here on the daemon holds the file for us: release on failure.
    auto give_up = [&](int code, const std::string& message) {
      (void)release(socket_path, trust, info.hold_id, info.ino, name);
      return fail(code, message);
    };
    if (parsed != 0) return give_up(parsed, name + ": " + error);
    if (int err = check_map_identity(info, static_cast<uint64_t>(st.st_ino), generation, error); err != 0) {
      return give_up(err, name + ": " + error);
    }
    if (region.get() < 0) return give_up(EPROTO, name + ": the daemon sent no region descriptor");
    RegionFacts facts;
    if (int err = gather_region_facts(region.get(), region_path, facts); err != 0) {
      return give_up(err, name + ": cannot stat the region descriptor the daemon sent");
    }
    if (int err = check_region_facts(facts, region_path, error); err != 0)
      return give_up(err, name + ": " + error);

    void* base = map_extents(region.get(), info, extents, prot, name);
    if (base == MAP_FAILED) {
      int err = errno;
      std::string message = t_last_error;
      (void)release(socket_path, trust, info.hold_id, info.ino, name);
      t_last_error = message;
      errno = err;
      return -1;
    }
    *mapping = pkfs_mapping{};
    mapping->addr = base;
    mapping->length = info.mapped_bytes;
    mapping->file_size = info.file_size;
    mapping->page_size = info.page_size;
    mapping->hold_id = info.hold_id;
    mapping->prot = prot;
    mapping->private_ino = info.ino;
    mapping->private_generation = info.generation;
    std::snprintf(mapping->private_control, sizeof mapping->private_control, "%s", socket_path.c_str());
    mapping->private_reserved[0] = kTrustMark | trust.mount_owner;
    return 0;
  } catch (const std::bad_alloc&) {
    errno = ENOMEM;
    return -1;
  } catch (...) {
    errno = EIO;
    return -1;
  }
}

int pkfs_unmap(struct pkfs_mapping* mapping) {
  try {
    t_last_error.clear();
    if (mapping == nullptr || mapping->addr == nullptr || mapping->length == 0 ||
        mapping->private_control[0] == '\0') {
      return fail(EINVAL, "pkfs_unmap: not a mapping made by pkfs_map");
    }
    if (::munmap(mapping->addr, mapping->length) != 0) return fail(errno, "pkfs_unmap: munmap");
    std::string socket_path(mapping->private_control,
                            strnlen(mapping->private_control, sizeof mapping->private_control));
    uint64_t hold_id = mapping->hold_id;
    uint64_t ino = mapping->private_ino;
    // The release goes only to root or the mount's owner, as the map did
    // (a mapping made by an older libpkfs: only to root).
    Trust trust;
    if ((mapping->private_reserved[0] & kTrustMark) != 0) {
      trust.mount_owner = static_cast<uint32_t>(mapping->private_reserved[0]);
    }
    *mapping = pkfs_mapping{};
    std::string what = "releasing hold " + std::to_string(hold_id);
    if (release(socket_path, trust, hold_id, ino, what) != 0) {
      int err = errno;
      // ENOENT: the hold is already gone (released as stale, or by pkfsctl
      // release), or the socket is, as are the others: the daemon is away
      // (restarting), and releases the hold once this process is gone. The
      // mapping is gone either way.
      if (err == ENOENT || err == ECONNREFUSED || err == ECONNRESET || err == EPIPE) return 0;
      return -1;
    }
    return 0;
  } catch (const std::bad_alloc&) {
    errno = ENOMEM;
    return -1;
  } catch (...) {
    errno = EIO;
    return -1;
  }
}

const char* pkfs_last_error(void) { return t_last_error.c_str(); }

}  // extern "C"
