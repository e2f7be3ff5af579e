// fs/fuse/control_server.cpp: see control_server.h; the protocol is in
// fs/client/protocol.h.
#include "fs/fuse/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "fs/client/protocol.h"
#include "fs/core/describe.h"

namespace pkfs::fuse {

using namespace control;

std::set<core::Ino> HeldInodes::replace(std::set<core::Ino> inodes) {
  std::lock_guard lock(m_mutex);
  std::set<core::Ino> changed;
  std::set_symmetric_difference(m_inodes.begin(), m_inodes.end(), inodes.begin(), inodes.end(),
                                std::inserter(changed, changed.end()));
  m_inodes = std::move(inodes);
  return changed;
}

namespace {

// Whether the holder still runs: same pid, same start time (core's reader,
// which never throws when the process exits while its stat is read).
bool holder_alive(const core::Holder& holder) {
  auto ticks = core::process_start_ticks(holder.pid);
  return ticks && ticks.value() == holder.start_ticks;
}

// Device and inode of a descriptor a client sent, from cached attributes
// only (AT_STATX_DONT_SYNC): a descriptor of a hung network or FUSE
// filesystem must not stall the control thread.
bool identify(int fd, dev_t& dev, ino_t& ino) {
  struct statx sx {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO | STATX_TYPE, &sx) != 0) return false;
  dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  ino = static_cast<ino_t>(sx.stx_ino);
  return true;
}

std::string errno_text(int code) {
  const char* text = strerrordesc_np(code);
  return text != nullptr ? text : "error " + std::to_string(code);
}

}  // namespace

struct ControlServer::Peer {
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<gid_t> groups;
  uint64_t start_ticks = 0;

  bool in_group(uint32_t group) const {
    return gid == group || std::find(groups.begin(), groups.end(), group) != groups.end();
  }
  // The kernel's generic_permission for reading (and writing) a regular
  // file: root may, else the owner, group or other bits decide.
  bool may_access(const core::Attr& attr, bool write) const {
    if (uid == 0) return true;
    uint32_t bits = attr.mode;
    if (uid == attr.uid) {
      bits >>= 6;
    } else if (in_group(attr.gid)) {
      bits >>= 3;
    }
    if ((bits & 4) == 0) return false;
    return !write || (bits & 2) != 0;
  }
};

std::string ControlServer::default_path(const core::Filesystem& fs) {
  format::Superblock sb = fs.superblock();
  return std::string(kDefaultSocketDirectory) + "/" + format::uuid_to_string(sb.uuid) + ".sock";
}

ControlServer::ControlServer(core::Filesystem& fs, HeldInodes& held, std::string socket_path,
                             std::string mountpoint, std::string region_path, Log log)
    : m_fs(fs),
      m_held(held),
      m_socket_path(std::move(socket_path)),
      m_mountpoint(std::move(mountpoint)),
      m_region_path(std::move(region_path)),
      m_log(std::move(log)) {}

ControlServer::~ControlServer() { stop(); }

