// fs/fuse/control_server.h: the daemon's control socket (protocol:
// fs/client/protocol.h) and the watch over holders of direct mappings.
//
// Owns: the listening socket and its thread; authorising each request
// (SO_PEERCRED, SO_PEERGROUPS, the passed descriptor); taking and releasing
// holds through core; one pidfd per live holder, so a holder's exit releases
// its holds at once, plus core::Filesystem::release_stale_holds() every
// kStaleScanSeconds for holders that could not be watched; and keeping the
// kernel's page cache coherent with direct mappings (HeldInodes below).
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

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "fs/base/result.h"
#include "fs/core/filesystem.h"

namespace pkfs::fuse {

// Seconds between two release_stale_holds() scans.
inline constexpr int kStaleScanSeconds = 3;

// The inodes that have holds, for the adapter's open (direct_io). Protected
// by its own mutex; never held while calling into core or FUSE.
class HeldInodes {
 public:
  bool contains(core::Ino ino) const {
    std::lock_guard lock(m_mutex);
    return m_inodes.count(ino) != 0;
  }
  // Replaces the set; returns the inodes that entered or left it.
  std::set<core::Ino> replace(std::set<core::Ino> inodes);

 private:
  mutable std::mutex m_mutex;
  std::set<core::Ino> m_inodes;
};

class ControlServer {
 public:
  using Log = std::function<void(const std::string&)>;

  // The default socket path of a region: /run/pkfs/<uuid>.sock.
  static std::string default_path(const core::Filesystem& fs);

  ControlServer(core::Filesystem& fs, HeldInodes& held, std::string socket_path, std::string mountpoint,
                std::string region_path, Log log);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket (mode 0666; replacing a stale one) and starts the
  // thread. `session` receives cache invalidations; it must outlive stop().
  Result<void> start(fuse_session* session);
  // Stops the thread and removes the socket. Safe to call twice.
  void stop();

  const std::string& socket_path() const { return m_socket_path; }

 private:
  struct Peer;
  void run();
  void serve_connection(int connection);
  // Handles one request; fills the reply payload and the descriptor to pass.
  int handle(const Peer& peer, uint32_t op, uint32_t flags, uint64_t arg0, uint64_t arg1, int fd,
             std::string& payload, int& reply_fd);
  int handle_map(const Peer& peer, uint64_t access, int fd, std::string& payload, int& reply_fd);
  int handle_stat(const Peer& peer, int fd, std::string& payload);
  int handle_release(const Peer& peer, uint32_t flags, uint64_t id, std::string& payload);
  int handle_holds(std::string& payload);
  int handle_info(std::string& payload);
  // Checks that `fd` is a file of this mount; returns its inode or an errno.
  int file_of(int fd, core::Ino& ino, std::string& message);
  // Re-reads the holds: updates HeldInodes, invalidates the kernel's cache
  // of inodes whose state changed, and watches new holders.
  void sync_holds();
  // A watched holder exited: release its holds.
  void holder_exited(std::pair<uint32_t, uint64_t> holder);
  void close_received(int fd);

  core::Filesystem& m_fs;
  HeldInodes& m_held;
  std::string m_socket_path;
  std::string m_mountpoint;
  std::string m_region_path;
  Log m_log;
  fuse_session* m_session = nullptr;
  int m_listen_fd = -1;
  int m_wake_fd = -1;  // eventfd: stop() wakes the thread
  ino_t m_socket_ino = 0;
  std::thread m_thread;
  dev_t m_mount_dev = 0;
  bool m_have_mount_dev = false;
  // Touched by the control thread only.
  std::map<std::pair<uint32_t, uint64_t>, int> m_pidfds;  // (pid, start ticks) -> pidfd
};

}  // namespace pkfs::fuse
