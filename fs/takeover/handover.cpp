// fs/takeover/handover.cpp: the hand-over socket (both ends) and the keeper
// (see handover.h; the conversation is described in protocol.h).
#include "fs/takeover/handover.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pkfs::takeover {
namespace {

uint64_t fnv1a64(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::string hash_of(const std::string& mountpoint) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(fnv1a64(mountpoint)));
  return text;
}

template <size_t N>
void copy_message(char (&field)[N], const std::string& text) {
  std::snprintf(field, N, "%s", text.c_str());
}

template <size_t N>
std::string text_of(const char (&field)[N]) {
  return std::string(field, strnlen(field, N));
}

void set_timeout(int fd, int seconds) {
  timeval tv{};
  tv.tv_sec = seconds;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly `size` bytes; with `fd_out`, takes a descriptor sent with
// them (SCM_RIGHTS).
bool read_all(int fd, void* data, size_t size, int* fd_out = nullptr) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    iovec iov{p, size};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd_out != nullptr) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
    }
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (fd_out != nullptr) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
          std::memcpy(fd_out, CMSG_DATA(c), sizeof(int));
      }
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool send_with_fd(int sock, const void* data, size_t size, int fd) {
  iovec iov{const_cast<void*>(data), size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return false;
  if (static_cast<size_t>(n) < size) return write_all(sock, static_cast<const char*>(data) + n, size - n);
  return true;
}

Result<void> ensure_run_dir() {
  if (::mkdir("/run/pkfs", 0755) != 0 && errno != EEXIST)
    return Error(errno, "/run/pkfs: " + errno_text(errno));
  if (::mkdir(kRunDir, 0700) != 0 && errno != EEXIST)
    return Error(errno, std::string(kRunDir) + ": " + errno_text(errno));
  // Whoever controls the directory could put a socket of theirs where a
  // successor looks for the daemon: it must be ours and closed to others.
  struct stat st {};
  if (::lstat(kRunDir, &st) != 0) return Error(errno, std::string(kRunDir) + ": " + errno_text(errno));
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    return Error(EPERM, std::string(kRunDir) + " must be a directory of uid " + std::to_string(::geteuid()) +
                            " with mode 0700");
  }
  return success();
}

Result<int> bind_socket(const std::string& path) {
  TRY(ensure_run_dir());
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Error(ENAMETOOLONG, path + ": socket path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(errno, "socket: " + errno_text(errno));
  // Whoever had the path before us (a predecessor, dead or handing over)
  // keeps its own socket; the path now leads here.
  ::unlink(path.c_str());
  mode_t old_mask = ::umask(0177);
  int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0 || ::listen(fd, 8) != 0) {
    int code = bound != 0 ? bind_errno : errno;
    ::close(fd);
    return Error(code, path + ": " + errno_text(code));
  }
  return fd;
}

// The caller's uid, or -1 when unknown.
long peer_uid(int fd) {
  ucred cred{};
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return -1;
  return static_cast<long>(cred.uid);
}

void refuse(int client, int code, const std::string& message) {
  Answer answer;
  answer.status = code;
  answer.pid = static_cast<uint32_t>(::getpid());
  copy_message(answer.message, message);
  write_all(client, &answer, sizeof answer);
}

// Reads and checks a Hello; refuses (and returns nothing) what this end
// does not serve.
std::optional<Hello> read_hello(int client, const char* who) {
  long uid = peer_uid(client);
  if (uid != 0 && uid != static_cast<long>(::geteuid())) {
    refuse(client, EPERM,
           "only root or the owner of the mount (uid " + std::to_string(::geteuid()) + ") may take it over");
    return std::nullopt;
  }
  Hello hello;
  set_timeout(client, 5);
  if (!read_all(client, &hello, sizeof hello)) return std::nullopt;
  if (hello.magic != kMagic) {
    refuse(client, EPROTO, "not a pkfs hand-over request");
    return std::nullopt;
  }
  if (hello.version != kVersion) {
    refuse(client, EPROTONOSUPPORT,
           "incompatible hand-over protocol version " + std::to_string(hello.version) + " (" + who +
               " speaks " + std::to_string(kVersion) + ")");
    return std::nullopt;
  }
  return hello;
}

std::string pid_text(uint32_t pid) { return "pid " + std::to_string(pid); }

}  // namespace

std::string socket_path(const std::string& mountpoint, const char* kind) {
  return std::string(kRunDir) + "/" + hash_of(mountpoint) + "." + kind;
}