Result<void> ControlServer::start(fuse_session* session) {
  m_session = session;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (m_socket_path.empty() || m_socket_path.size() >= sizeof address.sun_path) {
    return Error(ENAMETOOLONG, "control socket path '" + m_socket_path + "' is empty or longer than " +
                                   std::to_string(sizeof address.sun_path - 1) + " bytes");
  }
  std::memcpy(address.sun_path, m_socket_path.data(), m_socket_path.size());
  if (m_socket_path.rfind(std::string(kDefaultSocketDirectory) + "/", 0) == 0) {
    if (::mkdir(kDefaultSocketDirectory, 0755) != 0 && errno != EEXIST) {
      return Error::from_errno(errno, std::string("cannot create ") + kDefaultSocketDirectory);
    }
  }
  // A socket left by a killed daemon is replaced; one that answers belongs
  // to another daemon (a copy of this region has the same UUID).
  struct stat st {};
  if (::lstat(m_socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(EEXIST, "control socket path " + m_socket_path + " exists and is not a socket");
    }
    int probe = connect_socket(m_socket_path);
    if (probe >= 0) {
      ::close(probe);
      return Error(EADDRINUSE, "control socket " + m_socket_path +
                                   " is served by another pkfs daemon (a copy of this region?); "
                                   "choose another with -o control=PATH");
    }
    ::unlink(m_socket_path.c_str());
  }
  m_listen_fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (m_listen_fd < 0) return Error::from_errno(errno, "control socket");
  if (::bind(m_listen_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    int err = errno;
    ::close(m_listen_fd);
    m_listen_fd = -1;
    return Error::from_errno(err, "cannot bind the control socket " + m_socket_path);
  }
  // Everyone may connect; every request is authorised on its own.
  if (::chmod(m_socket_path.c_str(), 0666) != 0 || ::listen(m_listen_fd, 64) != 0 ||
      ::stat(m_socket_path.c_str(), &st) != 0) {
    int err = errno;
    ::close(m_listen_fd);
    m_listen_fd = -1;
    ::unlink(m_socket_path.c_str());
    return Error::from_errno(err, "control socket " + m_socket_path);
  }
  m_socket_ino = st.st_ino;
  m_wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m_wake_fd < 0) {
    int err = errno;
    ::close(m_listen_fd);
    m_listen_fd = -1;
    ::unlink(m_socket_path.c_str());
    return Error::from_errno(err, "eventfd");
  }
  // Holders from before this mount: the stale ones go now (core released
  // those it could tell at open), the live ones are watched.
  if (auto released = m_fs.release_stale_holds(); released && *released > 0) {
    m_log("released " + std::to_string(*released) + " stale hold(s) at mount");
  }
  m_thread = std::thread([this] { run(); });
  return success();
}

void ControlServer::stop() {
  if (m_thread.joinable()) {
    uint64_t one = 1;
    if (::write(m_wake_fd, &one, sizeof one) < 0) {
      // The thread also wakes on its scan timer.
    }
    m_thread.join();
  }
  if (m_listen_fd >= 0) {
    ::close(m_listen_fd);
    m_listen_fd = -1;
    // Only our own socket: a later daemon may have replaced it.
    struct stat st {};
    if (::lstat(m_socket_path.c_str(), &st) == 0 && st.st_ino == m_socket_ino)
      ::unlink(m_socket_path.c_str());
  }
  if (m_wake_fd >= 0) {
    ::close(m_wake_fd);
    m_wake_fd = -1;
  }
  for (auto& [holder, pidfd] : m_pidfds) ::close(pidfd);
  m_pidfds.clear();
}

void ControlServer::run() {
  sync_holds();
  // The scan runs every kStaleScanSeconds however busy the socket is.
  auto next_scan = std::chrono::steady_clock::now() + std::chrono::seconds(kStaleScanSeconds);
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<uint32_t, uint64_t>> holders;
    fds.push_back({m_wake_fd, POLLIN, 0});
    fds.push_back({m_listen_fd, POLLIN, 0});
    for (auto& [holder, pidfd] : m_pidfds) {
      fds.push_back({pidfd, POLLIN, 0});
      holders.push_back(holder);
    }
    auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_scan - std::chrono::steady_clock::now());
    int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(wait.count(), 0)));
    if (ready < 0 && errno != EINTR) {
      m_log("control socket: poll: " + errno_text(errno));
      return;
    }
    if (ready > 0) {
      if (fds[0].revents != 0) return;
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents != 0) holder_exited(holders[i - 2]);
      }
      if (fds[1].revents != 0) {
        int connection = ::accept4(m_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection >= 0) {
          serve_connection(connection);
          ::close(connection);
        }
      }
    }
    if (std::chrono::steady_clock::now() >= next_scan) {
      if (auto released = m_fs.release_stale_holds(); released && *released > 0) {
        m_log("released " + std::to_string(*released) + " stale hold(s)");
      }
      sync_holds();
      next_scan = std::chrono::steady_clock::now() + std::chrono::seconds(kStaleScanSeconds);
    }
  }
}

