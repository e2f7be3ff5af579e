// fs/fuse/control_server.cpp: see control_server.h; the protocol is in
// fs/client/protocol.h.
//
// Threads. One event-loop thread accepts connections, identifies callers
// (peer.h), reads requests and watches holders' pidfds and deadlines; it
// never waits on a client. Handling a request, replying and closing what a
// client sent run as jobs on worker threads, a pool that grows when its
// workers are stuck (kMaxWorkers) and in which one uid runs at most
// ControlLimits::running_jobs_per_uid jobs at once: a client can stall its
// own jobs, never the loop nor another uid's.
//
// Descriptors. Releasing a file a client passed can block the releasing
// thread for as long as the client likes: a TCP socket with SO_LINGER and
// unsent data, a file of a FUSE mount whose server never answers FLUSH, a
// Unix socket with such files queued on it. The release happens in the
// thread that drops the last reference, which is also the thread that
// receives a message carrying more descriptors than it has room for (the
// kernel drops the rest) or closes a connection with messages still queued.
// So the loop receives with room for every descriptor a message can carry
// (SCM_MAX_FD) and releases nothing itself: each descriptor goes to a job
// that closes it (sockets first get SO_LINGER 0, so their close does not
// wait), and a connection is shut down and drained before the loop closes
// it. At stop, jobs not yet started get a thread each and are left to
// finish with the process.
#include "fs/fuse/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <vector>

#include "fs/client/protocol.h"
#include "fs/core/describe.h"
#include "fs/fuse/peer.h"

namespace pkfs::fuse {

using namespace control;
using Clock = std::chrono::steady_clock;

std::set<core::Ino> HeldInodes::replace(std::set<core::Ino> inodes) {
  std::lock_guard lock(m_mutex);
  std::set<core::Ino> changed;
  std::set_symmetric_difference(m_inodes.begin(), m_inodes.end(), inodes.begin(), inodes.end(),
                                std::inserter(changed, changed.end()));
  m_inodes = std::move(inodes);
  return changed;
}

namespace {

// The most descriptors one message can carry (the kernel's SCM_MAX_FD).
constexpr size_t kMaxDescriptorsPerMessage = 253;
// Workers at most, root's jobs apart (root is never kept waiting by a pool
// that other uids' stuck jobs fill).
constexpr size_t kMaxWorkers = 32;
// Workers kept when idle; others end after kWorkerIdleSeconds.
constexpr size_t kMinWorkers = 2;
constexpr int kWorkerIdleSeconds = 30;
// Root's share: jobs running at once and open connections.
constexpr uint32_t kRootRunningJobs = 8;
constexpr uint32_t kRootConnections = 64;
// The uid the daemon's own maintenance (stale scan, exited holders) runs
// under in the pool: one job at a time.
constexpr uint32_t kMaintenanceUid = UINT32_MAX;
// Send buffer asked for each connection: a whole kMaxMessageBytes message
// must fit (the kernel's default is about 208 KiB).
constexpr int kSendBufferBytes = 1024 * 1024;

// Whether the holder still runs: same pid, same start time (core's reader,
// which never throws when the process exits while its stat is read).
bool holder_alive(const core::Holder& holder) {
  auto ticks = core::process_start_ticks(holder.pid);
  return ticks && ticks.value() == holder.start_ticks;
}

// Device and inode of a descriptor a client sent, from cached attributes
// only (AT_STATX_DONT_SYNC): a descriptor of a hung network or FUSE
// filesystem must not stall the thread asking.
bool identify(int fd, dev_t& dev, ino_t& ino, uint16_t* type = nullptr) {
  struct statx sx {};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO | STATX_TYPE, &sx) != 0) return false;
  dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  ino = static_cast<ino_t>(sx.stx_ino);
  if (type != nullptr) *type = static_cast<uint16_t>(sx.stx_mode & S_IFMT);
  return true;
}

// Whether `path` is a directory only root (the daemon) may change entries
// of: a real directory owned by root, not writable by group or others
// unless sticky. Empty when so, else why not.
std::string unsafe_directory(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return path + ": " + errno_text(errno);
  if (!S_ISDIR(st.st_mode)) return path + " is not a directory (a symlink?)";
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return path + " belongs to uid " + std::to_string(st.st_uid) + ", who could replace the socket";
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)
    return path + " is writable by others (mode " + octal_mode(st.st_mode) + ") without the sticky bit";
  return {};
}

}  // namespace

// ---- State shared with the workers ---------------------------------------

struct ControlServer::Connection {
  int fd = -1;
  Peer peer;
  Clock::time_point deadline;
  uint32_t requests = 0;
  bool busy = false;         // a job has it (loop thread only)
  bool close_after = false;  // set by its job: dispose once done
};

struct ControlServer::Job {
  uint32_t uid = 0;
  std::function<void()> run;
};

