// fs/fuse/peer.h: who is on the other end of a control connection, and what
// that caller may do with a file or with the region.
//
// Owns: identifying a connecting process race-free (SO_PEERCRED for the ids,
// a pidfd of that very process, its start time), and the permission rules
// the daemon applies on the caller's behalf: the kernel's generic_permission
// for regular files, with POSIX ACLs where the object has one.
//
// Why a pidfd: SO_PEERCRED's pid is a number recorded at connect(); by the
// time the daemon looks, the process may have exited and the number been
// given to another process, whose start time /proc would then report. A
// pidfd names the process itself: once the start time is read, a pidfd
// still alive proves the number was not recycled in between. The kernel
// hands one out for the peer since Linux 6.5 (SO_PEERPIDFD); older kernels
// get pidfd_open of the number plus a check that the process so named holds
// the other end of this very connection (sock_diag), which a recycled pid
// does not. Where even sock_diag for Unix sockets is missing (unix_diag is a
// module; a minimal initramfs may lack it), only the daemon's prompt accept
// narrows the window in which a number could be reused.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fs/base/fd.h"

namespace pkfs::fuse {

// A caller of the control socket. Movable, not copyable: owns the pidfd.
class Peer {
 public:
  Peer() = default;
  Peer(Peer&& other) noexcept = default;
  Peer& operator=(Peer&& other) noexcept = default;
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Identifies the process on the other end of the connected Unix socket
  // `connection`. Never blocks on the peer. When the process cannot be
  // identified (gone already, no /proc), known() is false and every request
  // that acts for the process (map, releasing its own hold) is refused.
  static Peer identify(int connection);
  // identify() as on a kernel without SO_PEERPIDFD (before Linux 6.5).
  static Peer test_identify_without_peerpidfd(int connection);

  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (SO_PEERGROUPS)
  uint64_t start_ticks = 0;   // /proc/PID/stat field 22; 0 when not known

  // Whether the pid and start time name the process that connected.
  bool known() const { return start_ticks != 0; }
  // Why known() is false, for messages.
  const std::string& unknown_reason() const { return m_unknown_reason; }
  // Whether the connecting process still runs (a pidfd poll; false when
  // not known()).
  bool alive() const;

  bool in_group(uint32_t group) const;

 private:
  static Peer identify(int connection, bool use_peerpidfd);

  UniqueFd m_pidfd;
  std::string m_unknown_reason;
};

// The access a request needs.
enum class Access { kRead, kReadWrite };

// Whether `peer` may open an object with owner `uid`, group `gid` and mode
// `mode` for `access`, as the kernel decides for a regular file: uid 0 may;
// otherwise `acl` (the raw system.posix_acl_access value; empty when the
// object has none) or else the owner, group or other bits decide.
bool may_access(const Peer& peer, uint32_t mode, uint32_t uid, uint32_t gid, Access access,
                const std::vector<uint8_t>& acl = {});

// may_access for the object open at `fd` (fstat and its access ACL). A
// descriptor that cannot be inspected denies.
bool may_access_fd(const Peer& peer, int fd, Access access);

// A mode's permission bits in octal, "0644".
std::string octal_mode(uint32_t mode);

// "uid 1000 may not write X (owner 0:0, mode 0644)" style text.
std::string describe_denial(const Peer& peer, const std::string& what, uint32_t mode, uint32_t uid,
                            uint32_t gid, Access access);

}  // namespace pkfs::fuse