void ControlServer::serve_connection(int connection) {
  // A client that connects and says nothing must not stall the others.
  timeval timeout{2, 0};
  ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  Peer peer;
  ucred cred{};
  socklen_t cred_size = sizeof cred;
  if (::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &cred, &cred_size) != 0) return;
  peer.pid = static_cast<uint32_t>(cred.pid);
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  peer.groups.resize(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(peer.groups.size() * sizeof(gid_t));
    if (::getsockopt(connection, SOL_SOCKET, SO_PEERGROUPS, peer.groups.data(), &bytes) == 0) {
      peer.groups.resize(bytes / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE) {
      peer.groups.clear();
      break;
    }
    peer.groups.resize(bytes / sizeof(gid_t) + 1);
  }
  if (auto ticks = core::process_start_ticks(peer.pid)) peer.start_ticks = ticks.value();

  for (;;) {
    Message message;
    if (receive_message(connection, message, [this](int extra) { close_received(extra); }) != 0) return;
    int fd = message.fd;
    Request request;
    std::string payload;
    int reply_fd = -1;
    int status;
    if (message.bytes.size() < sizeof request) {
      status = EPROTO;
      payload = "short request";
    } else {
      std::memcpy(&request, message.bytes.data(), sizeof request);
      if (request.magic != kMagic || request.version != kVersion) {
        status = EPROTO;
        payload =
            "protocol version " + std::to_string(request.version) + " is not " + std::to_string(kVersion);
      } else {
        try {
          status = handle(peer, request.op, request.flags, request.arg0, request.arg1, fd, payload, reply_fd);
        } catch (const std::bad_alloc&) {
          status = ENOMEM;
          payload = "out of memory";
        } catch (const std::exception& e) {
          status = EIO;
          payload = e.what();
        }
      }
    }
    if (fd >= 0) close_received(fd);
    std::vector<std::byte> bytes;
    Reply reply;
    reply.op = request.op;
    reply.status = static_cast<uint32_t>(status);
    reply.payload_bytes = payload.size();
    append(bytes, reply);
    const auto* data = reinterpret_cast<const std::byte*>(payload.data());
    bytes.insert(bytes.end(), data, data + payload.size());
    if (send_message(connection, bytes.data(), bytes.size(), status == 0 ? reply_fd : -1) != 0) {
      // The client never learns of a hold it was not told about: give it back.
      if (status == 0 && static_cast<Op>(request.op) == Op::kMap && payload.size() >= sizeof(MapReply)) {
        MapReply head;
        std::memcpy(&head, payload.data(), sizeof head);
        if (m_fs.release_hold(head.hold_id)) {
          m_log("hold " + std::to_string(head.hold_id) + ": the reply did not reach pid " +
                std::to_string(peer.pid) + "; released");
          sync_holds();
        }
      }
      return;
    }
  }
}

int ControlServer::handle(const Peer& peer, uint32_t op, uint32_t flags, uint64_t arg0, uint64_t arg1, int fd,
                          std::string& payload, int& reply_fd) {
  switch (static_cast<Op>(op)) {
    case Op::kMap: return handle_map(peer, arg0, fd, payload, reply_fd);
    case Op::kStat: return handle_stat(peer, fd, payload);
    case Op::kRelease: {
      if (arg1 != 0) {
        auto holds = m_fs.list_holds();
        if (holds) {
          auto it = std::find_if(holds->begin(), holds->end(),
                                 [&](const core::HoldInfo& h) { return h.id == arg0; });
          if (it != holds->end() && it->ino != arg1) {
            payload = "no such hold " + std::to_string(arg0) + " on inode " + std::to_string(arg1);
            return ENOENT;
          }
        }
      }
      return handle_release(peer, flags, arg0, payload);
    }
    case Op::kHolds: return handle_holds(payload);
    case Op::kInfo: return handle_info(payload);
  }
  payload = "unknown request " + std::to_string(op);
  return EOPNOTSUPP;
}