struct ControlServer::Shared {
  std::mutex mutex;
  std::condition_variable work;   // workers: a job may be runnable
  std::condition_variable quiet;  // stop(): in_core or running changed
  std::deque<Job> jobs;
  std::map<uint32_t, uint32_t> running;  // per uid
  std::map<uint32_t, uint32_t> waiting;  // per uid
  size_t running_total = 0;
  size_t workers = 0;
  size_t idle = 0;
  size_t in_core = 0;  // jobs inside the filesystem (stop() waits for 0)
  bool stopping = false;
  ControlLimits limits;
  int wake_fd = -1;                                   // eventfd: wakes the loop
  std::vector<std::shared_ptr<Connection>> finished;  // jobs done; the loop resumes them
  bool maintenance_queued = false;
  // The region, to notice a client sending its descriptor (see close_job).
  dev_t region_dev = 0;
  ino_t region_ino = 0;
  int region_fd = -1;
  bool region_read_only = false;
  Log log;

  ~Shared() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  uint32_t running_limit(uint32_t uid) const {
    if (uid == kMaintenanceUid) return 1;
    return uid == 0 ? kRootRunningJobs : limits.running_jobs_per_uid;
  }
  // Whether the loop should stop reading from `uid`'s connections.
  bool parked(uint32_t uid) {
    auto it = waiting.find(uid);
    return uid != 0 && it != waiting.end() && it->second >= limits.waiting_jobs_per_uid;
  }
  void wake() {
    uint64_t one = 1;
    if (::write(wake_fd, &one, sizeof one) < 0) {
      // Full counter: the loop is awake anyway.
    }
  }
  // Runs `job` on the pool. REQUIRES: mutex.
  void submit(const std::shared_ptr<Shared>& self, Job job);
  bool enter_core() {
    std::lock_guard lock(mutex);
    if (stopping) return false;
    ++in_core;
    return true;
  }
  void leave_core() {
    std::lock_guard lock(mutex);
    --in_core;
    quiet.notify_all();
  }
};

namespace {

void worker_main(const std::shared_ptr<ControlServer::Shared>& shared);

}  // namespace

void ControlServer::Shared::submit(const std::shared_ptr<Shared>& self, Job job) {
  uint32_t uid = job.uid;
  ++waiting[uid];
  jobs.push_back(std::move(job));
  if (idle == 0 && (workers < kMaxWorkers || uid == 0 || uid == kMaintenanceUid)) {
    ++workers;
    std::thread(worker_main, self).detach();
  }
  work.notify_all();
}

namespace {

void worker_main(const std::shared_ptr<ControlServer::Shared>& shared) {
  auto& s = *shared;
  std::unique_lock lock(s.mutex);
  for (;;) {
    auto it = std::find_if(s.jobs.begin(), s.jobs.end(), [&s](const ControlServer::Job& job) {
      return s.running[job.uid] < s.running_limit(job.uid);
    });
    if (it != s.jobs.end()) {
      ControlServer::Job job = std::move(*it);
      s.jobs.erase(it);
      if (--s.waiting[job.uid] == 0) s.waiting.erase(job.uid);
      ++s.running[job.uid];
      ++s.running_total;
      lock.unlock();
      try {
        job.run();
      } catch (...) {
        // Jobs catch their own errors; nothing may end a worker.
      }
      lock.lock();
      if (--s.running[job.uid] == 0) s.running.erase(job.uid);
      --s.running_total;
      s.work.notify_all();
      s.quiet.notify_all();
      s.wake();  // the uid may be read from again
      continue;
    }
    if (s.stopping) break;
    ++s.idle;
    bool timed_out =
        s.work.wait_for(lock, std::chrono::seconds(kWorkerIdleSeconds)) == std::cv_status::timeout;
    --s.idle;
    if (timed_out && s.workers > kMinWorkers && s.jobs.empty()) break;
  }
  --s.workers;
}

// Makes closing `fd` quick where it can be: a socket with a linger time
// would wait for its unsent data; SO_LINGER 0 drops it.
void defuse(int fd) {
  dev_t dev = 0;
  ino_t ino = 0;
  uint16_t type = 0;
  if (identify(fd, dev, ino, &type) && type == S_IFSOCK) {
    linger now{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
  }
}

// Closes a descriptor a client sent (a worker). Closing any descriptor of
// the region drops this process's POSIX lock on it (fs/region/region.cpp):
// when a client sent the region itself, take the lock again at once.
void close_received(ControlServer::Shared& s, int fd) {
  dev_t dev = 0;
  ino_t ino = 0;
  bool is_region = identify(fd, dev, ino) && dev == s.region_dev && ino == s.region_ino;
  defuse(fd);
  ::close(fd);
  if (!is_region) return;
  std::lock_guard lock(s.mutex);
  if (s.stopping) return;
  struct flock want {};
  want.l_type = s.region_read_only ? F_RDLCK : F_WRLCK;
  want.l_whence = SEEK_SET;
  if (::fcntl(s.region_fd, F_SETLK, &want) != 0) {
    // Another process may hold the region now (fsck -y, a second daemon):
    // serving on would let two writers share it. Stop at once; the region
    // is crash consistent and the next mount recovers it.
    s.log("a client sent the region's own descriptor; re-taking the region lock failed: " +
          errno_text(errno) + "; stopping the daemon");
    ::_exit(1);
  }
  s.log("a client sent the region's own descriptor; the region lock was re-taken");
}

// Receives one message without blocking and without releasing anything:
// room for every descriptor a message can carry. Returns the bytes read
// (0: the peer closed), -1 with errno (EAGAIN: nothing yet). `truncated`:
// the message was longer than `bytes`.
ssize_t receive_all(int socket, std::vector<std::byte>& bytes, std::vector<int>& fds, bool& truncated) {
  iovec iov{bytes.data(), bytes.size()};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptorsPerMessage)];
  header.msg_control = control;
  header.msg_controllen = sizeof control;
  ssize_t got;
  do {
    got = ::recvmsg(socket, &header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return -1;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&header); cmsg != nullptr; cmsg = CMSG_NXTHDR(&header, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  truncated = (header.msg_flags & MSG_TRUNC) != 0;
  if ((header.msg_flags & MSG_CTRUNC) != 0) {
    // Only when this process is out of descriptors: the kernel dropped the
    // rest. Count it as a failure of the connection.
    errno = EMFILE;
    return -1;
  }
  return got;
}

// Sends `bytes` (a Reply and its payload) as one message or, when longer
// than `chunk`, as a first message of `chunk` bytes with the descriptor and
// continuation messages; waits for room until `deadline`. 0 or an errno.
int send_reply_bytes(int socket, const std::string& bytes, int fd, size_t chunk, Clock::time_point deadline) {
  size_t offset = 0;
  bool first = true;
  while (first || offset < bytes.size()) {
    size_t length = std::min(chunk, bytes.size() - offset);
    int err = send_message(socket, bytes.data() + offset, length, first ? fd : -1);
    if (err == EAGAIN || err == EWOULDBLOCK) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return ETIMEDOUT;
      pollfd entry{socket, POLLOUT, 0};
      ::poll(&entry, 1, static_cast<int>(left));
      continue;
    }
    if (err != 0) return err;
    offset += length;
    first = false;
  }
  return 0;
}

}  // namespace

