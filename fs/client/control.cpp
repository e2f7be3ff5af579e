// fs/client/control.cpp: sending and receiving control messages (see
// protocol.h). Shared by the daemon, libpkfs and pkfsctl.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fs/client/protocol.h"

namespace pkfs::control {

int send_message(int socket, const void* data, size_t length, int fd) {
  iovec iov{const_cast<void*>(data), length};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    header.msg_control = control;
    header.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
  }
  for (;;) {
    ssize_t sent = ::sendmsg(socket, &header, MSG_NOSIGNAL);
    if (sent >= 0) return static_cast<size_t>(sent) == length ? 0 : EMSGSIZE;
    if (errno != EINTR) return errno;
  }
}

int receive_message(int socket, Message& message, const std::function<void(int)>& drop) {
  auto close_fd = [&drop](int fd) {
    if (drop) {
      drop(fd);
    } else {
      ::close(fd);
    }
  };
  message.bytes.assign(kMaxMessageBytes, std::byte{0});
  message.fd = -1;
  iovec iov{message.bytes.data(), message.bytes.size()};
  msghdr header{};
  header.msg_iov = &iov;
  header.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  header.msg_control = control;
  header.msg_controllen = sizeof control;
  ssize_t got;
  do {
    got = ::recvmsg(socket, &header, MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return errno;
  // Take every descriptor that came, keep the first, close the rest.
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&header); cmsg != nullptr; cmsg = CMSG_NXTHDR(&header, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
      if (message.fd < 0) {
        message.fd = fd;
      } else {
        close_fd(fd);
      }
    }
  }
  if (got == 0) {
    if (message.fd >= 0) close_fd(message.fd);
    message.fd = -1;
    return ECONNRESET;
  }
  if ((header.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    if (message.fd >= 0) close_fd(message.fd);
    message.fd = -1;
    return EMSGSIZE;
  }
  message.bytes.resize(static_cast<size_t>(got));
  return 0;
}

int connect_socket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) return -ENAMETOOLONG;
  std::memcpy(address.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

}  // namespace pkfs::control