void ControlServer::close_received(int fd) {
  // Closing any descriptor of the region drops this process's POSIX lock on
  // it (see fs/region/region.cpp): if a client sent us the region itself,
  // take the lock again right after the close.
  // statx without syncing: a descriptor of another FUSE mount must not make
  // this thread wait for that mount's daemon.
  struct statx received {};
  struct stat own {};
  bool is_region = ::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &received) == 0 &&
                   ::fstat(m_fs.region().fd(), &own) == 0 &&
                   makedev(received.stx_dev_major, received.stx_dev_minor) == own.st_dev &&
                   received.stx_ino == own.st_ino;
  ::close(fd);
  if (!is_region) return;
  struct flock want {};
  want.l_type = m_fs.region().read_only() ? F_RDLCK : F_WRLCK;
  want.l_whence = SEEK_SET;
  if (::fcntl(m_fs.region().fd(), F_SETLK, &want) != 0) {
    // Another process may hold the region now (fsck -y, a second daemon):
    // serving on would let two writers share it. Stop at once; the region
    // is crash consistent and the next mount recovers it.
    m_log("a client sent the region's own descriptor; re-taking the region lock failed: " +
          errno_text(errno) + "; stopping the daemon");
    ::_exit(1);
  } else {
    m_log("a client sent the region's own descriptor; the region lock was re-taken");
  }
}

int ControlServer::file_of(int fd, core::Ino& ino, std::string& message) {
  if (fd < 0) {
    message = "the request carries no file descriptor";
    return EBADF;
  }
  if (!m_have_mount_dev) {
    struct stat root {};
    if (::stat(m_mountpoint.c_str(), &root) != 0) {
      int err = errno;
      message = "cannot stat the mountpoint " + m_mountpoint + ": " + errno_text(err);
      return err;
    }
    m_mount_dev = root.st_dev;
    m_have_mount_dev = true;
  }
  dev_t dev = 0;
  ino_t file_ino = 0;
  if (!identify(fd, dev, file_ino)) {
    int err = errno;
    message = "statx of the passed descriptor: " + errno_text(err);
    return err;
  }
  if (dev != m_mount_dev) {
    message = "the file is not on the pkfs mount at " + m_mountpoint;
    return EXDEV;
  }
  ino = file_ino;
  return 0;
}