// ---- Start and stop --------------------------------------------------------

std::string ControlServer::default_path(const core::Filesystem& fs) {
  format::Superblock sb = fs.superblock();
  return std::string(kDefaultSocketDirectory) + "/" + format::uuid_to_string(sb.uuid) + ".sock";
}

ControlServer::ControlServer(core::Filesystem& fs, HeldInodes& held, std::string socket_path,
                             std::string mountpoint, std::string region_path, ControlLimits limits, Log log)
    : m_fs(fs),
      m_held(held),
      m_socket_path(std::move(socket_path)),
      m_mountpoint(std::move(mountpoint)),
      m_region_path(std::move(region_path)),
      m_limits(limits),
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
  // The socket's directory: whoever may change its entries may put their
  // own socket in our place and answer our clients.
  std::string directory = std::filesystem::path(m_socket_path).parent_path().string();
  if (directory.empty()) directory = "/";
  if (directory == kDefaultSocketDirectory) {
    if (::mkdir(kDefaultSocketDirectory, 0755) != 0 && errno != EEXIST) {
      return Error::from_errno(errno, std::string("cannot create ") + kDefaultSocketDirectory);
    }
  }
  if (std::string why = unsafe_directory(directory); !why.empty()) {
    return Error(EPERM, "control socket " + m_socket_path + ": " + why +
                            "; put it in a directory only root can change (-o control=PATH)");
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
  // The mount's device, from cached attributes: FUSE requests are not
  // served yet, and a plain stat would wait for this very daemon.
  struct statx mount_root {};
  if (::statx(AT_FDCWD, m_mountpoint.c_str(), AT_STATX_DONT_SYNC, STATX_INO, &mount_root) != 0) {
    return Error::from_errno(errno, "cannot stat the mountpoint " + m_mountpoint);
  }
  m_mount_dev = makedev(mount_root.stx_dev_major, mount_root.stx_dev_minor);
  struct stat region_stat {};
  if (::fstat(m_fs.region().fd(), &region_stat) != 0)
    return Error::from_errno(errno, "cannot stat the region");

  // Descriptors clients send are held until a worker closes them: room for
  // many (the soft limit up to the hard one).
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }

  auto fail = [this](int err, const std::string& what) {
    if (m_listen_fd >= 0) ::close(m_listen_fd);
    m_listen_fd = -1;
    ::unlink(m_socket_path.c_str());
    return Error::from_errno(err, what);
  };
  m_listen_fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (m_listen_fd < 0) return Error::from_errno(errno, "control socket");
  if (::bind(m_listen_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    int err = errno;
    ::close(m_listen_fd);
    m_listen_fd = -1;
    return Error::from_errno(err, "cannot bind the control socket " + m_socket_path);
  }
  // Everyone may connect; every request is authorised on its own. chmod
  // through a descriptor of what bind made, never through a path that
  // might have become a symlink since.
  int node = ::open(m_socket_path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (node < 0) return fail(errno, "control socket " + m_socket_path);
  struct stat node_stat {};
  bool ours =
      ::fstat(node, &node_stat) == 0 && S_ISSOCK(node_stat.st_mode) && node_stat.st_uid == ::geteuid();
  int chmod_error = 0;
  if (ours && ::chmod(("/proc/self/fd/" + std::to_string(node)).c_str(), 0666) != 0) chmod_error = errno;
  ::close(node);
  if (!ours) return fail(EPERM, "control socket " + m_socket_path + " was replaced while it was made");
  if (chmod_error != 0) return fail(chmod_error, "control socket " + m_socket_path + ": chmod");
  if (::listen(m_listen_fd, 128) != 0) return fail(errno, "control socket " + m_socket_path);
  m_socket_ino = node_stat.st_ino;

  m_shared = std::make_shared<Shared>();
  m_shared->limits = m_limits;
  m_shared->log = m_log;
  m_shared->region_dev = region_stat.st_dev;
  m_shared->region_ino = region_stat.st_ino;
  m_shared->region_fd = m_fs.region().fd();
  m_shared->region_read_only = m_fs.region().read_only();
  m_shared->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m_shared->wake_fd < 0) return fail(errno, "eventfd");
  // Holders from before this mount: the stale ones go now (core released
  // those it could tell at open), the live ones are watched.
  if (auto released = m_fs.release_stale_holds(); released && *released > 0) {
    m_log("released " + std::to_string(*released) + " stale hold(s) at mount");
  }
  {
    std::lock_guard lock(m_holds_mutex);
    sync_holds();
  }
  m_next_scan = Clock::now() + std::chrono::seconds(kStaleScanSeconds);
  m_thread = std::thread([this] { run(); });
  return success();
}

