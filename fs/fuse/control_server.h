// fs/fuse/control_server.h: the daemon's control socket (protocol:
// fs/client/protocol.h) and the watch over holders of direct mappings.
//
// Owns: the listening socket, its event-loop thread and the worker pool
// (threads, limits per uid and per connection, what is never done on the
// loop: see control_server.cpp); authorising each request (peer.h, the
// passed descriptor); taking and releasing holds through core, with the
// daemon's hold limits; one pidfd per live holder, so a holder's exit
// releases its holds at once, plus core::Filesystem::release_stale_holds()
// every kStaleScanSeconds for holders that could not be watched; and
// keeping the kernel's page cache coherent with direct mappings
// (HeldInodes below).
//
// Every local user may connect: no client can keep another uid from being
// served, make the daemon hold unbounded memory or descriptors for it, or
// keep SIGTERM from ending the daemon within about kStopSeconds.
//
// Coherence (see README, "Direct mappings"): a held file is opened by FUSE
// with direct_io, so reads and writes through the mount go to the region
// and see what the direct mappings wrote, and the reverse; the kernel's
// cached pages and attributes of the file are invalidated
// (fuse_lowlevel_notify_inval_inode) when the first hold on it is taken and
// when the last goes. A descriptor opened before the hold keeps its cached
// mode: reads through it may still be served from the page cache.
#pragma once

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "fs/base/fd.h"
#include "fs/base/result.h"
#include "fs/client/protocol.h"
#include "fs/core/filesystem.h"

namespace pkfs::fuse {

// Seconds between two release_stale_holds() scans.
inline constexpr int kStaleScanSeconds = 3;
// How long stop() waits for workers before leaving them behind.
inline constexpr int kStopSeconds = 2;

// The inodes that have holds, for the adapter's open (direct_io). Protected
// by its own mutex; never held while calling into core or FUSE.
class HeldInodes {
 public:
  bool contains(core::Ino ino) const {
    std::lock_guard lock(m_mutex);
    return m_inodes.contains(ino);
  }
  // Replaces the set; returns the inodes that entered or left it.
  std::set<core::Ino> replace(std::set<core::Ino> inodes);

 private:
  mutable std::mutex m_mutex;
  std::set<core::Ino> m_inodes;
};

// Limits on what one caller can take from the control plane. Every limit
// bounds the daemon's work and memory per uid, so that no local user can
// keep another from being served.
struct ControlLimits {
  // Holds one process may have; any uid, root too (a VMM holds its RAM and
  // a few state files).
  uint32_t holds_per_process = 64;
  // Holds all processes of one uid may have (root: no limit).
  uint32_t holds_per_uid = 256;
  // Connections open at once, per uid (root: kRootConnections) and in all.
  uint32_t connections_per_uid = 16;
  uint32_t connections = 512;
  // Jobs (a request being handled, a received descriptor being closed)
  // running at once per uid (root: 8), and waiting per uid; a uid at its
  // waiting limit is not read from until its jobs drain.
  uint32_t running_jobs_per_uid = 2;
  uint32_t waiting_jobs_per_uid = 64;
  // A connection lives this long from accept, and carries this many
  // requests, then the daemon closes it.
  int connection_seconds = 10;
  uint32_t requests_per_connection = 64;
};

class ControlServer {
 public:
  using Log = std::function<void(const std::string&)>;

  // The default socket path of a region: /run/pkfs/<uuid>.sock.
  static std::string default_path(const core::Filesystem& fs);

  ControlServer(core::Filesystem& fs, HeldInodes& held, std::string socket_path, std::string mountpoint,
                std::string region_path, ControlLimits limits, Log log);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket (mode 0666; replacing a stale one) and starts the
  // threads. `session` receives cache invalidations; it must outlive stop().
  Result<void> start(fuse_session* session);
  // Stops serving and removes the socket, within about kStopSeconds
  // whatever clients do: workers still stuck in a client's descriptor are
  // left behind (they end with the process). After it returns no thread
  // touches the filesystem. Safe to call twice.
  void stop();
  // Workers stop() left behind; the daemon leaves with _exit when nonzero,
  // so that no exit handler runs beside them.
  size_t abandoned_workers() const;