namespace {

// Extents in bytes, adjacent ones merged.
std::vector<ExtentRecord> extent_records(const std::vector<format::Extent>& extents) {
  std::vector<ExtentRecord> out;
  for (const format::Extent& e : extents) {
    ExtentRecord record{e.file_block * format::kBlockSize, uint64_t{e.region_block} * format::kBlockSize,
                        uint64_t{e.block_count} * format::kBlockSize};
    if (!out.empty() && out.back().file_offset + out.back().length == record.file_offset &&
        out.back().region_offset + out.back().length == record.region_offset) {
      out.back().length += record.length;
    } else {
      out.push_back(record);
    }
  }
  return out;
}

// Whether `extents` cover [0, mapped) with every piece page aligned.
bool mappable(const std::vector<ExtentRecord>& extents, uint64_t mapped, uint64_t page) {
  uint64_t next = 0;
  for (const ExtentRecord& e : extents) {
    if (e.file_offset != next || e.region_offset % page != 0 || e.length % page != 0) return false;
    next += e.length;
  }
  return next >= mapped;
}

std::string map_payload(const MapReply& head, const std::vector<ExtentRecord>& extents,
                        const std::string& region) {
  std::vector<std::byte> bytes;
  append(bytes, head);
  for (const ExtentRecord& e : extents) append(bytes, e);
  std::string payload(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  payload += region;
  return payload;
}

}  // namespace

int ControlServer::handle_map(const Peer& peer, uint64_t access, int fd, std::string& payload,
                              int& reply_fd) {
  if ((access & kAccessRead) == 0 || (access & ~(kAccessRead | kAccessWrite)) != 0) {
    payload = "bad access " + std::to_string(access);
    return EINVAL;
  }
  bool write = (access & kAccessWrite) != 0;
  core::Ino ino = 0;
  if (int err = file_of(fd, ino, payload); err != 0) return err;
  int mode = ::fcntl(fd, F_GETFL);
  int accmode = mode & O_ACCMODE;
  if (mode < 0 || (mode & O_PATH) != 0 || accmode == O_WRONLY || (write && accmode != O_RDWR)) {
    payload =
        write ? "the file must be opened O_RDWR to map it writable" : "the file must be opened for reading";
    return EBADF;
  }
  auto attr = m_fs.getattr(ino);
  if (!attr) {
    payload = attr.error().message();
    return attr.error().code();
  }
  if (!S_ISREG(attr->mode)) {
    payload = "not a regular file";
    return EINVAL;
  }
  if (!peer.may_access(*attr, write)) {
    payload = "uid " + std::to_string(peer.uid) + " may not " + (write ? "write" : "read") + " inode " +
              std::to_string(ino) + " (owner " + std::to_string(attr->uid) + ":" + std::to_string(attr->gid) +
              ", mode " +
              [&] {
                char octal[8];
                std::snprintf(octal, sizeof octal, "%04o", attr->mode & 07777);
                return std::string(octal);
              }() +
              ")";
    return EACCES;
  }
  if (write && m_fs.region().read_only()) {
    payload = "the filesystem is mounted read-only";
    return EROFS;
  }
  // The descriptor a mapping needs reaches the whole region, every file's
  // bytes and the metadata: only a caller that could open the region itself
  // with that access gets it (root, or by the region's owner, group and
  // mode: give the VMMs' group access to the region file or device).
  struct stat region_stat {};
  if (::fstat(m_fs.region().fd(), &region_stat) != 0) {
    payload = "cannot stat the region: " + errno_text(errno);
    return EIO;
  }
  core::Attr region_attr;
  region_attr.mode = region_stat.st_mode;
  region_attr.uid = region_stat.st_uid;
  region_attr.gid = region_stat.st_gid;
  if (!peer.may_access(region_attr, write)) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", region_stat.st_mode & 07777);
    payload = "uid " + std::to_string(peer.uid) + " may not " + (write ? "write" : "read") + " the region " +
              m_region_path + " (owner " + std::to_string(region_stat.st_uid) + ":" +
              std::to_string(region_stat.st_gid) + ", mode " + octal +
              "), and a direct mapping needs a descriptor of the whole region; use the mount instead";
    return EACCES;
  }
  if (peer.start_ticks == 0) {
    payload = "cannot read the caller's start time from /proc";
    return ESRCH;
  }
  reply_fd = m_fs.region().shared_fd(write ? region::Access::kReadWrite : region::Access::kReadOnly);
  if (reply_fd < 0) {
    payload = "this region cannot be mapped by clients (no backing descriptor)";
    return ENOTSUP;
  }
  auto id = m_fs.acquire_hold(ino, core::Holder{peer.pid, peer.uid, peer.start_ticks});
  if (!id) {
    payload = id.error().message();
    return id.error().code();
  }
  auto release = [&](int code, std::string message) {
    (void)m_fs.release_hold(*id);
    payload = std::move(message);
    return code;
  };
  auto held_attr = m_fs.getattr(ino);
  auto extents = m_fs.extents(ino);
  if (!held_attr || !extents) return release(EIO, "cannot read the extents of inode " + std::to_string(ino));
  const region::Info& info = m_fs.region().info();
  uint64_t page = info.page_size;
  uint64_t mapped = (held_attr->size + page - 1) / page * page;
  std::vector<ExtentRecord> records = extent_records(*extents);
  if (mapped == 0) return release(EINVAL, "an empty file cannot be mapped");
  // Only what the mapping covers: space preallocated past the end is not
  // mapped and need not be page aligned.
  while (!records.empty() && records.back().file_offset >= mapped) records.pop_back();
  if (!records.empty() && records.back().file_offset + records.back().length > mapped)
    records.back().length = mapped - records.back().file_offset;
  if (!mappable(records, mapped, page)) {
    return release(EIO, "inode " + std::to_string(ino) + " is not laid out in whole " + std::to_string(page) +
                            "-byte pages covering its size; it cannot be mapped");
  }