void ControlServer::stop() {
  if (!m_shared || m_stopped) return;
  m_stopped = true;
  {
    std::lock_guard lock(m_shared->mutex);
    m_shared->stopping = true;
  }
  m_shared->wake();
  if (m_thread.joinable()) m_thread.join();
  std::unique_lock lock(m_shared->mutex);
  // No job enters the filesystem any more; wait for those inside it (their
  // work is bounded: no client can stall a core call).
  m_shared->quiet.wait(lock, [this] { return m_shared->in_core == 0; });
  // Jobs not started: each gets a thread (closing a client's descriptor may
  // block; a request job only answers that the daemon is stopping).
  for (Job& job : m_shared->jobs) {
    ++m_shared->running_total;
    std::thread([shared = m_shared, run = std::move(job.run)] {
      try {
        run();
      } catch (...) {
      }
      std::lock_guard done(shared->mutex);
      --shared->running_total;
      shared->quiet.notify_all();
    }).detach();
  }
  m_shared->jobs.clear();
  m_shared->waiting.clear();
  m_shared->work.notify_all();
  m_shared->quiet.wait_for(lock, std::chrono::seconds(kStopSeconds),
                           [this] { return m_shared->running_total == 0; });
  if (m_shared->running_total > 0) {
    m_log(std::to_string(m_shared->running_total) +
          " control job(s) still wait on a client's descriptor; leaving them behind");
  }
  lock.unlock();
  if (m_listen_fd >= 0) {
    ::close(m_listen_fd);
    m_listen_fd = -1;
    // Only our own socket: a later daemon may have replaced it.
    struct stat st {};
    if (::lstat(m_socket_path.c_str(), &st) == 0 && st.st_ino == m_socket_ino)
      ::unlink(m_socket_path.c_str());
  }
  std::lock_guard holds(m_holds_mutex);
  m_pidfds.clear();
}

size_t ControlServer::abandoned_workers() const {
  if (!m_shared) return 0;
  std::lock_guard lock(m_shared->mutex);
  return m_shared->running_total;
}

// ---- The loop -------------------------------------------------------------

