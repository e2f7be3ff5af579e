// tests/client/hostile.cpp: hostile clients of a pkfs daemon's control
// socket, for the tests that the control plane cannot be jammed, hoarded or
// fooled (tests/integration/control_*.sh). Speaks the raw protocol
// (fs/client/protocol.h); run as an unprivileged uid through setpriv.
//
//   pkfs_test_hostile SOCKET MODE [ARGS]
//
// Jammers (run until killed; each reconnects when the daemon closes it):
//   chatty          sends a cheap request (kHolds) every 1.5 s on one
//                   connection, so a daemon with one thread per connection
//                   never gets to anyone else
//   silent          connects and says nothing
//   linger          every second, on a new connection, sends a kStat with a
//                   loopback TCP socket whose close blocks: SO_LINGER
//                   {1, 60} and a full send buffer the peer never reads. The
//                   last close is the daemon's, which waits up to 60 s.
//   many N          keeps N connections open, saying nothing
//   garbage         sends random bytes, bad headers, unknown ops and stray
//                   descriptors, as fast as replies come (at most 20 a second)
//
// Single exchanges (print what the daemon said, then exit 0):
//   info            kInfo: "status=N bytes=B"
//   holds           kHolds: "status=N count=C", then "hold id=I pid=P uid=U ino=N"
//   stat FILE [opath]  kStat with FILE opened O_RDONLY (or O_PATH):
//                   "status=N extents=E", then "mode=OCTAL" (the daemon's
//                   view of the permission bits) on success
//   maptwice FILE   opens FILE O_RDWR and asks kMap (read-write) twice on one
//                   connection: "first status=N hold=H", "second status=N
//                   message=..."
//
// Holders (print, then wait until killed, so the holds stay):
//   hoard FILE...   opens each FILE O_RDWR and asks kMap read-write for it,
//                   reconnecting when the daemon closes the connection; stops
//                   at the first refusal: "held=N", then "refused=ERRNO
//                   at=INDEX message=..." if one came, then "done"
//   handoff STATEDIR FILE
//                   process A connects, forks B (which inherits the
//                   connection; its pid goes to STATEDIR/b.pid) and exits
//                   after 0.3 s. B waits for
//                   STATEDIR/go, then sends kMap of FILE (read-write) on A's
//                   connection and writes "map status=N hold=H" to
//                   STATEDIR/b.out; then waits for STATEDIR/release (a hold
//                   id), sends kRelease with kReleaseOwnHold for it and
//                   writes "release status=N message=..."; "release
//                   failed: ..." when the connection is gone.
//
// Exit status 2 on bad usage or setup failure.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/client/protocol.h"

using namespace pkfs::control;

namespace {

std::string g_socket;

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Connects, retrying every 0.2 s while the daemon refuses (full backlog,
// per-uid limits): the jammers keep trying as a real attacker would.
int connect_retrying() {
  for (;;) {
    int fd = connect_socket(g_socket);
    if (fd >= 0) return fd;
    sleep_ms(200);
  }
}

struct Answer {
  int err = 0;  // transport error (0: a reply came)
  Reply reply;
  std::string payload;
  int fd = -1;
};

// One request and its whole reply. A reply larger than one message comes as
// the first message (Reply header, payload_bytes = the whole payload) and
// raw continuation messages; this assembles them (the old daemon sends one).
Answer exchange(int socket, const Request& request, int fd, const void* extra = nullptr,
                size_t extra_size = 0) {
  Answer answer;
  std::vector<std::byte> bytes;
  append(bytes, request);
  if (extra != nullptr) {
    const auto* begin = static_cast<const std::byte*>(extra);
    bytes.insert(bytes.end(), begin, begin + extra_size);
  }
  if (int err = send_message(socket, bytes.data(), bytes.size(), fd); err != 0) {
    answer.err = err;
    return answer;
  }
  Message message;
  if (int err = receive_message(socket, message); err != 0) {
    answer.err = err;
    return answer;
  }
  if (message.bytes.size() < sizeof(Reply)) {
    answer.err = EPROTO;
    if (message.fd >= 0) ::close(message.fd);
    return answer;
  }
  std::memcpy(&answer.reply, message.bytes.data(), sizeof(Reply));
  answer.fd = message.fd;
  answer.payload.assign(reinterpret_cast<const char*>(message.bytes.data()) + sizeof(Reply),
                        message.bytes.size() - sizeof(Reply));
  while (answer.payload.size() < answer.reply.payload_bytes) {
    Message more;
    if (int err = receive_message(socket, more); err != 0) {
      answer.err = err;
      return answer;
    }
    if (more.fd >= 0) ::close(more.fd);
    answer.payload.append(reinterpret_cast<const char*>(more.bytes.data()), more.bytes.size());
  }
  return answer;
}

Request make(Op op, uint32_t flags = 0, uint64_t arg0 = 0, uint64_t arg1 = 0) {
  Request request;
  request.op = static_cast<uint32_t>(op);
  request.flags = flags;
  request.arg0 = arg0;
  request.arg1 = arg1;
  return request;
}

std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n') c = ' ';
  return text;
}

[[noreturn]] void wait_forever() {
  std::fflush(stdout);
  for (;;) ::pause();
}

// --- jammers ---

[[noreturn]] void chatty() {
  for (;;) {
    int socket = connect_retrying();
    for (;;) {
      Answer answer = exchange(socket, make(Op::kHolds), -1);
      if (answer.fd >= 0) ::close(answer.fd);
      if (answer.err != 0) break;
      sleep_ms(1500);
    }
    ::close(socket);
    sleep_ms(100);
  }
}

[[noreturn]] void silent() {
  for (;;) {
    int socket = connect_retrying();
    char byte;
    // Returns when the daemon closes the connection (or sends anything).
    while (::recv(socket, &byte, 1, 0) > 0) {
    }
    ::close(socket);
    sleep_ms(200);
  }
}

[[noreturn]] void many(int count) {
  std::vector<int> sockets(static_cast<size_t>(count), -1);
  for (;;) {
    for (int& s : sockets) {
      if (s >= 0) {
        pollfd p{s, POLLIN, 0};
        if (::poll(&p, 1, 0) > 0) {  // closed by the daemon (or a stray reply)
          ::close(s);
          s = -1;
        }
      }
      if (s < 0) {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, g_socket.c_str(), sizeof address.sun_path - 1);
        s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
          ::close(s);
          s = -1;
        }
      }
    }
    sleep_ms(500);
  }
}