  const std::string& socket_path() const { return m_socket_path; }

  // Implementation (control_server.cpp): the state workers share, a
  // client's connection, a job of the worker pool.
  struct Shared;
  struct Connection;
  struct Job;

 private:
  // A pidfd, closed with its last owner.
  using PidFd = UniqueFd;

  // The event loop (one thread): accepts, reads requests, watches holders
  // and deadlines; never blocks and never releases a client's file.
  void run();
  void accept_all();
  void read_request(const std::shared_ptr<Connection>& connection);
  // Closes a connection without releasing anything a client queued on it
  // on this thread (see control_server.cpp, "Descriptors").
  void dispose(const std::shared_ptr<Connection>& connection);
  // Queues the close of a descriptor a client sent.
  void close_later(uint32_t uid, int fd);

  static void finish_job(Shared& shared, const std::shared_ptr<Connection>& connection);
  // A job: handles one request and replies (a worker thread).
  void serve(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Connection>& connection,
             const control::Request& request, int fd);
  // Handles one request; fills the reply payload and the descriptor to pass.
  int handle(const Connection& connection, const control::Request& request, int fd, std::string& payload,
             int& reply_fd);
  // kMap, and kHold (`send_region` false): the same checks and reply; only
  // kMap passes the region descriptor.
  int handle_map(const Connection& connection, uint64_t access, int fd, std::string& payload, int& reply_fd,
                 bool send_region = true);
  int handle_stat(const Connection& connection, int fd, std::string& payload);
  int handle_release(const Connection& connection, uint32_t flags, uint64_t id, uint64_t ino,
                     std::string& payload);
  int handle_holds(const Connection& connection, std::string& payload);
  int handle_info(const Connection& connection, std::string& payload);
  // Checks that `fd` is a file of this mount; returns its inode or an errno.
  int file_of(int fd, core::Ino& ino, std::string& message);
  // Whether the caller may read (or write) the region itself.
  bool may_access_region(const Connection& connection, bool write, std::string& message);
  // Re-reads the holds: updates HeldInodes, invalidates the kernel's cache
  // of inodes whose state changed, and watches new holders. REQUIRES:
  // m_holds_mutex.
  void sync_holds();
  // Holders whose pidfd fired, the stale scan: a job of its own.
  void maintain(const std::shared_ptr<Shared>& shared,
                const std::vector<std::pair<uint32_t, uint64_t>>& exited, bool scan);
  void holder_exited(std::pair<uint32_t, uint64_t> holder);

  core::Filesystem& m_fs;
  HeldInodes& m_held;
  std::string m_socket_path;
  std::string m_mountpoint;
  std::string m_region_path;
  ControlLimits m_limits;
  Log m_log;
  fuse_session* m_session = nullptr;
  int m_listen_fd = -1;
  ino_t m_socket_ino = 0;
  dev_t m_mount_dev = 0;
  std::thread m_thread;
  bool m_stopped = false;
  // Shared with the workers, which may outlive this object (see stop()).
  std::shared_ptr<Shared> m_shared;
  // Loop thread only.
  std::map<int, std::shared_ptr<Connection>> m_connections;  // by socket
  std::map<uint32_t, uint32_t> m_connections_per_uid;
  std::chrono::steady_clock::time_point m_next_scan;
  // Holders watched by pidfd: (pid, start ticks) -> pidfd. Protected by
  // m_holds_mutex (workers update it in sync_holds; the loop polls a copy).
  std::mutex m_holds_mutex;
  std::map<std::pair<uint32_t, uint64_t>, std::shared_ptr<PidFd>> m_pidfds;
  uint64_t m_pidfds_version = 0;  // bumped on every change; protected by m_holds_mutex
};

}  // namespace pkfs::fuse
