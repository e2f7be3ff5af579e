// fs/takeover/connection.h: serving a FUSE session with workers that can be
// stopped between requests, so that the connection can change hands.
//
// Owns: the worker threads that read and process requests (in place of
// fuse_session_loop_mt, which cannot stop without ending the session), the
// custom io (fuse_session_custom_io) through which pkfs sees the kernel's
// FUSE_INIT and the reply to it, the synthetic INIT that gives a successor's
// session the connection state it never negotiated, and FUSE_NOTIFY_RESEND.
//
// Stopping: quiesce() sets a flag and interrupts every worker blocked in
// read(2) on /dev/fuse with a signal (kKickSignal, handled without
// SA_RESTART, so the read ends with EINTR); a worker that has read a request
// processes and answers it first. So after quiesce() no request is read and
// unanswered: the kernel holds every other request in its pending queue,
// where the successor finds it.
//
// One Connection per process (the custom io callbacks find it through a
// global: libfuse passes them the session's userdata, the adapter).
#pragma once

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse_lowlevel.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "fs/base/fd.h"
#include "fs/base/result.h"
#include "fs/takeover/protocol.h"

namespace pkfs::takeover {

class Connection {
 public:
  using Log = std::function<void(const std::string&)>;

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A session this process mounted (fuse_session_mount done): serves its
  // descriptor and records the kernel's INIT when it comes.
  static Result<std::unique_ptr<Connection>> mounted(fuse_session* session, unsigned workers, Log log);
  // A descriptor another daemon mounted and negotiated: `session` (new,
  // never mounted) takes `fd` (and closes it at fuse_session_destroy), is
  // given `init.in` as its INIT, and its reply must match `init.out` in
  // every negotiated field, or the successor would serve under terms the
  // kernel never agreed to (EPROTO, naming the field).
  static Result<std::unique_ptr<Connection>> adopted(fuse_session* session, int fd, const InitRecord& init,
                                                     unsigned workers, Log log);

  // Starts (or, after quiesce(), restarts) the workers.
  void start();
  // Stops reading: returns once every worker has answered what it read and
  // exited.
  void quiesce();

  // Blocks until the session ended (unmount, a signal: fuse_session_exited)
  // or wake() was called; returns true for the first.
  bool wait();
  void wake();

  // The kernel's INIT and our reply, once INIT has been answered.
  std::optional<InitRecord> init() const;
  // Each callback is called once, from the worker that answered INIT
  // (mounted sessions), or at once if INIT is already known.
  void on_init(std::function<void(const InitRecord&)> callback);
  bool kernel_has_resend() const;
  // Tells the kernel to send again every request read but not answered
  // (by a daemon that died). Only when kernel_has_resend().
  Result<void> notify_resend();

  int fd() const;
  fuse_session* session() const { return m_session; }

  // Custom io (public for the C callbacks).
  ssize_t io_read(int fd, void* buffer, size_t size);
  ssize_t io_writev(int fd, struct iovec* iov, int count);

 private:
  Connection(fuse_session* session, unsigned workers, Log log);
  Result<void> install_io(int fd);
  void work();
  void note_init(const void* request, size_t size);

  fuse_session* m_session;
  unsigned m_worker_count;
  Log m_log;
  std::vector<std::thread> m_workers;
  std::atomic<bool> m_stopping{false};
  std::atomic<int> m_running{0};
  UniqueFd m_wake_fd;

  mutable std::mutex m_mutex;
  InitRecord m_init;
  bool m_init_in_seen = false;
  bool m_init_done = false;
  uint64_t m_init_unique = 0;
  bool m_swallow = false;  // synthetic INIT: the reply goes nowhere
  std::vector<std::function<void(const InitRecord&)>> m_on_init;
};

// Whether the request this thread is processing was re-sent by the kernel
// (FUSE_NOTIFY_RESEND): the daemon that read it first may have done it.
bool current_request_resent();

}  // namespace pkfs::takeover
