// fs/client/pkfs.cpp: libpkfs (see pkfs.h for the API, protocol.h for the
// exchange with the daemon). C++ inside, C ABI outside; only pkfs_* symbols
// are exported (libpkfs.map). Links neither FUSE nor core.
#include "fs/client/pkfs.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fs/client/protocol.h"

namespace {

using namespace pkfs::control;

thread_local std::string t_last_error;

// Records the failure and returns -1 with errno = code.
int fail(int code, const std::string& message) {
  const char* text = strerrordesc_np(code);
  t_last_error = message + ": " + (text != nullptr ? text : "error " + std::to_string(code));
  errno = code;
  return -1;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : m_fd(fd) {}
  ~Fd() {
    if (m_fd >= 0) ::close(m_fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return m_fd; }
  void reset(int fd) {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = fd;
  }

 private:
  int m_fd;
};

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

// One request/reply exchange. On success `reply` holds the header, `payload`
// the rest, `fd` the descriptor (or -1). Returns 0 or -1 (errno set).
int exchange(const std::string& socket_path, const Request& request, int send_fd, Reply& reply,
             std::vector<std::byte>& payload, Fd& received_fd, const std::string& what) {
  int socket = connect_socket(socket_path);
  if (socket < 0) {
    return fail(-socket, what + ": cannot reach the pkfs daemon at " + socket_path);
  }
  Fd connection(socket);
  // Never wait forever for a daemon that does not answer (a map may fill
  // and move a large file first: minutes at most).
  timeval timeout{300, 0};
  ::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (int err = send_message(socket, &request, sizeof request, send_fd); err != 0) {
    return fail(err, what + ": sending to the pkfs daemon");
  }
  Message message;
  if (int err = receive_message(socket, message); err != 0) {
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

// Checks what the daemon sent: extents in file order, page aligned, within
// the region, covering [0, mapped_bytes) without gaps.
bool extents_valid(const MapReply& info, const std::vector<ExtentRecord>& extents) {
  uint64_t page = info.page_size;
  if (page == 0 || (page & (page - 1)) != 0) return false;
  if (info.mapped_bytes % page != 0 || info.mapped_bytes < info.file_size ||
      info.mapped_bytes - info.file_size >= page) {
    return false;
  }
  uint64_t next = 0;
  for (const ExtentRecord& e : extents) {
    if (e.file_offset != next || e.length == 0 || e.length % page != 0 || e.region_offset % page != 0) {
      return false;
    }
    if (e.region_offset > info.region_size || e.length > info.region_size - e.region_offset) return false;
    next += e.length;
  }
  return next == info.mapped_bytes;
}

int release(const std::string& socket_path, uint64_t hold_id, uint64_t ino, const std::string& what) {
  Request request;
  request.op = static_cast<uint32_t>(Op::kRelease);
  request.flags = kReleaseOwnHold;
  request.arg0 = hold_id;
  request.arg1 = ino;
  Reply reply;
  std::vector<std::byte> payload;
  Fd ignored;
  return exchange(socket_path, request, -1, reply, payload, ignored, what);
}

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
    Fd file(::open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY));
    if (file.get() < 0) return fail(errno, name);
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) return fail(errno, name);
    if (!S_ISREG(st.st_mode)) return fail(EINVAL, name + ": not a regular file");
    std::string socket_path;
    if (control_path_of(file.get(), name, socket_path) != 0) return -1;

    Request request;
    request.op = static_cast<uint32_t>(Op::kMap);
    request.arg0 = kAccessRead | (writable ? kAccessWrite : 0);
    Reply reply;
    std::vector<std::byte> payload;
    Fd region;
    if (exchange(socket_path, request, file.get(), reply, payload, region, name) != 0) return -1;

    MapReply info;
    if (payload.size() < sizeof info) return fail(EPROTO, name + ": short map reply");
    std::memcpy(&info, payload.data(), sizeof info);
    // From here on the daemon holds the file for us: release on failure.
    auto give_up = [&](int code, const std::string& message) {
      std::string saved = message;
      (void)release(socket_path, info.hold_id, info.ino, name);
      return fail(code, saved);
    };
    if (info.extent_count > (payload.size() - sizeof info) / sizeof(ExtentRecord)) {
      return give_up(EPROTO, name + ": map reply lists more extents than it carries");
    }
    std::vector<ExtentRecord> extents(info.extent_count);
    if (!extents.empty()) {
      std::memcpy(extents.data(), payload.data() + sizeof info, extents.size() * sizeof(ExtentRecord));
    }
    if (region.get() < 0) return give_up(EPROTO, name + ": the daemon sent no region descriptor");
    if (info.mapped_bytes == 0) return give_up(EINVAL, name + ": an empty file cannot be mapped");
    if (!extents_valid(info, extents)) return give_up(EPROTO, name + ": the daemon sent invalid extents");

    void* base = map_extents(region.get(), info, extents, prot, name);
    if (base == MAP_FAILED) {
      int err = errno;
      std::string message = t_last_error;
      (void)release(socket_path, info.hold_id, info.ino, name);
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
    *mapping = pkfs_mapping{};
    std::string what = "releasing hold " + std::to_string(hold_id);
    if (release(socket_path, hold_id, ino, what) != 0) {
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