void ControlServer::run() {
  // The loop's copy of m_pidfds; sharing the descriptors keeps them open
  // while it polls them.
  std::vector<std::pair<std::pair<uint32_t, uint64_t>, std::shared_ptr<PidFd>>> watched;
  uint64_t watched_version = UINT64_MAX;
  for (;;) {
    std::vector<std::shared_ptr<Connection>> finished;
    {
      std::lock_guard lock(m_shared->mutex);
      if (m_shared->stopping) break;
      finished.swap(m_shared->finished);
    }
    for (const auto& connection : finished) {
      connection->busy = false;
      if (connection->close_after || connection->requests >= m_limits.requests_per_connection ||
          Clock::now() >= connection->deadline) {
        dispose(connection);
      }
    }
    // The pidfds: a copy, refreshed when a worker changed them (never
    // waiting for a worker that holds the lock).
    {
      std::unique_lock lock(m_holds_mutex, std::try_to_lock);
      if (lock.owns_lock() && watched_version != m_pidfds_version) {
        watched.assign(m_pidfds.begin(), m_pidfds.end());
        watched_version = m_pidfds_version;
      }
    }
    std::vector<pollfd> fds;
    std::vector<std::shared_ptr<Connection>> polled;
    fds.push_back({m_shared->wake_fd, POLLIN, 0});
    fds.push_back({m_listen_fd, POLLIN, 0});
    auto wake_at = m_next_scan;
    bool maintaining = false;
    {
      std::lock_guard lock(m_shared->mutex);
      // An exited holder's pidfd stays readable until the maintenance job
      // has released its holds: not polled meanwhile, or the loop spins.
      maintaining = m_shared->maintenance_queued;
      for (auto& [fd, connection] : m_connections) {
        if (connection->busy) continue;
        wake_at = std::min(wake_at, connection->deadline);
        if (m_shared->parked(connection->peer.uid)) continue;
        fds.push_back({fd, POLLIN, 0});
        polled.push_back(connection);
      }
    }
    size_t first_pidfd = fds.size();
    if (!maintaining) {
      for (const auto& [holder, pidfd] : watched) fds.push_back({pidfd->get(), POLLIN, 0});
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - Clock::now()).count();
    int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(wait + 1, 0, 60000)));
    if (ready < 0 && errno != EINTR) {
      m_log("control socket: poll: " + errno_text(errno));
      ::usleep(10000);
      continue;
    }
    if (fds[0].revents != 0) {
      uint64_t count;
      while (::read(m_shared->wake_fd, &count, sizeof count) > 0) {
      }
    }
    std::vector<std::pair<uint32_t, uint64_t>> exited;
    for (size_t i = first_pidfd; i < fds.size(); ++i) {
      if (fds[i].revents != 0) exited.push_back(watched[i - first_pidfd].first);
    }
    if (fds[1].revents != 0) accept_all();
    for (size_t i = 2; i < first_pidfd; ++i) {
      if (fds[i].revents != 0) read_request(polled[i - 2]);
    }
    // Deadlines of idle connections.
    auto now = Clock::now();
    std::vector<std::shared_ptr<Connection>> expired;
    for (auto& [fd, connection] : m_connections) {
      if (!connection->busy && now >= connection->deadline) expired.push_back(connection);
    }
    for (const auto& connection : expired) dispose(connection);
    bool scan = now >= m_next_scan;
    if (scan) m_next_scan = now + std::chrono::seconds(kStaleScanSeconds);
    if (scan || !exited.empty()) {
      std::lock_guard lock(m_shared->mutex);
      if (!m_shared->maintenance_queued) {
        m_shared->maintenance_queued = true;
        m_shared->submit(m_shared, Job{kMaintenanceUid, [this, shared = m_shared, exited = std::move(exited),
                                                         scan] { maintain(shared, exited, scan); }});
      }
    }
  }
  // Stopping: idle connections go now; busy ones go with their job.
  std::vector<std::shared_ptr<Connection>> idle;
  for (auto& [fd, connection] : m_connections) {
    if (!connection->busy) idle.push_back(connection);
  }
  for (const auto& connection : idle) dispose(connection);
}

void ControlServer::accept_all() {
  for (;;) {
    int fd = ::accept4(m_listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) m_log("control socket: accept: " + errno_text(errno));
      return;
    }
    auto connection = std::make_shared<Connection>();
    connection->fd = fd;
    connection->peer = Peer::identify(fd);
    connection->deadline = Clock::now() + std::chrono::seconds(m_limits.connection_seconds);
    m_connections.emplace(fd, connection);
    uint32_t uid = connection->peer.uid;
    uint32_t count = ++m_connections_per_uid[uid];
    uint32_t uid_limit = uid == 0 ? kRootConnections : m_limits.connections_per_uid;
    if (count > uid_limit || (uid != 0 && m_connections.size() > m_limits.connections)) {
      dispose(connection);
      continue;
    }
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSendBufferBytes, sizeof kSendBufferBytes) != 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSendBufferBytes, sizeof kSendBufferBytes);
    }
  }
}

void ControlServer::dispose(const std::shared_ptr<Connection>& connection) {
  int fd = connection->fd;
  if (fd < 0) return;
  // Nothing more can be queued once it is shut down; what is queued is
  // taken (descriptors installed, not released) and handed to workers, so
  // the close below releases nothing a client chose.
  ::shutdown(fd, SHUT_RDWR);
  std::vector<std::byte> bytes(kMaxRequestBytes);
  for (;;) {
    std::vector<int> fds;
    bool truncated = false;
    ssize_t got = receive_all(fd, bytes, fds, truncated);
    for (int received : fds) close_later(connection->peer.uid, received);
    if (got <= 0 && fds.empty()) break;
  }
  ::close(fd);
  connection->fd = -1;
  m_connections.erase(fd);
  if (auto it = m_connections_per_uid.find(connection->peer.uid); it != m_connections_per_uid.end()) {
    if (--it->second == 0) m_connections_per_uid.erase(it);
  }
}

