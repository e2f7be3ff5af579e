// tests/unit/peer_test.cpp: who is on the other end of a control connection
// (fs/fuse/peer.h), with real sockets and real processes, and the
// permission rules the daemon applies for a caller, POSIX ACLs included.
#include "fs/fuse/peer.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"

namespace {

using pkfs::fuse::Access;
using pkfs::fuse::may_access;
using pkfs::fuse::Peer;

// A connected pair of SOCK_SEQPACKET sockets made through a listening
// socket, the way the daemon gets its connections.
struct Listener {
  int fd = -1;
  sockaddr_un address{};
  Listener() {
    fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    address.sun_family = AF_UNIX;
    // An abstract address: nothing to clean up.
    std::string name = "pkfs-peer-test-" + std::to_string(::getpid());
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    REQUIRE(::listen(fd, 4) == 0);
  }
  ~Listener() { ::close(fd); }
  int connect() const {
    int client = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(client, reinterpret_cast<const sockaddr*>(&address), length) == 0);
    return client;
  }
  socklen_t length = 0;
};

std::vector<uint8_t> acl(std::initializer_list<std::array<uint32_t, 3>> entries) {
  std::vector<uint8_t> raw(4);
  uint32_t version = 2;
  std::memcpy(raw.data(), &version, 4);
  for (const auto& [tag, perm, id] : entries) {
    uint16_t tag16 = static_cast<uint16_t>(tag), perm16 = static_cast<uint16_t>(perm);
    size_t at = raw.size();
    raw.resize(at + 8);
    std::memcpy(raw.data() + at, &tag16, 2);
    std::memcpy(raw.data() + at + 2, &perm16, 2);
    std::memcpy(raw.data() + at + 4, &id, 4);
  }
  return raw;
}

Peer caller(uint32_t uid, uint32_t gid, std::vector<gid_t> groups = {}) {
  Peer peer;
  peer.uid = uid;
  peer.gid = gid;
  peer.groups = std::move(groups);
  return peer;
}

constexpr uint32_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10,
                   kOther = 0x20;

}  // namespace

TEST_CASE("a live caller is identified with its start time, with and without SO_PEERPIDFD", "[peer]") {
  Listener listener;
  int client = listener.connect();
  int connection = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(connection >= 0);
  auto own_ticks = pkfs::core::process_start_ticks(static_cast<uint32_t>(::getpid()));
  REQUIRE(own_ticks);
  for (bool exact : {true, false}) {
    Peer peer = exact ? Peer::identify(connection) : Peer::test_identify_without_peerpidfd(connection);
    INFO("SO_PEERPIDFD: " << exact << "; " << peer.unknown_reason());
    CHECK(peer.known());
    CHECK(peer.alive());
    CHECK(peer.pid == static_cast<uint32_t>(::getpid()));
    CHECK(peer.uid == ::getuid());
    CHECK(peer.start_ticks == *own_ticks);
  }
  ::close(connection);
  ::close(client);
}

TEST_CASE("a caller that exited before it was identified is not known, with and without SO_PEERPIDFD",
          "[peer]") {
  Listener listener;
  for (bool exact : {true, false}) {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Connect, then exit: the connection outlives its maker in the queue.
      int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
      ::_exit(::connect(fd, reinterpret_cast<const sockaddr*>(&listener.address), listener.length) == 0 ? 0
                                                                                                        : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    int connection = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(connection >= 0);
    Peer peer = exact ? Peer::identify(connection) : Peer::test_identify_without_peerpidfd(connection);
    INFO("SO_PEERPIDFD: " << exact);
    CHECK_FALSE(peer.known());
    CHECK_FALSE(peer.alive());
    CHECK_FALSE(peer.unknown_reason().empty());
    ::close(connection);
  }
}

TEST_CASE("a process that holds no end of the connection is not the caller (the fallback's pid-reuse check)",
          "[peer]") {
  // The connection is made by a child that hands its socket to the parent
  // and stays alive: the pid is live, but without SO_PEERPIDFD only the
  // process holding the other end counts, and the child no longer does.
  Listener listener;
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&listener.address), listener.length) != 0) ::_exit(1);
    ::close(fd);  // the child keeps no end
    char byte = 1;
    if (::write(pipe_fds[1], &byte, 1) != 1) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  char byte = 0;
  REQUIRE(::read(pipe_fds[0], &byte, 1) == 1);
  int connection = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(connection >= 0);
  Peer fallback = Peer::test_identify_without_peerpidfd(connection);
  CHECK_FALSE(fallback.known());
  CHECK(fallback.unknown_reason().find("does not hold the other end") != std::string::npos);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(connection);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_CASE("mode bits decide as generic_permission does; root may always", "[peer]") {
  CHECK(may_access(caller(0, 0), 0000, 5, 5, Access::kReadWrite));
  CHECK(may_access(caller(5, 9), 0600, 5, 5, Access::kReadWrite));
  CHECK_FALSE(may_access(caller(5, 5), 0066, 5, 5, Access::kRead));  // the owner's bits, not the group's
  CHECK(may_access(caller(7, 9, {5}), 0640, 5, 5, Access::kRead));
  CHECK_FALSE(may_access(caller(7, 9, {5}), 0640, 5, 5, Access::kReadWrite));
  CHECK(may_access(caller(7, 9), 0606, 5, 5, Access::kReadWrite));
  CHECK_FALSE(may_access(caller(7, 5), 0606, 5, 5, Access::kRead));  // the group's bits, not other's
}

TEST_CASE("POSIX ACLs: named users and groups through the mask, a matching group that denies denies",
          "[peer]") {
  // user::rw- user:7:--- user:8:rw- group::r-- group:20:rw- mask::rw- other::rw-
  auto entries = acl({{kUserObj, 6, 0},
                      {kUser, 0, 7},
                      {kUser, 6, 8},
                      {kGroupObj, 4, 0},
                      {kGroup, 6, 20},
                      {kMask, 6, 0},
                      {kOther, 6, 0}});
  const uint32_t mode = 0666, owner = 5, group = 5;
  CHECK(may_access(caller(5, 1), mode, owner, group, Access::kReadWrite, entries));
  CHECK_FALSE(may_access(caller(7, 1), mode, owner, group, Access::kRead, entries));  // named, denied
  CHECK(may_access(caller(8, 1), mode, owner, group, Access::kReadWrite, entries));
  CHECK(may_access(caller(9, 1, {20}), mode, owner, group, Access::kReadWrite, entries));
  // The owning group may read, not write; being in it denies the write
  // that "other" would have allowed.
  CHECK(may_access(caller(9, 5), mode, owner, group, Access::kRead, entries));
  CHECK_FALSE(may_access(caller(9, 5), mode, owner, group, Access::kReadWrite, entries));
  CHECK(may_access(caller(9, 1), mode, owner, group, Access::kReadWrite, entries));  // other
  // The mask limits named entries.
  auto masked = acl({{kUserObj, 6, 0}, {kUser, 6, 8}, {kGroupObj, 4, 0}, {kMask, 4, 0}, {kOther, 0, 0}});
  CHECK(may_access(caller(8, 1), mode, owner, group, Access::kRead, masked));
  CHECK_FALSE(may_access(caller(8, 1), mode, owner, group, Access::kReadWrite, masked));
  // Malformed ACLs deny.
  CHECK_FALSE(may_access(caller(9, 1), mode, owner, group, Access::kRead, std::vector<uint8_t>{1, 2, 3}));
  CHECK_FALSE(may_access(caller(9, 1), mode, owner, group, Access::kRead, acl({{kUser, 6, 9}})));
}
