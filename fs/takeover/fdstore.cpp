// fs/takeover/fdstore.cpp: systemd's file descriptor store as the keeper of
// a service's FUSE connection (see handover.h). The store holds descriptors
// only, so the Params go with the connection as a sealed memfd.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "fs/takeover/handover.h"

namespace pkfs::takeover {
namespace {

// "pkfs-fuse-<hash>" / "pkfs-params-<hash>": <hash> as in socket_path().
std::string store_name(const std::string& mountpoint, const char* what) {
  std::string path = socket_path(mountpoint, "x");
  std::string hash = path.substr(path.rfind('/') + 1, 16);
  return std::string("pkfs-") + what + "-" + hash;
}

bool under_systemd() {
  const char* socket =
      std::getenv("NOTIFY_SOCKET");  // NOLINT(concurrency-mt-unsafe): nothing sets the environment
  return socket != nullptr && *socket != '\0';
}

}  // namespace

Result<void> store_in_systemd(const std::string& mountpoint, int fd, const Params& params, const Log& log) {
  if (!under_systemd()) return success();
  int memfd = ::memfd_create("pkfs-params", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd < 0) return Error::from_errno(errno, "memfd_create");
  if (::write(memfd, &params, sizeof params) != static_cast<ssize_t>(sizeof params)) {
    int code = errno;
    ::close(memfd);
    return Error::from_errno(code, "memfd write");
  }
  (void)::fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  std::string fuse_message = "FDSTORE=1\nFDNAME=" + store_name(mountpoint, "fuse");
  std::string params_message = "FDSTORE=1\nFDNAME=" + store_name(mountpoint, "params");
  int result = sd_pid_notify_with_fds(0, 0, params_message.c_str(), &memfd, 1);
  if (result > 0) result = sd_pid_notify_with_fds(0, 0, fuse_message.c_str(), &fd, 1);
  ::close(memfd);
  if (result <= 0) {
    return Error(result < 0 ? -result : EIO, "systemd's fd store did not take the FUSE connection (" +
                                                 errno_text(result < 0 ? -result : EIO) +
                                                 "; does the unit set FileDescriptorStoreMax=?)");
  }
  log("the FUSE connection is in systemd's fd store (" + store_name(mountpoint, "fuse") + ")");
  return success();
}

namespace {

// Why a stored /dev/fuse descriptor cannot be served, or "" when it can. A
// connection whose filesystem was unmounted (say `umount -l` after the
// daemon died) is aborted: the kernel's poll on it reports POLLERR, and
// adopting it would serve nobody.
std::string unusable_connection(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return "fstat: " + errno_text(errno);
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 10 || minor(st.st_rdev) != 229)
    return "it is not /dev/fuse";
  pollfd entry{fd, POLLIN, 0};
  if (::poll(&entry, 1, 0) < 0) return "poll: " + errno_text(errno);
  if (entry.revents & (POLLERR | POLLHUP | POLLNVAL)) return "the connection is closed (the mount is gone)";
  return "";
}

}  // namespace

std::optional<Incoming> take_from_systemd(const std::string& mountpoint, const Log& log) {
  char** names = nullptr;
  int count = sd_listen_fds_with_names(1, &names);
  if (count <= 0 || names == nullptr) return std::nullopt;
  std::string fuse_name = store_name(mountpoint, "fuse");
  std::string params_name = store_name(mountpoint, "params");
  int fuse_fd = -1, params_fd = -1;
  for (int i = 0; i < count; ++i) {
    if (fuse_name == names[i]) fuse_fd = SD_LISTEN_FDS_START + i;
    if (params_name == names[i]) params_fd = SD_LISTEN_FDS_START + i;
    std::free(names[i]);
  }
  std::free(names);
  if (fuse_fd < 0 && params_fd < 0) return std::nullopt;
  Incoming incoming;
  std::string trouble;
  if (fuse_fd < 0 || params_fd < 0) {
    trouble = "only one of " + fuse_name + " and " + params_name + " is stored";
  } else if (::pread(params_fd, &incoming.params, sizeof incoming.params, 0) !=
             static_cast<ssize_t>(sizeof incoming.params)) {
    trouble = "its parameters do not read back";
  } else {
    trouble = unusable_connection(fuse_fd);
  }
  if (params_fd >= 0) ::close(params_fd);
  if (!trouble.empty()) {
    // Dropped from the store too, or every later restart would meet it.
    if (fuse_fd >= 0) ::close(fuse_fd);
    remove_from_systemd(mountpoint);
    log("the FUSE connection in systemd's fd store cannot be served (" + trouble + "); mounting afresh");
    return std::nullopt;
  }
  incoming.fd = fuse_fd;
  incoming.mode = core::Takeover::kUnknown;
  incoming.source = "systemd's fd store";
  return incoming;
}

void remove_from_systemd(const std::string& mountpoint) {
  if (!under_systemd()) return;
  for (const char* what : {"fuse", "params"}) {
    std::string message = "FDSTOREREMOVE=1\nFDNAME=" + store_name(mountpoint, what);
    sd_notify(0, message.c_str());
  }
}

}  // namespace pkfs::takeover