void ControlServer::close_later(uint32_t uid, int fd) {
  defuse(fd);
  std::lock_guard lock(m_shared->mutex);
  m_shared->submit(m_shared, Job{uid, [shared = m_shared, fd] { close_received(*shared, fd); }});
}

void ControlServer::read_request(const std::shared_ptr<Connection>& connection) {
  // One byte more than the largest request, to tell an oversized one.
  std::vector<std::byte> bytes(kMaxRequestBytes + 1);
  std::vector<int> fds;
  bool truncated = false;
  ssize_t got = receive_all(connection->fd, bytes, fds, truncated);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && fds.empty()) return;
  uint32_t uid = connection->peer.uid;
  if (got <= 0) {
    for (int fd : fds) close_later(uid, fd);
    dispose(connection);
    return;
  }
  Message message;
  message.bytes.assign(bytes.begin(),
                       bytes.begin() + std::min<ssize_t>(got, static_cast<ssize_t>(bytes.size())));
  if (truncated) message.bytes.resize(kMaxRequestBytes + 1);
  message.fd = fds.empty() ? -1 : fds.front();
  for (size_t i = 1; i < fds.size(); ++i) close_later(uid, fds[i]);
  Request request;
  std::string error;
  int status = parse_request(message, request, error);
  if (status == 0 && fds.size() > 1) {
    status = EINVAL;
    error = "a request carries one descriptor at most, not " + std::to_string(fds.size());
  }
  ++connection->requests;
  connection->busy = true;
  std::lock_guard lock(m_shared->mutex);
  m_shared->submit(
      m_shared,
      Job{uid, [this, shared = m_shared, connection, request, status, error, fd = message.fd] {
            if (status == 0) {
              serve(shared, connection, request, fd);
              return;
            }
            // Refused before any work: reply with why.
            Reply reply;
            reply.op = request.op;
            reply.status = static_cast<uint32_t>(status);
            reply.payload_bytes = error.size();
            std::string out(reinterpret_cast<const char*>(&reply), sizeof reply);
            out += error;
            if (fd >= 0) close_received(*shared, fd);
            if (send_reply_bytes(connection->fd, out, -1, kMaxMessageBytes, connection->deadline) != 0) {
              connection->close_after = true;
            }
            // Protocol errors end the connection.
            if (status == EPROTO) connection->close_after = true;
            finish_job(*shared, connection);
          }});
}

// ---- Jobs ------------------------------------------------------------------

// A request job is done with its connection: the loop takes it back, or,
// once the daemon is stopping and the loop gone, the job closes it (here a
// close may wait: this is a worker).
void ControlServer::finish_job(Shared& shared, const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(shared.mutex);
  if (shared.stopping) {
    ::shutdown(connection->fd, SHUT_RDWR);
    ::close(connection->fd);
    connection->fd = -1;
  } else {
    shared.finished.push_back(connection);
  }
  shared.wake();
}

// Runs on a worker; after stop() the server may be gone, so nothing of it is
// touched outside enter_core()/leave_core().
void ControlServer::serve(const std::shared_ptr<Shared>& shared,
                          const std::shared_ptr<Connection>& connection, const Request& request, int fd) {
  std::string payload;
  int reply_fd = -1;
  int status;
  if (!shared->enter_core()) {
    status = ESHUTDOWN;
    payload = "the pkfs daemon is stopping";
  } else {
    try {
      status = handle(*connection, request, fd, payload, reply_fd);
    } catch (const std::bad_alloc&) {
      status = ENOMEM;
      payload = "out of memory";
    } catch (const std::exception& e) {
      status = EIO;
      payload = e.what();
    }
    shared->leave_core();
  }
  Reply reply;
  reply.op = request.op;
  reply.status = static_cast<uint32_t>(status);
  reply.payload_bytes = payload.size();
  std::string bytes(reinterpret_cast<const char*>(&reply), sizeof reply);
  bytes += payload;
  int sent = send_reply_bytes(connection->fd, bytes, status == 0 ? reply_fd : -1, kMaxMessageBytes,
                              connection->deadline);
  if (sent != 0) {
    connection->close_after = true;
    // The client never learns of a hold it was not told about: give it back.
    if (status == 0 &&
        (static_cast<Op>(request.op) == Op::kMap || static_cast<Op>(request.op) == Op::kHold) &&
        payload.size() >= sizeof(MapReply) && shared->enter_core()) {
      MapReply head;
      std::memcpy(&head, payload.data(), sizeof head);
      std::lock_guard holds(m_holds_mutex);
      if (m_fs.release_hold(head.hold_id)) {
        m_log("hold " + std::to_string(head.hold_id) + ": the reply did not reach pid " +
              std::to_string(connection->peer.pid) + "; released");
        sync_holds();
      }
      shared->leave_core();
    }
  }
  // After the reply: closing the client's file may take a while (its
  // FLUSH goes through this mount's own FUSE threads).
  if (fd >= 0) close_received(*shared, fd);
  finish_job(*shared, connection);
}

