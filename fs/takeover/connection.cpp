// fs/takeover/connection.cpp: the stoppable session loop, INIT capture and
// replay, and FUSE_NOTIFY_RESEND (see connection.h).
#include "fs/takeover/connection.h"

#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace pkfs::takeover {
namespace {

// Interrupts a worker's read(2) of /dev/fuse (see connection.h).
constexpr int kKickSignal = SIGUSR2;

Connection* g_connection = nullptr;
thread_local bool t_resent = false;

void kick_handler(int /*signal*/) {}

void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = kick_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the read must end with EINTR
    sigaction(kKickSignal, &action, nullptr);
  });
}

ssize_t read_callback(int fd, void* buffer, size_t size, void* /*userdata*/) {
  return g_connection->io_read(fd, buffer, size);
}

ssize_t writev_callback(int fd, struct iovec* iov, int count, void* /*userdata*/) {
  return g_connection->io_writev(fd, iov, count);
}

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
  return text;
}

// The fields of two INIT replies that must agree for a successor to serve
// a connection negotiated by another daemon.
std::optional<std::string> init_difference(const InitRecord& theirs, const InitRecord& ours) {
  fuse_init_out a{}, b{};
  std::memcpy(&a, theirs.out, std::min<size_t>(theirs.out_bytes, sizeof a));
  std::memcpy(&b, ours.out, std::min<size_t>(ours.out_bytes, sizeof b));
  auto differ = [](const char* field, uint64_t x, uint64_t y) -> std::optional<std::string> {
    if (x == y) return std::nullopt;
    return std::string(field) + " " + hex(x) + " (agreed with the kernel) against " + hex(y) +
           " (this binary)";
  };
  uint64_t flags_a = a.flags | (uint64_t{a.flags2} << 32);
  uint64_t flags_b = b.flags | (uint64_t{b.flags2} << 32);
  if (auto d = differ("flags", flags_a, flags_b)) return d;
  if (auto d = differ("max_write", a.max_write, b.max_write)) return d;
  if (auto d = differ("max_readahead", a.max_readahead, b.max_readahead)) return d;
  if (auto d = differ("time_gran", a.time_gran, b.time_gran)) return d;
  if (auto d = differ("max_pages", a.max_pages, b.max_pages)) return d;
  if (auto d = differ("max_background", a.max_background, b.max_background)) return d;
  if (auto d = differ("protocol minor", a.minor, b.minor)) return d;
  return std::nullopt;
}

}  // namespace

bool current_request_resent() { return t_resent; }