  MapReply head;
  head.hold_id = *id;
  head.ino = ino;
  head.generation = held_attr->generation;
  head.file_size = held_attr->size;
  head.mapped_bytes = mapped;
  head.page_size = page;
  head.region_size = info.size_bytes;
  head.extent_count = records.size();
  head.mode = held_attr->mode;
  head.uid = held_attr->uid;
  head.gid = held_attr->gid;
  payload = map_payload(head, records, m_region_path);
  m_log("hold " + std::to_string(*id) + ": pid " + std::to_string(peer.pid) + " (uid " +
        std::to_string(peer.uid) + ") maps inode " + std::to_string(ino) +
        (write ? " read-write" : " read-only"));
  sync_holds();
  return 0;
}

int ControlServer::handle_stat(const Peer&, int fd, std::string& payload) {
  core::Ino ino = 0;
  if (int err = file_of(fd, ino, payload); err != 0) return err;
  auto attr = m_fs.getattr(ino);
  auto extents = m_fs.extents(ino);
  if (!attr || !extents) {
    const Error& error = !attr ? attr.error() : extents.error();
    payload = error.message();
    return error.code();
  }
  const region::Info& info = m_fs.region().info();
  std::vector<ExtentRecord> records = extent_records(*extents);
  MapReply head;
  head.ino = ino;
  head.generation = attr->generation;
  head.file_size = attr->size;
  head.mapped_bytes = (attr->size + info.page_size - 1) / info.page_size * info.page_size;
  head.page_size = info.page_size;
  head.region_size = info.size_bytes;
  head.extent_count = records.size();
  head.mode = attr->mode;
  head.uid = attr->uid;
  head.gid = attr->gid;
  if (auto holds = m_fs.list_holds()) {
    head.hold_count = static_cast<uint32_t>(
        std::count_if(holds->begin(), holds->end(), [ino](const core::HoldInfo& h) { return h.ino == ino; }));
  }
  payload = map_payload(head, records, m_region_path);
  return 0;
}

int ControlServer::handle_release(const Peer& peer, uint32_t flags, uint64_t id, std::string& payload) {
  auto holds = m_fs.list_holds();
  if (!holds) {
    payload = holds.error().message();
    return holds.error().code();
  }
  auto it = std::find_if(holds->begin(), holds->end(), [id](const core::HoldInfo& h) { return h.id == id; });
  if (it == holds->end()) {
    payload = "no such hold " + std::to_string(id);
    return ENOENT;
  }
  const core::HoldInfo hold = *it;
  bool is_holder = hold.holder.pid == peer.pid && hold.holder.start_ticks == peer.start_ticks;
  if ((flags & kReleaseOwnHold) != 0 && !is_holder) {
    payload = "hold " + std::to_string(id) + " is not held by pid " + std::to_string(peer.pid);
    return ENOENT;
  }
  bool is_owner = false;
  if (auto attr = m_fs.getattr(hold.ino)) is_owner = attr->uid == peer.uid;
  if (peer.uid != 0 && !is_holder && !is_owner) {
    payload = "hold " + std::to_string(id) + " belongs to pid " + std::to_string(hold.holder.pid) +
              "; only it, the file's owner and root may release it";
    return EPERM;
  }
  if ((flags & kReleaseStaleOnly) == 0 && !is_holder && peer.uid != 0 && holder_alive(hold.holder)) {
    // Its holder still maps the file: once released, a shrink could free
    // blocks the holder keeps writing. Only root may decide that.
    payload = "hold " + std::to_string(id) + " is held by pid " + std::to_string(hold.holder.pid) +
              ", which is running; only root may release it";
    return EPERM;
  }
  if ((flags & kReleaseStaleOnly) != 0 && holder_alive(hold.holder)) {
    payload = "hold " + std::to_string(id) + " is not stale: its holder, pid " +
              std::to_string(hold.holder.pid) + ", is running";
    return EBUSY;
  }
  auto released = m_fs.release_hold(id);
  if (!released) {
    payload = released.error().message();
    return released.error().code();
  }
  m_log("hold " + std::to_string(id) + " on inode " + std::to_string(hold.ino) + " released by pid " +
        std::to_string(peer.pid));
  sync_holds();
  return 0;
}

