// tests/client/fake_server.cpp: a spoofed pkfs control socket, for the tests
// that libpkfs talks only to the genuine daemon of a file (client_spoof.sh).
//
//   pkfs_test_fake_server SOCKET LOG [--ino right|wrong]
//                         [--generation right|wrong] [--region memfd|PATH]
//
// Listens on SOCKET (mode 0777) and answers every map request with a
// valid-looking MapReply of one 4 KiB page and a region descriptor: by
// default a memfd, named as /proc/PID/fd/N (so that stat() of the path
// finds the very memfd), or the file at PATH. The inode and generation are
// those of the descriptor the request carried ("right": read with fstat and
// the user.pkfs.generation xattr through it) or off by one ("wrong",
// the default). Release requests get status 0, anything else EINVAL.
//
// Appends to LOG: "ready" once listening, "connect" for every connection,
// "request op=N fd=yes|no" for every request received. Runs until killed.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fs/client/protocol.h"

using namespace pkfs::control;

namespace {

FILE* g_log = nullptr;

void log_line(const std::string& line) {
  std::fprintf(g_log, "%s\n", line.c_str());
  std::fflush(g_log);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "pkfs_test_fake_server: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

struct Options {
  bool right_ino = false;
  bool right_generation = false;
  std::string region;  // "" for a memfd
};

void reply(int socket, const Request& request, uint32_t status, const std::vector<std::byte>& payload,
           int fd) {
  Reply head;
  head.op = request.op;
  head.status = status;
  head.payload_bytes = payload.size();
  std::vector<std::byte> bytes;
  append(bytes, head);
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  (void)send_message(socket, bytes.data(), bytes.size(), fd);
}

void answer_map(int socket, const Request& request, int file_fd, const Options& options) {
  uint64_t ino = 0;
  uint64_t generation = 0;
  if (file_fd >= 0) {
    struct stat st {};
    if (::fstat(file_fd, &st) == 0) ino = st.st_ino;
    char text[32] = {};
    if (::fgetxattr(file_fd, "user.pkfs.generation", text, sizeof text - 1) > 0) {
      generation = std::strtoull(text, nullptr, 10);
    }
  }
  if (!options.right_ino) ino += 1;
  if (!options.right_generation) generation += 1;

  int region = -1;
  std::string path;
  uint64_t region_size = 1 << 20;
  if (options.region.empty()) {
    region = ::memfd_create("pkfs-fake-region", MFD_CLOEXEC);
    if (region < 0 || ::ftruncate(region, static_cast<off_t>(region_size)) != 0) die("memfd");
    // A pattern the victim would run its guest on.
    (void)::pwrite(region, "FAKE", 4, 0);
    path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(region);
  } else {
    region = ::open(options.region.c_str(), O_RDWR | O_CLOEXEC);
    if (region < 0) die(options.region);
    struct stat st {};
    if (::fstat(region, &st) != 0) die(options.region);
    region_size = static_cast<uint64_t>(st.st_size);
    path = options.region;
  }
  MapReply head;
  head.hold_id = 77;
  head.ino = ino;
  head.generation = generation;
  head.file_size = 4096;
  head.mapped_bytes = 4096;
  head.page_size = 4096;
  head.region_size = region_size;
  head.extent_count = 1;
  head.mode = S_IFREG | 0644;
  ExtentRecord extent;
  extent.file_offset = 0;
  extent.region_offset = 0;
  extent.length = 4096;
  std::vector<std::byte> payload;
  append(payload, head);
  append(payload, extent);
  const auto* begin = reinterpret_cast<const std::byte*>(path.data());
  payload.insert(payload.end(), begin, begin + path.size());
  reply(socket, request, 0, payload, region);
  ::close(region);
}

void serve(int connection, const Options& options) {
  for (;;) {
    Message message;
    if (receive_message(connection, message) != 0) return;
    Request request;
    if (message.bytes.size() < sizeof request) {
      if (message.fd >= 0) ::close(message.fd);
      return;
    }
    std::memcpy(&request, message.bytes.data(), sizeof request);
    log_line("request op=" + std::to_string(request.op) + " fd=" + (message.fd >= 0 ? "yes" : "no"));
    if (request.op == static_cast<uint32_t>(Op::kMap)) {
      answer_map(connection, request, message.fd, options);
    } else if (request.op == static_cast<uint32_t>(Op::kRelease)) {
      reply(connection, request, 0, {}, -1);
    } else {
      reply(connection, request, EINVAL, {}, -1);
    }
    if (message.fd >= 0) ::close(message.fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: pkfs_test_fake_server SOCKET LOG [--ino right|wrong] [--generation right|wrong] "
                 "[--region memfd|PATH]\n");
    return 2;
  }
  Options options;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string name = argv[i];
    std::string value = argv[i + 1];
    if (name == "--ino") {
      options.right_ino = value == "right";
    } else if (name == "--generation") {
      options.right_generation = value == "right";
    } else if (name == "--region") {
      options.region = value == "memfd" ? "" : value;
    } else {
      std::fprintf(stderr, "pkfs_test_fake_server: unknown option %s\n", name.c_str());
      return 2;
    }
  }
  g_log = std::fopen(argv[2], "a");
  if (g_log == nullptr) die(argv[2]);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string path = argv[1];
  if (path.size() >= sizeof address.sun_path) die("socket path too long");
  std::memcpy(address.sun_path, path.data(), path.size());
  int listener = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  ::unlink(path.c_str());
  if (::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) die("bind " + path);
  if (::chmod(path.c_str(), 0777) != 0) die("chmod " + path);
  if (::listen(listener, 16) != 0) die("listen");
  log_line("ready");
  for (;;) {
    int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) {
      if (errno == EINTR) continue;
      die("accept");
    }
    log_line("connect");
    serve(connection, options);
    ::close(connection);
  }
}