Result<void> set_param(char* field, size_t size, const std::string& value, const char* what) {
  if (value.size() >= size)
    return Error(ENAMETOOLONG, std::string(what) + " is too long to hand over: " + value);
  std::memset(field, 0, size);
  value.copy(field, value.size());  // NUL-terminated: the field was zeroed and is longer
  return success();
}

// ---- successor ------------------------------------------------------------

Result<Incoming> request(const std::string& mountpoint, const std::string& binary_version) {
  for (Ask ask : {Ask::kHandover, Ask::kKeeper}) {
    std::string path = socket_path(mountpoint, ask == Ask::kHandover ? "handover" : "keeper");
    const char* who = ask == Ask::kHandover ? "the daemon" : "the keeper";
    int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return Error(errno, "socket: " + errno_text(errno));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    if (::connect(sock, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      int code = errno;
      ::close(sock);
      if (code == ENOENT || code == ECONNREFUSED) continue;  // nobody there: the next one
      if (code == EACCES || code == EPERM) {
        return Error(EPERM, "permission denied: only root or the owner of the mount may take over " +
                                mountpoint + " (" + path + ")");
      }
      return Error(code, path + ": " + errno_text(code));
    }
    // The old daemon finishes its requests and marks the region clean
    // before it answers; generous, but bounded.
    set_timeout(sock, 60);
    Hello hello;
    hello.ask = ask;
    hello.pid = static_cast<uint32_t>(::getpid());
    std::snprintf(hello.binary_version, sizeof hello.binary_version, "%s", binary_version.c_str());
#ifdef PKFS_TEST_HOOKS  // builds with tests only (CMakeLists.txt): a foreign successor
    // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing sets the environment
    if (const char* version = std::getenv("PKFS_TAKEOVER_TEST_VERSION")) {
      hello.version = static_cast<uint32_t>(std::strtoul(version, nullptr, 10));
    }
#endif
    std::unique_ptr<Answer> answer = std::make_unique<Answer>();
    int fd = -1;
    if (!write_all(sock, &hello, sizeof hello) || !read_all(sock, answer.get(), sizeof *answer, &fd)) {
      int code = errno;
      ::close(sock);
      if (fd >= 0) ::close(fd);
      return Error(code != 0 ? code : EPROTO, std::string(who) + " at " + path + " did not answer");
    }
    std::string from = std::string(who) + " (" + pid_text(answer->pid) + ")";
    if (answer->magic != kMagic) {
      ::close(sock);
      if (fd >= 0) ::close(fd);
      return Error(EPROTO, from + " sent something that is not a hand-over answer");
    }
    if (answer->status != 0) {
      ::close(sock);
      if (fd >= 0) ::close(fd);
      return Error(answer->status, from + " refuses: " + text_of(answer->message));
    }
    if (fd < 0) {
      ::close(sock);
      return Error(EPROTO, from + " sent no descriptor");
    }
    Incoming incoming;
    incoming.fd = fd;
    incoming.params = answer->params;
    incoming.from = static_cast<pid_t>(answer->pid);
    incoming.source = from;
    incoming.mode = ask == Ask::kHandover ? core::Takeover::kExact : core::Takeover::kUnknown;
    for (uint64_t i = 0; i < answer->records; ++i) {
      Reference record;
      if (!read_all(sock, &record, sizeof record)) {
        ::close(sock);
        ::close(fd);
        return Error(EPROTO, from + " broke off while sending references");
      }
      incoming.references.push_back(
          {record.ino, record.generation, record.open_count, record.references, record.pinned != 0});
    }
    if (ask == Ask::kHandover) {
      incoming.channel = sock;
    } else {
      ::close(sock);
    }
    return incoming;
  }
  return Error(ENOENT, "no pkfs daemon serves " + mountpoint +
                           " and no keeper holds its connection (was it mounted with -o keeper?)");
}

void send_verdict(Incoming& incoming, int status, const std::string& message) {
  if (incoming.channel < 0) return;
  Verdict verdict;
  verdict.status = status;
  copy_message(verdict.message, message);
  write_all(incoming.channel, &verdict, sizeof verdict);
  ::close(incoming.channel);
  incoming.channel = -1;
}

// ---- daemon ---------------------------------------------------------------

Result<std::unique_ptr<Listener>> Listener::start(const std::string& mountpoint, Connection& connection,
                                                  Log log) {
  std::unique_ptr<Listener> listener(new Listener(connection, std::move(log)));
  listener->m_path = socket_path(mountpoint, "handover");
  TRY_ASSIGN(int listen_fd, bind_socket(listener->m_path));
  listener->m_listen_fd.reset(listen_fd);
  listener->m_stop_fd.reset(::eventfd(0, EFD_CLOEXEC));
  Listener* self = listener.get();
  listener->m_thread = std::thread([self] { self->run(); });
  return listener;
}

Listener::~Listener() {
  if (m_thread.joinable()) {
    uint64_t one = 1;
    if (::write(m_stop_fd.get(), &one, sizeof one) < 0) {
      // An eventfd write of 1 cannot fail here.
    }
    m_thread.join();
  }
  m_listen_fd.reset();
  m_stop_fd.reset();
  // Only our own socket: after a hand-over the path is the successor's.
  if (!m_path.empty()) ::unlink(m_path.c_str());
  std::lock_guard lock(m_mutex);
  if (m_pending) ::close(*m_pending);
}

void Listener::run() {
  for (;;) {
    pollfd fds[2] = {{m_listen_fd.get(), POLLIN, 0}, {m_stop_fd.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int client = ::accept4(m_listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    handle(client);
  }
}

void Listener::handle(int client) {
  auto hello = read_hello(client, "this daemon");
  if (!hello) {
    ::close(client);
    return;
  }
  if (hello->ask != Ask::kHandover) {
    refuse(client, EINVAL, "this is a daemon's hand-over socket, not a keeper's");
    ::close(client);
    return;
  }
  std::lock_guard lock(m_mutex);
  if (m_busy) {
    refuse(client, EBUSY,
           "another successor (" + pid_text(m_busy_pid) +
               ") is taking over this mount; try again when it is done");
    ::close(client);
    return;
  }
  m_busy = true;
  m_busy_pid = hello->pid;
  m_pending = client;
  m_log("hand-over requested by " + pid_text(hello->pid) + " (pkfs " +
        std::string(hello->binary_version, strnlen(hello->binary_version, sizeof hello->binary_version)) +
        ")");
  m_connection.wake();
}

std::optional<int> Listener::take() {
  std::lock_guard lock(m_mutex);
  std::optional<int> pending = m_pending;
  m_pending.reset();
  return pending;
}

bool Listener::hand_over(
    int channel, const Params& params,
    const std::function<Result<std::vector<core::InheritedReferences>>()>& let_go,
    const std::function<Result<void>(const std::vector<core::InheritedReferences>&)>& resume) {
  auto started = std::chrono::steady_clock::now();
  auto done = [this] {
    std::lock_guard lock(m_mutex);
    m_busy = false;
  };
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point from) {
    return std::chrono::duration<double, std::milli>(Clock::now() - from).count();
  };
  m_connection.quiesce();
  double quiesced_ms = ms_since(started);
  auto released = let_go();
  double released_ms = ms_since(started);
  if (!released) {
    refuse(channel, released.error().code(), "the daemon could not let go: " + released.error().message());
    ::close(channel);
    m_log("hand-over refused: " + released.error().message());
    auto resumed = resume({});
    if (!resumed) m_log("cannot resume: " + resumed.error().message());
    m_connection.start();
    done();
    return !resumed;
  }
  const std::vector<core::InheritedReferences>& references = released.value();
  std::unique_ptr<Answer> answer = std::make_unique<Answer>();
  answer->pid = static_cast<uint32_t>(::getpid());
  answer->params = params;
  answer->records = references.size();
  bool sent = send_with_fd(channel, answer.get(), sizeof *answer, m_connection.fd());
  for (size_t i = 0; sent && i < references.size(); ++i) {
    const core::InheritedReferences& r = references[i];
    Reference record;
    record.ino = r.ino;
    record.generation = r.generation;
    record.references = r.references;
    record.open_count = r.open_count;
    record.pinned = r.pinned ? 1 : 0;
    sent = write_all(channel, &record, sizeof record);
  }
  // The successor opens the region (journal recovery, index rebuild: well
  // under a second for 1 TiB and 100k files) and checks the connection
  // parameters before it answers. Every request waits meanwhile, so a
  // successor that stalls (stopped, traced) is given up on after a minute:
  // then the region comes back here if the successor let it go.
  set_timeout(channel, 60);
  Verdict verdict;
  bool answered = sent && read_all(channel, &verdict, sizeof verdict) && verdict.magic == kMagic;
  ::close(channel);
  double ms = ms_since(started);
  if (answered && verdict.status == 0) {
    char text[160];
    std::snprintf(text, sizeof text,
                  "%.1f ms here: %.1f to stop the workers, %.1f to close the region, %.1f for the successor",
                  ms, quiesced_ms, released_ms - quiesced_ms, ms - released_ms);
    m_log("handed the connection over (requests stalled for " + std::string(text) + ")");
    // The path is the successor's from now on (it binds it anew).
    m_path.clear();
    done();
    return true;
  }
  std::string why = !sent      ? "the successor went away before it got the connection"
                    : answered ? text_of(verdict.message)
                               : "the successor went away without a verdict";
  m_log("hand-over failed: " + why + "; resuming");
  auto resumed = resume(references);
  if (!resumed) {
    m_log("cannot resume after a failed hand-over: " + resumed.error().message());
    done();
    return true;  // nothing left to serve with
  }
  m_connection.start();
  done();
  return false;
}

// ---- keeper ---------------------------------------------------------------

Result<void> spawn_keeper(const std::string& self_exe, const std::string& mountpoint, Connection& connection,
                          const Params& params, const Log& log) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return Error(errno, "socketpair: " + errno_text(errno));
  pid_t child = ::fork();
  if (child < 0) {
    int code = errno;
    ::close(pair[0]);
    ::close(pair[1]);
    return Error(code, "fork: " + errno_text(code));
  }
  if (child == 0) {
    // Above every descriptor we move, then onto 3 and 4 (dup2 clears
    // close-on-exec).
    int params_fd = ::fcntl(pair[1], F_DUPFD_CLOEXEC, 10);
    int fuse_fd = ::fcntl(connection.fd(), F_DUPFD_CLOEXEC, 10);
    if (params_fd < 0 || fuse_fd < 0 || ::dup2(params_fd, 3) < 0 || ::dup2(fuse_fd, 4) < 0) ::_exit(127);
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    // Not even stderr: the keeper lives as long as the mount, and a caller
    // reading the daemon's output (out=$(pkfs ... 2>&1), ssh) would wait
    // for it that long. It logs to syslog.
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
    }
    const char* argv[] = {"pkfs", "--keeper", mountpoint.c_str(), nullptr};
    ::execv(self_exe.c_str(), const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(pair[1]);
  int sock = pair[0];
  auto shared = std::make_shared<Params>(params);
  shared->keeper = 1;
  connection.on_init([sock, shared, log](const InitRecord& init) {
    shared->init = init;
    if (!write_all(sock, shared.get(), sizeof *shared)) log("keeper: could not send it the connection");
    ::close(sock);
  });
  log("keeper started (pid " + std::to_string(child) + ")");
  return success();
}

int keeper_main(const std::string& mountpoint) {
  const int params_fd = 3, fuse_fd = 4;
  std::unique_ptr<Params> params = std::make_unique<Params>();
  if (!read_all(params_fd, params.get(), sizeof *params)) return 0;  // the daemon never saw INIT: gone
  ::close(params_fd);
  auto log = [](const std::string& line) { syslog(LOG_WARNING, "pkfs keeper: %s", line.c_str()); };
  std::string path = socket_path(mountpoint, "keeper");
  auto bound = bind_socket(path);
  if (!bound) {
    log(bound.error().message());
    return 1;
  }
  int listen_fd = bound.value();
  for (;;) {
    pollfd fds{listen_fd, POLLIN, 0};
    int ready = ::poll(&fds, 1, 1000);
    // Once a second, without sleeping on it (every request would wake us):
    // has the connection ended (unmount, abort)?
    pollfd conn{fuse_fd, 0, 0};
    if (::poll(&conn, 1, 0) > 0 && (conn.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) break;
    if (ready <= 0) continue;
    int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto hello = read_hello(client, "this keeper");
    if (!hello) {
      ::close(client);
      continue;
    }
    if (hello->ask == Ask::kRelease) {
      ::close(client);
      break;
    }
    if (hello->ask != Ask::kKeeper) {
      refuse(client, EINVAL, "this is a keeper's socket, not a daemon's");
      ::close(client);
      continue;
    }
    std::unique_ptr<Answer> answer = std::make_unique<Answer>();
    answer->pid = static_cast<uint32_t>(::getpid());
    answer->params = *params;
    answer->records = 0;
    if (send_with_fd(client, answer.get(), sizeof *answer, fuse_fd))
      log("handed the connection of " + mountpoint + " to pid " + std::to_string(hello->pid));
    ::close(client);
  }
  ::close(listen_fd);
  // Only our own socket (a keeper started later would have replaced it).
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) ::unlink(path.c_str());
  return 0;
}

void release_keeper(const std::string& mountpoint) {
  std::string path = socket_path(mountpoint, "keeper");
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  if (::connect(sock, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    Hello hello;
    hello.ask = Ask::kRelease;
    hello.pid = static_cast<uint32_t>(::getpid());
    write_all(sock, &hello, sizeof hello);
  }
  ::close(sock);
}

}  // namespace pkfs::takeover
