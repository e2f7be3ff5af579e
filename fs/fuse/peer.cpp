// fs/fuse/peer.cpp: see peer.h.
#include "fs/fuse/peer.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "fs/core/filesystem.h"

// Debian 12's headers predate Linux 6.5; the value is the kernel's UAPI one
// (include/uapi/asm-generic/socket.h), the same on every architecture that
// uses the generic numbers, x86 among them.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace pkfs::fuse {

namespace {

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Whether the process behind `pidfd` has exited (a pidfd polls readable
// once it has, zombie included).
bool pidfd_exited(int pidfd) {
  pollfd entry{pidfd, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&entry, 1, 0);
  } while (ready < 0 && errno == EINTR);
  return ready != 0;
}

// The inode of the socket at the other end of the connected Unix socket
// `connection`, from the kernel's sock_diag (UDIAG_SHOW_PEER); 0 if it has
// none, -1 if the kernel cannot say (no unix_diag: a module on Debian's
// kernels, loaded on demand where modprobe works).
int64_t peer_socket_inode(int connection) {
  struct stat own {};
  if (::fstat(connection, &own) != 0) return 0;
  int netlink = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (netlink < 0) return -1;
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } query{};
  query.header.nlmsg_len = sizeof query;
  query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  query.header.nlmsg_flags = NLM_F_REQUEST;
  query.request.sdiag_family = AF_UNIX;
  query.request.udiag_states = ~0U;
  query.request.udiag_ino = static_cast<uint32_t>(own.st_ino);
  query.request.udiag_show = UDIAG_SHOW_PEER;
  query.request.udiag_cookie[0] = ~0U;
  query.request.udiag_cookie[1] = ~0U;
  int64_t peer = -1;
  alignas(nlmsghdr) char answer[1024];
  timeval timeout{1, 0};
  ::setsockopt(netlink, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::send(netlink, &query, sizeof query, 0) == static_cast<ssize_t>(sizeof query)) {
    ssize_t got = ::recv(netlink, answer, sizeof answer, 0);
    auto* header = reinterpret_cast<nlmsghdr*>(answer);
    if (got > 0 && NLMSG_OK(header, static_cast<uint32_t>(got)) &&
        header->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
        header->nlmsg_len >= NLMSG_LENGTH(sizeof(unix_diag_msg))) {
      peer = 0;
      int left = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(unix_diag_msg)));
      auto* attribute =
          reinterpret_cast<rtattr*>(static_cast<char*>(NLMSG_DATA(header)) + sizeof(unix_diag_msg));
      for (; RTA_OK(attribute, left); attribute = RTA_NEXT(attribute, left)) {
        if (attribute->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(attribute) >= sizeof(uint32_t)) {
          uint32_t inode;
          std::memcpy(&inode, RTA_DATA(attribute), sizeof inode);
          peer = inode;
        }
      }
    }
  }
  ::close(netlink);
  return peer;
}

// Whether process `pid` has a descriptor of socket inode `socket_ino`.
bool process_holds_socket(pid_t pid, uint32_t socket_ino) {
  std::string directory = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = ::opendir(directory.c_str());
  if (fds == nullptr) return false;
  std::string want = "socket:[" + std::to_string(socket_ino) + "]";
  bool found = false;
  while (dirent* entry = ::readdir(fds)) {  // NOLINT(concurrency-mt-unsafe): this stream is ours alone
    char target[64];
    ssize_t length = ::readlinkat(::dirfd(fds), entry->d_name, target, sizeof target);
    if (length > 0 && want.compare(0, std::string::npos, target, static_cast<size_t>(length)) == 0) {
      found = true;
      break;
    }
  }
  ::closedir(fds);
  return found;
}

// POSIX ACL xattr layout (include/uapi/linux/posix_acl_xattr.h): a
// little-endian u32 version (2), then entries of u16 tag, u16 perm, u32 id.
constexpr uint32_t kAclVersion = 2;
constexpr uint16_t kAclUserObj = 0x01;
constexpr uint16_t kAclUser = 0x02;
constexpr uint16_t kAclGroupObj = 0x04;
constexpr uint16_t kAclGroup = 0x08;
constexpr uint16_t kAclMask = 0x10;
constexpr uint16_t kAclOther = 0x20;

struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};

// The kernel's posix_acl_permission for a caller who is not root. `want`:
// 4 read, 2 write. Returns false for a malformed ACL (deny).
bool acl_permits(const Peer& peer, uint32_t owner, uint32_t group, const std::vector<uint8_t>& raw,
                 int want) {
  if (raw.size() < 4 || (raw.size() - 4) % sizeof(AclEntry) != 0) return false;
  uint32_t version;
  std::memcpy(&version, raw.data(), sizeof version);
  if (version != kAclVersion) return false;
  std::vector<AclEntry> entries((raw.size() - 4) / sizeof(AclEntry));
  std::memcpy(entries.data(), raw.data() + 4, entries.size() * sizeof(AclEntry));
  auto grants = [want](uint16_t perm) { return (perm & want) == want; };
  std::optional<uint16_t> mask;
  for (const AclEntry& e : entries) {
    if (e.tag == kAclMask) mask = e.perm;
  }
  auto masked = [&](uint16_t perm) { return grants(mask ? static_cast<uint16_t>(perm & *mask) : perm); };
  bool user_obj = false, other = false;
  for (const AclEntry& e : entries) {
    user_obj |= e.tag == kAclUserObj;
    other |= e.tag == kAclOther;
  }
  if (!user_obj || !other) return false;
  // Owner first, then named users, then the groups (any matching entry that
  // grants suffices; a match that does not grant denies), then other.
  for (const AclEntry& e : entries) {
    if (e.tag == kAclUserObj && peer.uid == owner) return grants(e.perm);
  }
  for (const AclEntry& e : entries) {
    if (e.tag == kAclUser && peer.uid == e.id) return masked(e.perm);
  }
  bool group_matched = false;
  for (const AclEntry& e : entries) {
    bool member =
        (e.tag == kAclGroupObj && peer.in_group(group)) || (e.tag == kAclGroup && peer.in_group(e.id));
    if (!member) continue;
    if (masked(e.perm)) return true;
    group_matched = true;
  }
  if (group_matched) return false;
  for (const AclEntry& e : entries) {
    if (e.tag == kAclOther) return grants(e.perm);
  }
  return false;
}

}  // namespace