int ControlServer::handle_holds(std::string& payload) {
  auto holds = m_fs.list_holds();
  if (!holds) {
    payload = holds.error().message();
    return holds.error().code();
  }
  std::vector<std::byte> bytes;
  for (const core::HoldInfo& h : *holds) {
    HoldRecord record;
    record.id = h.id;
    record.ino = h.ino;
    record.generation = h.generation;
    record.start_ticks = h.holder.start_ticks;
    record.pid = h.holder.pid;
    record.uid = h.holder.uid;
    record.stale = holder_alive(h.holder) ? 0 : 1;
    append(bytes, record);
  }
  payload.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return 0;
}

int ControlServer::handle_info(std::string& payload) {
  for (const auto& [key, value] : core::describe(m_fs)) payload += key + ": " + value + "\n";
  payload += "Mountpoint: " + m_mountpoint + "\n";
  payload += "Control socket: " + m_socket_path + "\n";
  payload += "Daemon pid: " + std::to_string(::getpid()) + "\n";
  return 0;
}

void ControlServer::sync_holds() {
  auto holds = m_fs.list_holds();
  if (!holds) {
    m_log("cannot list holds: " + holds.error().message());
    return;
  }
  std::set<core::Ino> inodes;
  std::set<std::pair<uint32_t, uint64_t>> holders;
  for (const core::HoldInfo& h : *holds) {
    inodes.insert(h.ino);
    holders.insert({h.holder.pid, h.holder.start_ticks});
  }
  // The kernel drops its cached pages and attributes of every inode whose
  // hold state changed: taken, so reads stop coming from a cache direct
  // writes bypass; released, so the cache starts afresh.
  for (core::Ino ino : m_held.replace(std::move(inodes))) {
    if (m_session != nullptr) {
      // ENOSYS: the kernel has not said hello yet (INIT), so it has
      // nothing cached; ENOENT: it does not know the inode.
      int rc = fuse_lowlevel_notify_inval_inode(m_session, ino, 0, 0);
      if (rc != 0 && rc != -ENOENT && rc != -ENOSYS)
        m_log("invalidating inode " + std::to_string(ino) + ": " + errno_text(-rc));
    }
  }
  // Watch new holders; forget those that hold nothing any more.
  std::vector<std::pair<uint32_t, uint64_t>> gone;
  for (auto it = m_pidfds.begin(); it != m_pidfds.end();) {
    if (holders.count(it->first) == 0) {
      ::close(it->second);
      it = m_pidfds.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& holder : holders) {
    if (m_pidfds.count(holder) != 0) continue;
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(holder.first), 0));
    if (pidfd >= 0) {
      // Opened after the check: make sure the pid was not recycled first.
      if (holder_alive(core::Holder{holder.first, 0, holder.second})) {
        m_pidfds.emplace(holder, pidfd);
        continue;
      }
      ::close(pidfd);
    }
    gone.push_back(holder);
  }
  for (const auto& holder : gone) holder_exited(holder);
}

void ControlServer::holder_exited(std::pair<uint32_t, uint64_t> holder) {
  auto holds = m_fs.list_holds();
  if (!holds) return;
  bool released_any = false;
  for (const core::HoldInfo& h : *holds) {
    if (h.holder.pid != holder.first || h.holder.start_ticks != holder.second) continue;
    if (holder_alive(h.holder)) continue;  // e.g. a pidfd that could not be opened for a live process
    if (auto released = m_fs.release_hold(h.id)) {
      m_log("hold " + std::to_string(h.id) + " on inode " + std::to_string(h.ino) + " released: holder pid " +
            std::to_string(holder.first) + " is gone");
      released_any = true;
    } else {
      m_log("releasing hold " + std::to_string(h.id) + ": " + released.error().message());
    }
  }
  if (auto it = m_pidfds.find(holder); it != m_pidfds.end()) {
    ::close(it->second);
    m_pidfds.erase(it);
  }
  if (released_any) sync_holds();
}

}  // namespace pkfs::fuse