// A loopback TCP connection whose sending end cannot be closed quickly:
// lingering on, with a full send buffer the receiving end never reads.
// Returns the sending end; the receiving end goes to `keep`.
int blocking_close_socket(std::vector<int>& keep) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    std::perror("pkfs_test_hostile: loopback listener");
    std::exit(2);
  }
  int sender = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sender < 0 || ::connect(sender, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::perror("pkfs_test_hostile: loopback connect");
    std::exit(2);
  }
  int receiver = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(listener);
  if (receiver < 0) {
    std::perror("pkfs_test_hostile: loopback accept");
    std::exit(2);
  }
  int small = 4096;
  ::setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  keep.push_back(receiver);
  linger slow{1, 60};
  ::setsockopt(sender, SOL_SOCKET, SO_LINGER, &slow, sizeof slow);
  int flags = ::fcntl(sender, F_GETFL);
  ::fcntl(sender, F_SETFL, flags | O_NONBLOCK);
  std::vector<char> junk(65536, 'x');
  // Fill until the kernel takes no more (the receiver's window is shut);
  // a few tries, since loopback moves data while we write.
  for (int idle = 0; idle < 5;) {
    if (::send(sender, junk.data(), junk.size(), MSG_NOSIGNAL) < 0) {
      if (errno != EAGAIN) break;
      ++idle;
      sleep_ms(20);
    }
  }
  ::fcntl(sender, F_SETFL, flags);
  return sender;
}

[[noreturn]] void linger_loop() {
  std::vector<int> keep;
  for (;;) {
    int socket = connect_retrying();
    if (keep.size() < 40) {
      int tcp = blocking_close_socket(keep);
      // Do not wait for the reply: the daemon may be stuck in our close.
      std::vector<std::byte> bytes;
      append(bytes, make(Op::kStat));
      (void)send_message(socket, bytes.data(), bytes.size(), tcp);
      ::close(tcp);  // the daemon's copy is now the last one
    }
    sleep_ms(1000);
    ::close(socket);
  }
}