void ControlServer::maintain(const std::shared_ptr<Shared>& shared,
                             const std::vector<std::pair<uint32_t, uint64_t>>& exited, bool scan) {
  if (shared->enter_core()) {
    std::lock_guard holds(m_holds_mutex);
    for (const auto& holder : exited) holder_exited(holder);
    if (scan) {
      if (auto released = m_fs.release_stale_holds(); released && *released > 0) {
        m_log("released " + std::to_string(*released) + " stale hold(s)");
      }
    }
    sync_holds();
    shared->leave_core();
  }
  std::lock_guard lock(shared->mutex);
  shared->maintenance_queued = false;
}

int ControlServer::handle(const Connection& connection, const Request& request, int fd, std::string& payload,
                          int& reply_fd) {
  switch (static_cast<Op>(request.op)) {
    case Op::kMap: return handle_map(connection, request.arg0, fd, payload, reply_fd);
    case Op::kHold: {
      // A VMM that opens the region by its path (QEMU's memory-backend-file
      // with offset=) must pass every check a mapping client passes (the
      // kernel checks its open of the region again); it gets no descriptor.
      int unused = -1;
      return handle_map(connection, request.arg0, fd, payload, unused, false);
    }
    case Op::kStat: return handle_stat(connection, fd, payload);
    case Op::kRelease: return handle_release(connection, request.flags, request.arg0, request.arg1, payload);
    case Op::kHolds: return handle_holds(connection, payload);
    case Op::kInfo: return handle_info(connection, payload);
  }
  payload = "unknown request " + std::to_string(request.op);
  return EOPNOTSUPP;
}

