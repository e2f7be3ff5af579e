// fs/ctl/target.cpp: see target.h.
#include "fs/ctl/target.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fs/base/fd.h"
#include "fs/region/region.h"

namespace pkfs::ctl {
namespace {

using namespace control;

}  // namespace

Result<std::vector<std::byte>> request_reply(const std::string& socket_path, const Request& request, int fd) {
  int socket = connect_socket(socket_path);
  if (socket < 0) return Error::from_errno(-socket, "cannot reach the pkfs daemon at " + socket_path);
  UniqueFd closer(socket);
  if (int err = send_message(socket, &request, sizeof request, fd); err != 0) {
    return Error::from_errno(err, "sending to the pkfs daemon");
  }
  Message message;
  if (int err = receive_reply(socket, message); err != 0) {
    return Error::from_errno(err, "no answer from the pkfs daemon");
  }
  if (message.fd >= 0) ::close(message.fd);
  Reply reply;
  if (message.bytes.size() < sizeof reply) return Error(EPROTO, "short reply from the pkfs daemon");
  std::memcpy(&reply, message.bytes.data(), sizeof reply);
  if (reply.magic != kMagic || reply.version != kVersion || reply.op != request.op ||
      reply.payload_bytes != message.bytes.size() - sizeof reply) {
    return Error(EPROTO, "the pkfs daemon speaks another protocol version");
  }
  std::vector<std::byte> payload(message.bytes.begin() + sizeof reply, message.bytes.end());
  if (reply.status != 0) {
    return Error(static_cast<int>(reply.status),
                 std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
  }
  return payload;
}

namespace {

Result<std::vector<std::byte>> exchange(const Target& target, const Request& request, int fd = -1) {
  return request_reply(target.socket, request, fd);
}

Result<FileLayout> parse_layout(const std::vector<std::byte>& payload) {
  FileLayout layout;
  if (payload.size() < sizeof layout.head) return Error(EPROTO, "short reply");
  std::memcpy(&layout.head, payload.data(), sizeof layout.head);
  size_t rest = payload.size() - sizeof layout.head;
  if (layout.head.extent_count > rest / sizeof(ExtentRecord))
    return Error(EPROTO, "reply lists too many extents");
  layout.extents.resize(layout.head.extent_count);
  size_t bytes = layout.extents.size() * sizeof(ExtentRecord);
  if (bytes != 0) std::memcpy(layout.extents.data(), payload.data() + sizeof layout.head, bytes);
  const char* text = reinterpret_cast<const char*>(payload.data()) + sizeof layout.head + bytes;
  layout.region_path.assign(text, rest - bytes);
  return layout;
}

}  // namespace

Result<Target> resolve_target(const std::string& argument, TargetAccess access) {
  Target target;
  target.argument = argument;
  char buffer[256];
  ssize_t got = ::getxattr(argument.c_str(), kControlXattr, buffer, sizeof buffer - 1);
  if (got > 0) {
    target.socket.assign(buffer, static_cast<size_t>(got));
    return target;
  }
  int xattr_errno = errno;
  struct stat st {};
  if (::stat(argument.c_str(), &st) != 0) return Error::from_errno(errno, argument);
  if (S_ISDIR(st.st_mode) ||
      (xattr_errno != ENODATA && xattr_errno != ENOTSUP && xattr_errno != EOPNOTSUPP)) {
    return Error(EINVAL, argument +
                             ": neither a path on a mounted pkfs nor a pkfs region (hugetlbfs or tmpfs file, "
                             "device-dax device)");
  }
  target.lock_holder = region::lock_holder(argument);
  region::OpenOptions options;
  if (access == TargetAccess::kReadWrite) {
    options.access = region::Access::kReadWrite;
    options.locking = region::Locking::kExclusive;
  } else {
    options.access = region::Access::kReadOnly;
    options.locking = region::Locking::kNone;
  }
  core::OpenOptions fs_options;
  fs_options.read_only = access == TargetAccess::kReadOnly;
  Result<std::unique_ptr<core::Filesystem>> fs = Error(EIO, "not opened");
  // A read-only look at a region a live daemon holds can catch one of its
  // transactions in flight (EROFS: the journal needs recovery), e.g. the
  // background zeroer's right after a mount. Transactions take
  // milliseconds: look again for up to a second before giving up.
  for (int attempt = 0;; ++attempt) {
    auto opened = region::open(argument, options);
    if (!opened) {
      if (access == TargetAccess::kReadWrite && !target.lock_holder.empty()) {
        return Error(EBUSY, argument + " is in use by " + target.lock_holder +
                                "; give a path inside its mount instead of the region");
      }
      return std::move(opened).error();
    }
    fs = core::Filesystem::open(std::move(opened).value(), fs_options);
    if (fs || fs.error().code() != EROFS || target.lock_holder.empty() || attempt == 100) break;
    ::usleep(10 * 1000);
  }
  if (!fs) {
    const Error& error = fs.error();
    std::string hint = error.code() == ENODATA ? " (not a pkfs region)" : "";
    if (error.code() == EROFS && !target.lock_holder.empty()) {
      hint = " (it is in use by " + target.lock_holder + "; give a path inside its mount instead)";
    }
    return Error(error.code(), argument + ": " + error.message() + hint);
  }
  target.fs = std::move(fs).value();
  return target;
}

Result<std::string> request_info(const Target& target) {
  Request request;
  request.op = static_cast<uint32_t>(Op::kInfo);
  TRY_ASSIGN(auto payload, exchange(target, request));
  return std::string(reinterpret_cast<const char*>(payload.data()), payload.size());
}

Result<FileLayout> request_stat(const Target& target, const std::string& path) {
  // Open for reading: the daemon tells where a file's bytes are only to
  // someone who may read them (an O_PATH descriptor proves nothing).
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return Error::from_errno(errno, path);
  Request request;
  request.op = static_cast<uint32_t>(Op::kStat);
  auto payload = exchange(target, request, fd);
  ::close(fd);
  if (!payload) return payload.error().with_context(path);
  return parse_layout(*payload);
}

Result<std::vector<HoldRecord>> request_holds(const Target& target) {
  Request request;
  request.op = static_cast<uint32_t>(Op::kHolds);
  TRY_ASSIGN(auto payload, exchange(target, request));
  std::vector<HoldRecord> holds(payload.size() / sizeof(HoldRecord));
  if (!holds.empty()) std::memcpy(holds.data(), payload.data(), holds.size() * sizeof(HoldRecord));
  return holds;
}

Result<void> request_release(const Target& target, uint64_t hold_id, bool stale_only) {
  Request request;
  request.op = static_cast<uint32_t>(Op::kRelease);
  request.flags = stale_only ? kReleaseStaleOnly : 0;
  request.arg0 = hold_id;
  TRY(exchange(target, request));
  return success();
}

Result<FileLayout> offline_layout(const Target& target, core::Ino ino) {
  core::Filesystem& fs = *target.fs;
  TRY_ASSIGN(core::Attr attr, fs.getattr(ino));
  FileLayout layout;
  const region::Info& info = fs.region().info();
  layout.head.ino = ino;
  layout.head.generation = attr.generation;
  layout.head.file_size = attr.size;
  layout.head.page_size = info.page_size;
  layout.head.mapped_bytes = (attr.size + info.page_size - 1) / info.page_size * info.page_size;
  layout.head.region_size = info.size_bytes;
  layout.head.mode = attr.mode;
  layout.head.uid = attr.uid;
  layout.head.gid = attr.gid;
  layout.region_path = info.path;
  if (S_ISREG(attr.mode)) {
    TRY_ASSIGN(auto extents, fs.extents(ino));
    for (const format::Extent& e : extents) {
      ExtentRecord record{e.file_block * format::kBlockSize, uint64_t{e.region_block} * format::kBlockSize,
                          uint64_t{e.block_count} * format::kBlockSize};
      if (!layout.extents.empty() &&
          layout.extents.back().file_offset + layout.extents.back().length == record.file_offset &&
          layout.extents.back().region_offset + layout.extents.back().length == record.region_offset) {
        layout.extents.back().length += record.length;
      } else {
        layout.extents.push_back(record);
      }
    }
  }
  layout.head.extent_count = layout.extents.size();
  if (auto holds = fs.list_holds()) {
    for (const core::HoldInfo& hold : *holds) layout.head.hold_count += hold.ino == ino ? 1 : 0;
  }
  return layout;
}

Result<core::Ino> offline_lookup(const Target& target, const std::string& path) {
  core::Ino ino = format::kRootIno;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string name = path.substr(start, slash - start);
    start = slash + 1;
    if (name.empty() || name == ".") continue;
    auto attr = target.fs->lookup(ino, name);
    if (!attr) return attr.error().with_context(path);
    ino = attr->ino;
  }
  return ino;
}

std::string mode_text(uint32_t mode) {
  std::string text = "?rwxrwxrwx";
  switch (mode & S_IFMT) {
    case S_IFREG: text[0] = '-'; break;
    case S_IFDIR: text[0] = 'd'; break;
    case S_IFLNK: text[0] = 'l'; break;
    case S_IFCHR: text[0] = 'c'; break;
    case S_IFBLK: text[0] = 'b'; break;
    case S_IFIFO: text[0] = 'p'; break;
    case S_IFSOCK: text[0] = 's'; break;
    default: break;
  }
  for (int bit = 0; bit < 9; ++bit) {
    if ((mode & (1u << (8 - bit))) == 0) text[1 + bit] = '-';
  }
  if (mode & S_ISUID) text[3] = text[3] == 'x' ? 's' : 'S';
  if (mode & S_ISGID) text[6] = text[6] == 'x' ? 's' : 'S';
  if (mode & S_ISVTX) text[9] = text[9] == 'x' ? 't' : 'T';
  return text;
}

}  // namespace pkfs::ctl