Connection::Connection(fuse_session* session, unsigned workers, Log log)
    : m_session(session), m_worker_count(std::max(1u, workers)), m_log(std::move(log)) {
  m_wake_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

Connection::~Connection() {
  quiesce();
  if (g_connection == this) g_connection = nullptr;
}

Result<void> Connection::install_io(int fd) {
  if (m_wake_fd.get() < 0) return Error::from_errno(errno, "eventfd");
  if (g_connection != nullptr) return Error(EBUSY, "a FUSE connection is already served by this process");
  g_connection = this;
  install_kick_handler();
  fuse_custom_io io{};
  io.read = read_callback;
  io.writev = writev_callback;
  if (fuse_session_custom_io(m_session, &io, fd) != 0) {
    g_connection = nullptr;
    return Error(EIO, "fuse_session_custom_io refused the descriptor");
  }
  return success();
}

Result<std::unique_ptr<Connection>> Connection::mounted(fuse_session* session, unsigned workers, Log log) {
  std::unique_ptr<Connection> connection(new Connection(session, workers, std::move(log)));
  // The same descriptor, now through our io: what libfuse reads and
  // writes passes the callbacks, INIT and its reply included.
  TRY(connection->install_io(fuse_session_fd(session)));
  return connection;
}

Result<std::unique_ptr<Connection>> Connection::adopted(fuse_session* session, int fd, const InitRecord& init,
                                                        unsigned workers, Log log) {
  std::unique_ptr<Connection> connection(new Connection(session, workers, std::move(log)));
  TRY(connection->install_io(fd));
  if (init.in_bytes < 16 || init.in_bytes > sizeof init.in || init.out_bytes < 24)
    return Error(EPROTO, "the hand-over carries no usable FUSE_INIT record");
  // libfuse answers every request with EIO until it has processed an INIT:
  // give it the kernel's, and keep the reply from the kernel, which has
  // had its answer long ago.
  std::vector<uint8_t> request(sizeof(fuse_in_header) + sizeof init.in, 0);
  fuse_in_header header{};
  header.len = static_cast<uint32_t>(request.size());
  header.opcode = FUSE_INIT;
  header.unique = 0;
  std::memcpy(request.data(), &header, sizeof header);
  std::memcpy(request.data() + sizeof header, init.in, init.in_bytes);
  {
    std::lock_guard lock(connection->m_mutex);
    connection->m_swallow = true;
    connection->m_init = InitRecord{};
    std::memcpy(connection->m_init.in, init.in, init.in_bytes);
    connection->m_init.in_bytes = init.in_bytes;
    connection->m_init_in_seen = true;
  }
  fuse_buf buffer{};
  buffer.size = request.size();
  buffer.mem = request.data();
  fuse_session_process_buf(session, &buffer);
  InitRecord ours;
  {
    std::lock_guard lock(connection->m_mutex);
    connection->m_swallow = false;
    ours = connection->m_init;
  }
  if (ours.out_bytes == 0) return Error(EPROTO, "libfuse did not accept the handed-over FUSE_INIT");
  if (auto difference = init_difference(init, ours)) {
    return Error(EPROTO, "this binary negotiates other FUSE connection parameters than the running mount: " +
                             *difference);
  }
  {
    std::lock_guard lock(connection->m_mutex);
    // What the kernel agreed to stays the record a later successor checks.
    connection->m_init = init;
    connection->m_init_done = true;
  }
  return connection;
}

ssize_t Connection::io_read(int fd, void* buffer, size_t size) {
  ssize_t got = ::read(fd, buffer, size);
  if (got >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    const auto* header = static_cast<const fuse_in_header*>(buffer);
    if (header->opcode == FUSE_INIT) note_init(buffer, static_cast<size_t>(got));
  }
  return got;
}

void Connection::note_init(const void* request, size_t size) {
  std::lock_guard lock(m_mutex);
  if (m_init_in_seen) return;
  const auto* header = static_cast<const fuse_in_header*>(request);
  size_t bytes = std::min(size - sizeof(fuse_in_header), sizeof m_init.in);
  std::memcpy(m_init.in, static_cast<const uint8_t*>(request) + sizeof(fuse_in_header), bytes);
  m_init.in_bytes = static_cast<uint32_t>(bytes);
  m_init_unique = header->unique;
  m_init_in_seen = true;
}

ssize_t Connection::io_writev(int fd, struct iovec* iov, int count) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  bool swallow = false;
  {
    std::unique_lock lock(m_mutex, std::defer_lock);
    if (count >= 1 && iov[0].iov_len >= sizeof(fuse_out_header)) {
      const auto* header = static_cast<const fuse_out_header*>(iov[0].iov_base);
      lock.lock();
      bool init_reply = m_swallow || (m_init_in_seen && !m_init_done && header->unique == m_init_unique &&
                                      header->unique != 0);
      if (init_reply && m_init.out_bytes == 0) {
        size_t used = 0;
        for (int i = 1; i < count && used < sizeof m_init.out; ++i) {
          size_t take = std::min(iov[i].iov_len, sizeof m_init.out - used);
          std::memcpy(m_init.out + used, iov[i].iov_base, take);
          used += take;
        }
        m_init.out_bytes = static_cast<uint32_t>(used);
      }
      swallow = m_swallow;
    }
  }
  if (swallow) return static_cast<ssize_t>(total);
  return ::writev(fd, iov, count);
}

void Connection::start() {
  m_stopping = false;
  m_workers.clear();
  m_running = static_cast<int>(m_worker_count);
  for (unsigned i = 0; i < m_worker_count; ++i) m_workers.emplace_back([this] { work(); });
}

