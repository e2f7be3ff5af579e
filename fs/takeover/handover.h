// fs/takeover/handover.h: moving a live FUSE connection between daemon
// processes: the planned hand-over (a running daemon to a successor), the
// keeper that keeps a copy of the descriptor for an unplanned restart, and
// systemd's file descriptor store for the same when pkfs runs as a service.
// The wire format is in protocol.h.
//
// Guarantees, by request kind, across a hand-over or a restart:
//  - Planned hand-over: the old daemon answers every request it has read
//    before it lets go; the successor receives the exact open-handle and
//    lookup counts (core::Takeover::kExact), so nothing is re-sent and
//    nothing is lost. A client sees a stall, no error.
//  - Unplanned restart (kill -9, crash): requests the dead daemon had read
//    but not answered are re-sent by the kernel (FUSE_NOTIFY_RESEND, when the
//    kernel offers FUSE_HAS_RESEND) and answered consistently with the
//    journal, which recovery has left with each metadata operation either
//    done or not done (see fs/fuse/adapter.cpp, "re-sent requests"): reads,
//    writes (same bytes at the same offset), setattr, fallocate and xattr
//    sets are done again, which is idempotent; create, mknod, mkdir,
//    symlink and link find their name present and answer with it;
//    unlink, rmdir and removexattr find it absent and answer success;
//    rename finds its source gone and its target present and answers
//    success; RENAME_EXCHANGE, whose second run would undo the first, is
//    answered EIO. Without FUSE_HAS_RESEND those requests hang until the
//    mount is aborted. Requests not yet read wait in the kernel and are
//    served by the successor.
//  - Open handles (fh = inode number) and lookup counts of the dead daemon
//    are unknown: every inode in use at the restart is pinned (never freed)
//    until the next ordinary mount, so an unlinked file still open or a
//    removed working directory keeps its inode number; its space comes back
//    at the next mount (or fsck).
//
// Handed over: the /dev/fuse descriptor (the kernel's connection, with every
// request queued in it), the kernel's INIT and the reply it got, the mount's
// parameters (region, control socket, limits, keeper), and after a planned
// hand-over the open and lookup counts. Rebuilt by the successor: every DRAM
// index of the region (core opens it as a mount does, recovering the
// journal), the control socket (same path; holds are on the region, and
// their holders are checked again), the libfuse session state (synthetic
// INIT). Still breaks a client: a re-sent RENAME_EXCHANGE (EIO); on a kernel
// without FUSE_HAS_RESEND (before 6.9), the requests in flight at a crash
// never complete; a daemon that hangs instead of dying keeps its region
// lock, so no successor can start (kill it first).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fs/base/fd.h"
#include "fs/base/result.h"
#include "fs/core/filesystem.h"
#include "fs/takeover/connection.h"
#include "fs/takeover/protocol.h"

namespace pkfs::takeover {

using Log = std::function<void(const std::string&)>;

// kRunDir/<hash of mountpoint>.<kind>
std::string socket_path(const std::string& mountpoint, const char* kind);

// Fills Params::region ... from strings (truncation is an error).
Result<void> set_param(char* field, size_t size, const std::string& value, const char* what);

// ---- successor side -------------------------------------------------------

// What a successor received: the descriptor, how the mount was made, and
// the kernel's references (exact after a hand-over; unknown from a keeper
// or the fd store).
struct Incoming {
  int fd = -1;  // /dev/fuse; the caller owns it
  Params params;
  core::Takeover mode = core::Takeover::kUnknown;
  std::vector<core::InheritedReferences> references;
  int channel = -1;  // hand-over: where the Verdict goes; -1 otherwise
  pid_t from = 0;
  std::string source;  // "the daemon (pid N)", "the keeper (pid N)", "systemd's fd store"
};

// Asks the daemon serving `mountpoint` to hand its connection over; when
// no daemon answers (none listens: it died), the mount's keeper.
Result<Incoming> request(const std::string& mountpoint, const std::string& binary_version);
// Tells the daemon that handed over: status 0, the successor serves (the
// daemon exits); otherwise it resumes. Closes the channel. No-op without one.
void send_verdict(Incoming& incoming, int status, const std::string& message);

// ---- daemon side ----------------------------------------------------------

// Listens on the hand-over socket of a mount (a thread of its own) and
// holds at most one accepted request; refuses others with a reason.
class Listener {
 public:
  ~Listener();
  static Result<std::unique_ptr<Listener>> start(const std::string& mountpoint, Connection& connection,
                                                 Log log);
  // The request the connection was woken for, if any (a connected socket
  // whose Hello was checked).
  std::optional<int> take();
  // Serves a taken request: stops the workers, calls `let_go` (stop the
  // control socket, export the references, close the filesystem), sends
  // the descriptor, and waits for the verdict. True: the successor serves,
  // exit without unmounting. False: `resume` was called with what let_go
  // returned (reopen, restart the control socket) and the workers run again.
  bool hand_over(int channel, const Params& params,
                 const std::function<Result<std::vector<core::InheritedReferences>>()>& let_go,
                 const std::function<Result<void>(const std::vector<core::InheritedReferences>&)>& resume);
  const std::string& path() const { return m_path; }

 private:
  Listener(Connection& connection, Log log) : m_connection(connection), m_log(std::move(log)) {}
  void run();
  void handle(int client);

  Connection& m_connection;
  Log m_log;
  std::string m_path;
  UniqueFd m_listen_fd;
  UniqueFd m_stop_fd;
  std::thread m_thread;
  std::mutex m_mutex;
  std::optional<int> m_pending;
  bool m_busy = false;
  uint32_t m_busy_pid = 0;
};

// ---- keeper ---------------------------------------------------------------

// Starts the keeper of a mount: a process of this binary
// (`pkfs --keeper MOUNTPOINT`, not for people) that holds a copy of the
// descriptor and, once `connection` has seen INIT, the mount's Params, and
// hands both to a successor after the daemon died. It ends when the
// connection ends (unmount, abort) or a daemon releases it at a clean
// unmount. Call before any thread starts (it forks).
Result<void> spawn_keeper(const std::string& self_exe, const std::string& mountpoint, Connection& connection,
                          const Params& params, const Log& log);
// The keeper's main: fds 3 (parameters from the daemon) and 4 (/dev/fuse).
int keeper_main(const std::string& mountpoint);
// At a clean unmount: tells the keeper to go (it would notice within a
// second anyway).
void release_keeper(const std::string& mountpoint);

// ---- systemd file descriptor store ------------------------------------------

// With NOTIFY_SOCKET set (a systemd service), stores the descriptor and a
// memfd of its Params in the service's fd store (FDSTORE=1), named
// pkfs-fuse-<hash> and pkfs-params-<hash>. No-op otherwise.
Result<void> store_in_systemd(const std::string& mountpoint, int fd, const Params& params, const Log& log);
// A restarted service: the stored pair for `mountpoint` from LISTEN_FDS, if
// any (nothing when not started by systemd with stored descriptors). A pair
// that cannot be served (a connection whose mount is gone, a half pair) is
// closed, removed from the store and logged, and nothing is returned: the
// service then mounts afresh.
std::optional<Incoming> take_from_systemd(const std::string& mountpoint, const Log& log);
// At a clean unmount: removes the pair from the store (FDSTOREREMOVE=1).
void remove_from_systemd(const std::string& mountpoint);

}  // namespace pkfs::takeover