[[noreturn]] void garbage() {
  std::mt19937_64 random(static_cast<uint64_t>(::getpid()) * 7919 + 1);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (;;) {
    int socket = connect_retrying();
    timeval timeout{0, 500000};
    ::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    for (;;) {
      std::vector<std::byte> bytes;
      int fd = -1;
      switch (random() % 5) {
        case 0: {  // random bytes, random length
          bytes.resize(random() % 4096);
          for (auto& b : bytes) b = static_cast<std::byte>(random());
          break;
        }
        case 1: {  // a header with a wrong magic or version
          Request request = make(Op::kInfo);
          if (random() % 2)
            request.magic ^= 1;
          else
            request.version += static_cast<uint32_t>(1 + random() % 100);
          append(bytes, request);
          break;
        }
        case 2: {  // an unknown op with random arguments and a descriptor
          Request request =
              make(static_cast<Op>(6 + random() % 1000), static_cast<uint32_t>(random()), random(), random());
          append(bytes, request);
          fd = devnull;
          break;
        }
        case 3: {  // a map of /dev/null
          append(bytes, make(Op::kMap, 0, kAccessRead));
          fd = devnull;
          break;
        }
        default: {  // a release of a random hold, or a short message
          if (random() % 2)
            append(bytes, make(Op::kRelease, static_cast<uint32_t>(random()), random() % 2048));
          else
            bytes.resize(1 + random() % 31);
          break;
        }
      }
      if (bytes.empty()) bytes.resize(1);
      if (send_message(socket, bytes.data(), bytes.size(), fd) != 0) break;
      Message message;
      int err = receive_message(socket, message);
      if (message.fd >= 0) ::close(message.fd);
      if (err != 0 && err != EAGAIN) break;
      sleep_ms(50);
    }
    ::close(socket);
    sleep_ms(100);
  }
}

// --- single exchanges ---

int connect_or_die() {
  int socket = connect_socket(g_socket);
  if (socket < 0) {
    std::printf("connect failed: %s\n", std::strerror(-socket));
    std::exit(1);
  }
  return socket;
}

void print_failure(const Answer& answer) {
  if (answer.err != 0) std::printf("no reply: %s\n", std::strerror(answer.err));
}

int info() {
  Answer answer = exchange(connect_or_die(), make(Op::kInfo), -1);
  if (answer.err != 0) return print_failure(answer), 1;
  std::printf("status=%u bytes=%zu\n", answer.reply.status, answer.payload.size());
  return 0;
}

int holds() {
  Answer answer = exchange(connect_or_die(), make(Op::kHolds), -1);
  if (answer.err != 0) return print_failure(answer), 1;
  size_t count = answer.reply.status == 0 ? answer.payload.size() / sizeof(HoldRecord) : 0;
  std::printf("status=%u count=%zu\n", answer.reply.status, count);
  for (size_t i = 0; i < count; ++i) {
    HoldRecord record;
    std::memcpy(&record, answer.payload.data() + i * sizeof record, sizeof record);
    std::printf("hold id=%llu pid=%u uid=%u ino=%llu\n", static_cast<unsigned long long>(record.id),
                record.pid, record.uid, static_cast<unsigned long long>(record.ino));
  }
  return 0;
}

int stat_file(const char* path, bool opath) {
  int fd = ::open(path, (opath ? O_PATH : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    std::printf("open failed: %s\n", std::strerror(errno));
    return 2;
  }
  Answer answer = exchange(connect_or_die(), make(Op::kStat), fd);
  if (answer.err != 0) return print_failure(answer), 1;
  uint64_t extents = 0;
  MapReply head;
  if (answer.reply.status == 0 && answer.payload.size() >= sizeof(MapReply)) {
    std::memcpy(&head, answer.payload.data(), sizeof head);
    extents = head.extent_count;
  }
  std::printf("status=%u extents=%llu\n", answer.reply.status, static_cast<unsigned long long>(extents));
  if (answer.reply.status == 0) std::printf("mode=%o\n", head.mode & 07777);
  if (answer.reply.status != 0) std::printf("message=%s\n", one_line(answer.payload).c_str());
  return 0;
}

uint64_t hold_of(const Answer& answer) {
  if (answer.reply.status != 0 || answer.payload.size() < sizeof(MapReply)) return 0;
  MapReply head;
  std::memcpy(&head, answer.payload.data(), sizeof head);
  return head.hold_id;
}

int map_twice(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::printf("open failed: %s\n", std::strerror(errno));
    return 2;
  }
  int socket = connect_or_die();
  for (const char* which : {"first", "second"}) {
    Answer answer = exchange(socket, make(Op::kMap, 0, kAccessRead | kAccessWrite), fd);
    if (answer.fd >= 0) ::close(answer.fd);
    if (answer.err != 0) {
      std::printf("%s no reply: %s\n", which, std::strerror(answer.err));
      return 1;
    }
    std::printf("%s status=%u hold=%llu", which, answer.reply.status,
                static_cast<unsigned long long>(hold_of(answer)));
    if (answer.reply.status != 0) std::printf(" message=%s", one_line(answer.payload).c_str());
    std::printf("\n");
  }
  return 0;
}

// --- holders ---