Peer Peer::identify(int connection) { return identify(connection, true); }

Peer Peer::test_identify_without_peerpidfd(int connection) { return identify(connection, false); }

Peer Peer::identify(int connection, bool use_peerpidfd) {
  Peer peer;
  // Until proven otherwise: denies and says why.
  peer.uid = UINT32_MAX;
  peer.gid = UINT32_MAX;
  ucred cred{};
  socklen_t cred_size = sizeof cred;
  if (::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &cred, &cred_size) != 0) {
    peer.m_unknown_reason = "no peer credentials";
    return peer;
  }
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
  if (cred.pid <= 0) {
    peer.m_unknown_reason = "the caller's pid is not visible from here (another pid namespace?)";
    return peer;
  }

  int pidfd = -1;
  socklen_t pidfd_size = sizeof pidfd;
  bool exact = use_peerpidfd &&
               ::getsockopt(connection, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &pidfd_size) == 0 && pidfd >= 0;
  if (!exact) {
    pidfd = pidfd_open(cred.pid);
    if (pidfd < 0) {
      peer.m_unknown_reason = "the process that connected (pid " + std::to_string(cred.pid) + ") has exited";
      return peer;
    }
  }
  peer.m_pidfd.reset(pidfd);
  auto ticks = core::process_start_ticks(peer.pid);
  if (!ticks || ticks.value() == 0) {
    peer.m_unknown_reason = "the process that connected (pid " + std::to_string(cred.pid) + ") has exited";
    return peer;
  }
  if (!exact) {
    // The number may have been given to another process since connect():
    // only the process that holds the other end of this connection counts.
    // Without unix_diag the kernel cannot say who holds it: then only the
    // promptness of accept (the loop never waits) narrows the window.
    int64_t peer_socket = peer_socket_inode(connection);
    if (peer_socket == 0 ||
        (peer_socket > 0 && !process_holds_socket(cred.pid, static_cast<uint32_t>(peer_socket)))) {
      peer.m_unknown_reason =
          "pid " + std::to_string(cred.pid) +
          " does not hold the other end of the connection (it exited and the pid was reused?)";
      return peer;
    }
  }
  // Alive after the start time was read: the start time is that process's.
  if (pidfd_exited(pidfd)) {
    peer.m_unknown_reason = "the process that connected (pid " + std::to_string(cred.pid) + ") has exited";
    return peer;
  }
  peer.start_ticks = ticks.value();
  return peer;
}

bool Peer::alive() const { return known() && m_pidfd.get() >= 0 && !pidfd_exited(m_pidfd.get()); }

bool Peer::in_group(uint32_t group) const {
  return gid == group || std::find(groups.begin(), groups.end(), group) != groups.end();
}

std::string octal_mode(uint32_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", mode & 07777);
  return text;
}

bool may_access(const Peer& peer, uint32_t mode, uint32_t uid, uint32_t gid, Access access,
                const std::vector<uint8_t>& acl) {
  if (peer.uid == 0) return true;
  int want = access == Access::kReadWrite ? 6 : 4;
  if (!acl.empty()) return acl_permits(peer, uid, gid, acl, want);
  uint32_t bits = mode;
  if (peer.uid == uid) {
    bits >>= 6;
  } else if (peer.in_group(gid)) {
    bits >>= 3;
  }
  return (bits & static_cast<uint32_t>(want)) == static_cast<uint32_t>(want);
}

bool may_access_fd(const Peer& peer, int fd, Access access) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  std::vector<uint8_t> acl(4 + 32 * sizeof(AclEntry));
  for (;;) {
    ssize_t got = ::fgetxattr(fd, "system.posix_acl_access", acl.data(), acl.size());
    if (got >= 0) {
      acl.resize(static_cast<size_t>(got));
      break;
    }
    if (errno == ERANGE && acl.size() < 65536) {
      acl.resize(acl.size() * 4);
      continue;
    }
    if (errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP) return false;
    acl.clear();
    break;
  }
  return may_access(peer, st.st_mode, st.st_uid, st.st_gid, access, acl);
}

std::string describe_denial(const Peer& peer, const std::string& what, uint32_t mode, uint32_t uid,
                            uint32_t gid, Access access) {
  return "uid " + std::to_string(peer.uid) + " may not " +
         (access == Access::kReadWrite ? "write " : "read ") + what + " (owner " + std::to_string(uid) + ":" +
         std::to_string(gid) + ", mode " + octal_mode(mode) + ")";
}

}  // namespace pkfs::fuse
