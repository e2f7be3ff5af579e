// tests/client/control_probe.cpp: sends hand-made requests to a pkfs
// daemon's control socket, for the tests of what the daemon refuses.
//
//   pkfs_test_control_probe SOCKET CASE [FILE] [UID]
//
// Cases:
//   map-as UID FILE    opens FILE O_RDWR (as the caller, root), then drops
//                      to UID (setresgid/setresuid, no groups) and asks to
//                      map it writable with that descriptor
//   map-ro-for-write FILE  sends an O_RDONLY descriptor asking for write
//   map-no-fd          a map request without a descriptor
//   map-foreign FILE   a descriptor of a file not on the mount
//   short              a 3-byte request
//   bad-version        a request with another protocol version
//   unknown-op         an op the daemon does not know
//   release-bogus      releases hold 999999
//   release-own ID     releases hold ID only if the caller holds it (as
//                      libpkfs's unmap asks); the probe never does
//   silent             connects and says nothing (the daemon must go on)
//
// Prints "status=N" (the reply's errno, 0 for success), "fd=yes|no" and the
// reply's message, and exits 0 when a reply came.
#include <fcntl.h>
#include <grp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fs/client/protocol.h"

using namespace pkfs::control;

namespace {

int exchange(int socket, const void* data, size_t length, int fd) {
  if (int err = send_message(socket, data, length, fd); err != 0) {
    std::printf("send failed: %s\n", std::strerror(err));
    return 1;
  }
  Message message;
  if (int err = receive_reply(socket, message); err != 0) {
    std::printf("no reply: %s\n", std::strerror(err));
    return 1;
  }
  Reply reply;
  if (message.bytes.size() < sizeof reply) {
    std::printf("short reply\n");
    return 1;
  }
  std::memcpy(&reply, message.bytes.data(), sizeof reply);
  std::string text(reinterpret_cast<const char*>(message.bytes.data()) + sizeof reply,
                   message.bytes.size() - sizeof reply);
  std::printf("status=%u fd=%s\n", reply.status, message.fd >= 0 ? "yes" : "no");
  if (reply.status != 0) std::printf("message=%s\n", text.c_str());
  if (message.fd >= 0) ::close(message.fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: pkfs_test_control_probe SOCKET CASE [ARGS]\n");
    return 2;
  }
  std::string socket_path = argv[1];
  std::string which = argv[2];
  Request request;
  request.op = static_cast<uint32_t>(Op::kMap);
  request.arg0 = kAccessRead | kAccessWrite;
  int fd = -1;
  if (which == "map-as" && argc == 5) {
    fd = ::open(argv[4], O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      std::perror(argv[4]);
      return 2;
    }
    auto id = static_cast<uid_t>(std::strtoul(argv[3], nullptr, 10));
    if (::setgroups(0, nullptr) != 0 || ::setresgid(id, id, id) != 0 || ::setresuid(id, id, id) != 0) {
      std::perror("dropping privileges");
      return 2;
    }
  } else if (which == "map-ro-for-write" && argc == 4) {
    fd = ::open(argv[3], O_RDONLY | O_CLOEXEC);
  } else if (which == "map-foreign" && argc == 4) {
    fd = ::open(argv[3], O_RDWR | O_CLOEXEC);
  } else if (which == "bad-version") {
    request.version = kVersion + 1;
  } else if (which == "unknown-op") {
    request.op = 77;
  } else if (which == "release-bogus") {
    request.op = static_cast<uint32_t>(Op::kRelease);
    request.arg0 = 999999;
  } else if (which == "release-own" && argc > 3) {
    request.op = static_cast<uint32_t>(Op::kRelease);
    request.flags = kReleaseOwnHold;
    request.arg0 = std::strtoull(argv[3], nullptr, 10);
  } else if (which != "map-no-fd" && which != "short" && which != "silent") {
    std::fprintf(stderr, "pkfs_test_control_probe: bad case %s\n", which.c_str());
    return 2;
  }
  if ((which == "map-ro-for-write" || which == "map-foreign") && fd < 0) {
    std::perror(argv[3]);
    return 2;
  }
  int socket = connect_socket(socket_path);
  if (socket < 0) {
    std::printf("connect failed: %s\n", std::strerror(-socket));
    return 1;
  }
  if (which == "silent") {
    ::sleep(3);
    ::close(socket);
    std::printf("closed\n");
    return 0;
  }
  if (which == "short") return exchange(socket, "abc", 3, -1);
  return exchange(socket, &request, sizeof request, fd);
}