int ControlServer::file_of(int fd, core::Ino& ino, std::string& message) {
  if (fd < 0) {
    message = "the request carries no file descriptor";
    return EBADF;
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

bool ControlServer::may_access_region(const Connection& connection, bool write, std::string& message) {
  Access access = write ? Access::kReadWrite : Access::kRead;
  if (may_access_fd(connection.peer, m_fs.region().fd(), access)) return true;
  struct stat st {};
  ::fstat(m_fs.region().fd(), &st);
  message = describe_denial(connection.peer, "the region " + m_region_path, st.st_mode, st.st_uid, st.st_gid,
                            access);
  return false;
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

int ControlServer::handle_map(const Connection& connection, uint64_t access, int fd, std::string& payload,
                              int& reply_fd, bool send_region) {
  const Peer& peer = connection.peer;
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
  // A hold acts for a process: it must be the one that connected, alive.
  if (!peer.known() || !peer.alive()) {
    payload = peer.known() ? "the process that connected (pid " + std::to_string(peer.pid) + ") has exited"
                           : peer.unknown_reason();
    return ESRCH;
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
  // A hold keeps the owner from shrinking or punching the file and defers
  // freeing it: only a caller who may change the file may hold it, even for
  // a read-only mapping. Nothing is allocated or moved for anyone else.
  if (!may_access(peer, attr->mode, attr->uid, attr->gid, Access::kReadWrite)) {
    payload =
        describe_denial(peer, "inode " + std::to_string(ino), attr->mode, attr->uid, attr->gid,
                        Access::kReadWrite) +
        "; a direct mapping holds the file, which needs write permission on it; read it through the mount";
    return EACCES;
  }
  if (write && m_fs.region().read_only()) {
    payload = "the filesystem is mounted read-only";
    return EROFS;
  }
  // The descriptor a mapping needs reaches the whole region, every file's
  // bytes and the metadata: only a caller that could open the region itself
  // with that access gets it (root, or by the region's owner, group, mode
  // and ACL: give the VMMs' group access to the region file or device).
  if (!may_access_region(connection, write, payload)) {
    payload += ", and a direct mapping needs a descriptor of the whole region; use the mount instead";
    return EACCES;
  }
  // kHold sends no descriptor but needs one all the same: a region without
  // a backing file (memory) cannot be opened by a VMM either.
  int region_fd = m_fs.region().shared_fd(write ? region::Access::kReadWrite : region::Access::kReadOnly);
  if (region_fd < 0) {
    payload = "this region cannot be mapped by clients (no backing descriptor)";
    return ENOTSUP;
  }
  std::lock_guard holds(m_holds_mutex);
  auto id = m_fs.acquire_hold(ino, core::Holder{peer.pid, peer.uid, peer.start_ticks},
                              core::HoldLimits{m_limits.holds_per_process, m_limits.holds_per_uid});
  if (!id) {
    payload = id.error().message();
    if (id.error().code() == EDQUOT)
      payload += " (the daemon's -o max_holds_per_process / max_holds_per_uid)";
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
  if (send_region) reply_fd = region_fd;
  m_log("hold " + std::to_string(*id) + ": pid " + std::to_string(peer.pid) + " (uid " +
        std::to_string(peer.uid) + (send_region ? ") maps inode " : ") holds inode ") + std::to_string(ino) +
        (write ? " read-write" : " read-only") +
        (send_region ? "" : " (for a VMM that maps the region itself)"));
  sync_holds();
  return 0;
}

int ControlServer::handle_stat(const Connection& connection, int fd, std::string& payload) {
  core::Ino ino = 0;
  if (int err = file_of(fd, ino, payload); err != 0) return err;
  // The extents say where a file's bytes are: only for a caller who may
  // read the file, shown by a descriptor open for reading.
  int mode = ::fcntl(fd, F_GETFL);
  if (mode < 0 || (mode & O_PATH) != 0 || (mode & O_ACCMODE) == O_WRONLY) {
    payload = "the file must be opened for reading (not O_PATH or O_WRONLY)";
    return EBADF;
  }
  auto attr = m_fs.getattr(ino);
  auto extents = m_fs.extents(ino);
  if (!attr || !extents) {
    const Error& error = !attr ? attr.error() : extents.error();
    payload = error.message();
    return error.code();
  }
  if (!may_access(connection.peer, attr->mode, attr->uid, attr->gid, Access::kRead)) {
    payload = describe_denial(connection.peer, "inode " + std::to_string(ino), attr->mode, attr->uid,
                              attr->gid, Access::kRead);
    return EACCES;
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
  if (payload.size() > kMaxReplyBytes) {
    payload = "inode " + std::to_string(ino) + " has " + std::to_string(records.size()) +
              " extents, more than one reply carries";
    return EFBIG;
  }
  return 0;
}

int ControlServer::handle_release(const Connection& connection, uint32_t flags, uint64_t id, uint64_t ino,
                                  std::string& payload) {
  const Peer& peer = connection.peer;
  std::lock_guard lock(m_holds_mutex);
  auto holds = m_fs.list_holds();
  if (!holds) {
    payload = holds.error().message();
    return holds.error().code();
  }
  auto it = std::find_if(holds->begin(), holds->end(), [id](const core::HoldInfo& h) { return h.id == id; });
  if (it == holds->end() || (ino != 0 && it->ino != ino)) {
    payload = "no such hold " + std::to_string(id) + (ino != 0 ? " on inode " + std::to_string(ino) : "");
    return ENOENT;
  }
  const core::HoldInfo hold = *it;
  // The holder is the process that connected, identified by its pidfd: a
  // pid number reused since cannot pass for it.
  bool is_holder = peer.known() && hold.holder.pid == peer.pid && hold.holder.start_ticks == peer.start_ticks;
  if ((flags & kReleaseOwnHold) != 0 && !is_holder) {
    payload = "hold " + std::to_string(id) + " is not held by pid " + std::to_string(peer.pid) +
              (peer.known() ? "" : " (" + peer.unknown_reason() + ")");
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

int ControlServer::handle_holds(const Connection& connection, std::string& payload) {
  auto holds = m_fs.list_holds();
  if (!holds) {
    payload = holds.error().message();
    return holds.error().code();
  }
  // Who holds what (pids, uids, inodes) is for root and for those who may
  // read the region anyway; anyone else sees only their own uid's holds.
  std::string ignored;
  bool everything = may_access_region(connection, false, ignored);
  std::vector<std::byte> bytes;
  for (const core::HoldInfo& h : *holds) {
    if (!everything && h.holder.uid != connection.peer.uid) continue;
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

int ControlServer::handle_info(const Connection& connection, std::string& payload) {
  // The superblock, usage and the daemon's pid are for root and for those
  // who may read the region (and so all of this) anyway.
  if (!may_access_region(connection, false, payload)) {
    payload += "; the daemon's information is for those who may read the region";
    return EACCES;
  }
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
  // Watch new holders; forget those that hold nothing any more. The loop
  // polls its own copy, taken when m_pidfds_version changes.
  bool changed = false;
  std::vector<std::pair<uint32_t, uint64_t>> gone;
  for (auto it = m_pidfds.begin(); it != m_pidfds.end();) {
    if (!holders.contains(it->first)) {
      it = m_pidfds.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  for (const auto& holder : holders) {
    if (m_pidfds.contains(holder)) continue;
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(holder.first), 0));
    if (pidfd >= 0) {
      // Opened after the check: make sure the pid was not recycled first.
      if (holder_alive(core::Holder{holder.first, 0, holder.second})) {
        m_pidfds.emplace(holder, std::make_shared<PidFd>(pidfd));
        changed = true;
        continue;
      }
      ::close(pidfd);
    }
    gone.push_back(holder);
  }
  if (changed) {
    ++m_pidfds_version;
    if (m_shared) m_shared->wake();
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
  if (released_any) sync_holds();
}

}  // namespace pkfs::fuse
