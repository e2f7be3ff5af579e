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

bool op_takes_descriptor(uint32_t op) {
  return op == static_cast<uint32_t>(Op::kMap) || op == static_cast<uint32_t>(Op::kStat) ||
         op == static_cast<uint32_t>(Op::kHold);
}

int parse_request(const Message& message, Request& request, std::string& error) {
  if (message.bytes.size() < sizeof request || message.bytes.size() > kMaxRequestBytes) {
    error = "a request is " + std::to_string(sizeof request) + " to " + std::to_string(kMaxRequestBytes) +
            " bytes, not " + std::to_string(message.bytes.size());
    return EPROTO;
  }
  std::memcpy(&request, message.bytes.data(), sizeof request);
  if (request.magic != kMagic || request.version != kVersion) {
    error = "not a pkfs control request of protocol version " + std::to_string(kVersion);
    return EPROTO;
  }
  uint32_t allowed_flags = 0;
  switch (static_cast<Op>(request.op)) {
    case Op::kMap:
    case Op::kHold:
    case Op::kStat:
    case Op::kHolds:
    case Op::kInfo: break;
    case Op::kRelease: allowed_flags = kReleaseStaleOnly | kReleaseOwnHold; break;
    default: error = "unknown request " + std::to_string(request.op); return EOPNOTSUPP;
  }
  if ((request.flags & ~allowed_flags) != 0) {
    error =
        "flags " + std::to_string(request.flags) + " are not valid for request " + std::to_string(request.op);
    return EINVAL;
  }
  bool takes_fd = op_takes_descriptor(request.op);
  if (takes_fd && message.fd < 0) {
    error = "the request carries no file descriptor";
    return EBADF;
  }
  if (!takes_fd && message.fd >= 0) {
    error = "request " + std::to_string(request.op) + " takes no file descriptor";
    return EINVAL;
  }
  return 0;
}

namespace {

int receive_reply_parts(int socket, Message& message) {
  if (int err = receive_message(socket, message); err != 0) return err;
  if (message.bytes.size() < sizeof(Reply)) return EPROTO;
  Reply reply;
  std::memcpy(&reply, message.bytes.data(), sizeof reply);
  uint64_t have = message.bytes.size() - sizeof reply;
  if (reply.payload_bytes > kMaxReplyBytes || have > reply.payload_bytes) return EPROTO;
  while (message.bytes.size() - sizeof reply < reply.payload_bytes) {
    Message more;
    if (int err = receive_message(socket, more); err != 0) return err;
    if (more.fd >= 0) {
      ::close(more.fd);
      return EPROTO;
    }
    if (more.bytes.empty() || more.bytes.size() > reply.payload_bytes - (message.bytes.size() - sizeof reply))
      return EPROTO;
    message.bytes.insert(message.bytes.end(), more.bytes.begin(), more.bytes.end());
  }
  return 0;
}

}  // namespace

int receive_reply(int socket, Message& message) {
  int err = receive_reply_parts(socket, message);
  if (err != 0 && message.fd >= 0) {
    ::close(message.fd);
    message.fd = -1;
  }
  return err;
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