void Connection::work() {
  fuse_buf buffer{};
  while (!m_stopping.load()) {
    int got = fuse_session_receive_buf(m_session, &buffer);
    if (got == -EINTR || got == -EAGAIN) continue;
    if (got <= 0) {
      // 0: the session ended (unmount: ENODEV; or a signal's
      // fuse_session_exit). Below 0: a read error libfuse has reported.
      if (got < 0) fuse_session_exit(m_session);
      break;
    }
    const auto* header = static_cast<const fuse_in_header*>(buffer.mem);
    t_resent = (header->unique & kFuseUniqueResend) != 0;
    if (t_resent && m_log) {
      m_log("answering a request the previous daemon had read (opcode " + std::to_string(header->opcode) +
            ", re-sent by the kernel)");
    }
    bool is_init = header->opcode == FUSE_INIT;
    fuse_session_process_buf(m_session, &buffer);
    t_resent = false;
    if (is_init) {
      std::vector<std::function<void(const InitRecord&)>> callbacks;
      InitRecord record;
      {
        std::lock_guard lock(m_mutex);
        if (!m_init_done && m_init.out_bytes > 0) {
          m_init_done = true;
          record = m_init;
          callbacks.swap(m_on_init);
        }
      }
      for (auto& callback : callbacks) callback(record);
    }
  }
  std::free(buffer.mem);
  m_running.fetch_sub(1);
  wake();
}

void Connection::quiesce() {
  m_stopping = true;
  // Kick until every worker is out: a signal that lands just before a
  // worker enters read(2) is lost, the next one is not.
  while (m_running.load() > 0) {
    // A thread that has exited but is not joined yet is still a valid target.
    for (std::thread& worker : m_workers) pthread_kill(worker.native_handle(), kKickSignal);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (std::thread& worker : m_workers) {
    if (worker.joinable()) worker.join();
  }
  m_workers.clear();
}

bool Connection::wait() {
  for (;;) {
    if (fuse_session_exited(m_session) || (m_running.load() == 0 && !m_workers.empty())) return true;
    pollfd fds{m_wake_fd.get(), POLLIN, 0};
    int ready = ::poll(&fds, 1, 100);  // a signal's fuse_session_exit wakes no one: look again
    if (ready > 0) {
      uint64_t count = 0;
      if (::read(m_wake_fd.get(), &count, sizeof count) < 0) {
        // Nothing to do: the counter is only a doorbell.
      }
      return fuse_session_exited(m_session) || (m_running.load() == 0 && !m_workers.empty());
    }
  }
}

void Connection::wake() {
  uint64_t one = 1;
  if (::write(m_wake_fd.get(), &one, sizeof one) < 0) {
    // The counter cannot overflow in practice; nothing else can fail.
  }
}

std::optional<InitRecord> Connection::init() const {
  std::lock_guard lock(m_mutex);
  if (!m_init_done) return std::nullopt;
  return m_init;
}

void Connection::on_init(std::function<void(const InitRecord&)> callback) {
  std::unique_lock lock(m_mutex);
  if (m_init_done) {
    InitRecord record = m_init;
    lock.unlock();
    callback(record);
    return;
  }
  m_on_init.push_back(std::move(callback));
}

bool Connection::kernel_has_resend() const {
  std::lock_guard lock(m_mutex);
  fuse_init_in in{};
  std::memcpy(&in, m_init.in, std::min<size_t>(m_init.in_bytes, sizeof in));
  if ((in.flags & FUSE_INIT_EXT) == 0) return false;
  uint64_t flags = in.flags | (uint64_t{in.flags2} << 32);
  return (flags & kFuseHasResend) != 0;
}

Result<void> Connection::notify_resend() {
  fuse_out_header header{};
  header.len = sizeof header;
  header.error = kFuseNotifyResend;
  header.unique = 0;
  if (::write(fd(), &header, sizeof header) != static_cast<ssize_t>(sizeof header)) {
    return Error::from_errno(errno, "FUSE_NOTIFY_RESEND");
  }
  return success();
}

int Connection::fd() const { return fuse_session_fd(m_session); }

}  // namespace pkfs::takeover