[[noreturn]] void hoard(int count, char** paths) {
  int socket = -1;
  int held = 0;
  for (int i = 0; i < count; ++i) {
    int fd = ::open(paths[i], O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      std::printf("open %s failed: %s\n", paths[i], std::strerror(errno));
      std::exit(2);
    }
    Answer answer;
    // The daemon may close a connection after some requests or seconds:
    // reconnect and ask again (once).
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (socket < 0) socket = connect_or_die();
      answer = exchange(socket, make(Op::kMap, 0, kAccessRead | kAccessWrite), fd);
      if (answer.err == 0) break;
      ::close(socket);
      socket = -1;
    }
    ::close(fd);
    if (answer.fd >= 0) ::close(answer.fd);
    if (answer.err != 0) {
      std::printf("held=%d\nno reply at=%d: %s\ndone\n", held, i, std::strerror(answer.err));
      wait_forever();
    }
    if (answer.reply.status != 0) {
      // The holds stay with this process, not with the connection: close
      // it, so that this client jams nobody while it waits.
      ::close(socket);
      std::printf("held=%d\nrefused=%u at=%d message=%s\ndone\n", held, answer.reply.status, i,
                  one_line(answer.payload).c_str());
      wait_forever();
    }
    ++held;
  }
  if (socket >= 0) ::close(socket);
  std::printf("held=%d\ndone\n", held);
  wait_forever();
}

bool wait_for_file(const std::string& path, std::string& content) {
  for (int i = 0; i < 600; ++i) {
    std::ifstream in(path);
    if (in && std::getline(in, content)) return true;
    sleep_ms(50);
  }
  return false;
}

int handoff(const std::string& dir, const char* path) {
  int socket = connect_or_die();
  std::fflush(stdout);
  pid_t child = ::fork();
  if (child < 0) {
    std::perror("fork");
    return 2;
  }
  if (child > 0) {  // A: the connecting process goes away
    sleep_ms(300);
    ::_exit(0);
  }
  // B: A's connection, after A is gone.
  if (std::FILE* pid = std::fopen((dir + "/b.pid").c_str(), "w")) {
    std::fprintf(pid, "%d\n", static_cast<int>(::getpid()));
    std::fclose(pid);
  }
  std::FILE* out = std::fopen((dir + "/b.out").c_str(), "w");
  if (out == nullptr) ::_exit(2);
  std::string line;
  if (!wait_for_file(dir + "/go", line)) {
    std::fprintf(out, "no go\n");
    ::_exit(1);
  }
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(out, "open failed: %s\n", std::strerror(errno));
    ::_exit(2);
  }
  Answer answer = exchange(socket, make(Op::kMap, 0, kAccessRead | kAccessWrite), fd);
  if (answer.fd >= 0) ::close(answer.fd);
  if (answer.err != 0) {
    std::fprintf(out, "map failed: %s\n", std::strerror(answer.err));
  } else {
    std::fprintf(out, "map status=%u hold=%llu message=%s\n", answer.reply.status,
                 static_cast<unsigned long long>(hold_of(answer)),
                 answer.reply.status != 0 ? one_line(answer.payload).c_str() : "");
  }
  std::fflush(out);
  if (!wait_for_file(dir + "/release", line)) {
    std::fprintf(out, "no release\n");
    ::_exit(1);
  }
  answer =
      exchange(socket, make(Op::kRelease, kReleaseOwnHold, std::strtoull(line.c_str(), nullptr, 10)), -1);
  if (answer.err != 0) {
    std::fprintf(out, "release failed: %s\n", std::strerror(answer.err));
  } else {
    std::fprintf(out, "release status=%u message=%s\n", answer.reply.status,
                 one_line(answer.payload).c_str());
  }
  std::fclose(out);
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: pkfs_test_hostile SOCKET MODE [ARGS]\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  g_socket = argv[1];
  std::string mode = argv[2];
  if (mode == "chatty") chatty();
  if (mode == "silent") silent();
  if (mode == "linger") linger_loop();
  if (mode == "garbage") garbage();
  if (mode == "many" && argc == 4) many(std::atoi(argv[3]));
  if (mode == "info") return info();
  if (mode == "holds") return holds();
  if (mode == "stat" && (argc == 4 || (argc == 5 && std::string(argv[4]) == "opath")))
    return stat_file(argv[3], argc == 5);
  if (mode == "maptwice" && argc == 4) return map_twice(argv[3]);
  if (mode == "hoard" && argc >= 4) hoard(argc - 3, argv + 3);
  if (mode == "handoff" && argc == 5) return handoff(argv[3], argv[4]);
  std::fprintf(stderr, "pkfs_test_hostile: bad mode or arguments: %s\n", mode.c_str());
  return 2;
}
