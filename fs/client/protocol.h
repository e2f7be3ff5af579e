// fs/client/protocol.h: the control protocol between the pkfs daemon and its
// clients (libpkfs, pkfsctl). A project-internal contract: the daemon, the
// library and the tool are built from one tree and must agree on kVersion;
// a peer speaking another version is refused with EPROTO.
//
// Owns: message layouts and the send/receive helpers (control.cpp). Knows
// nothing of core or FUSE, so libpkfs stays a socket and an mmap.
//
// Transport. The daemon listens on a Unix SOCK_SEQPACKET socket, mode 0666,
// by default /run/pkfs/<region uuid>.sock (`-o control=PATH` overrides). A
// client finds the socket of a file from the file itself: every inode of a
// pkfs mount answers the virtual extended attribute `user.pkfs.control`
// (never stored, never listed) with the socket's path. So several pkfs mounts
// never get mixed up, and nothing needs /proc/self/mountinfo.
//
// Exchange. One connection carries a bounded number of request/reply pairs
// (the daemon closes a connection after 64 requests or 10 seconds); each
// request is one message (a Request, optionally followed by op-specific
// bytes, at most kMaxRequestBytes, with one descriptor as SCM_RIGHTS when
// the op takes one and none otherwise). A reply is a Reply, then
// `payload_bytes` of op-specific payload, optionally with one descriptor:
// one message when it fits in kMaxMessageBytes, else a first message of
// kMaxMessageBytes (header, the payload's start, the descriptor) followed
// by messages of raw payload bytes until `payload_bytes` have come
// (receive_reply assembles them). Every reply's `status` is 0 or a positive
// errno; a failed reply's payload is a human message (UTF-8, no NUL).
//
// Authorisation. The daemon identifies the caller by SO_PEERCRED (pid, uid,
// gid) and SO_PEERGROUPS (supplementary groups). A request about a file
// carries a descriptor of that file, opened through the mount: the daemon
// checks that it is on its own mount (st_dev), takes the inode number from
// it (st_ino; pkfs inode numbers are FUSE node ids), checks that its access
// mode covers the request (O_RDWR for a writable map), and checks the caller
// against the file's owner, group and mode as the kernel's
// generic_permission does (uid 0 may map anything).
//
// Ops:
//   kMap      fd = the file (O_RDONLY or O_RDWR), arg0 = kAccessRead or
//             kAccessRead|kAccessWrite. The daemon takes a hold for the
//             caller (pid, uid, start time) and replies with a MapReply, then
//             `extent_count` ExtentRecords, then the region path (the rest of
//             the payload), and the region descriptor (O_RDONLY or O_RDWR to
//             match the access). The extents cover [0, mapped_bytes) in file
//             order, each page aligned in file offset, region offset and
//             length. The region descriptor reaches the whole region, not
//             just the file: the caller must also be allowed to open the
//             region itself with that access (EACCES otherwise; see README,
//             "Direct mappings").
//   kRelease  arg0 = hold id, arg1 = inode. Releases a hold. Allowed to the
//             holder (same pid and start time), root, and the file's owner.
//             With kReleaseStaleOnly in `flags`, only a hold whose holder is
//             gone is released (EBUSY otherwise). With kReleaseOwnHold,
//             only a hold the caller itself holds (same pid and start time)
//             is released: libpkfs's unmap sends it, so a late unmap never
//             drops a hold that was force-released and its slot reused by
//             another holder. ENOENT: no such hold.
//   kStat     fd = the file (any access mode, O_PATH too). Replies with a
//             MapReply (hold_id 0), the extents and the region path, no
//             descriptor. No hold is taken.
//   kHolds    Replies with HoldRecords, one per hold.
//   kInfo     Replies with text: "Key: value" lines about the superblock,
//             usage and the daemon.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pkfs::control {

inline constexpr uint32_t kMagic = 0x43464b50;  // "PKFC" little-endian
inline constexpr uint32_t kVersion = 1;
// Name of the virtual xattr holding the control socket path.
inline constexpr const char* kControlXattr = "user.pkfs.control";
// Directory of the default sockets.
inline constexpr const char* kDefaultSocketDirectory = "/run/pkfs";
// Largest single message either side sends. A reply whose payload does not
// fit in one goes out as several messages (see "Exchange" above).
inline constexpr size_t kMaxMessageBytes = 256 * 1024;
// Largest request the daemon reads: a Request, with room for op-specific
// bytes later versions may add.
inline constexpr size_t kMaxRequestBytes = 4096;
// Largest reply payload, all its messages together (about 700,000 extents).
inline constexpr size_t kMaxReplyBytes = 16 * 1024 * 1024;

enum class Op : uint32_t {
  kMap = 1,
  kRelease = 2,
  kStat = 3,
  kHolds = 4,
  kInfo = 5,
};

inline constexpr uint64_t kAccessRead = 1;
inline constexpr uint64_t kAccessWrite = 2;
inline constexpr uint32_t kReleaseStaleOnly = 1;
inline constexpr uint32_t kReleaseOwnHold = 2;

struct Request {
  uint32_t magic = kMagic;
  uint32_t version = kVersion;
  uint32_t op = 0;
  uint32_t flags = 0;
  uint64_t arg0 = 0;
  uint64_t arg1 = 0;
};
static_assert(sizeof(Request) == 32);

struct Reply {
  uint32_t magic = kMagic;
  uint32_t version = kVersion;
  uint32_t op = 0;
  uint32_t status = 0;  // 0 or a positive errno
  uint64_t payload_bytes = 0;
};
static_assert(sizeof(Reply) == 24);

struct MapReply {
  uint64_t hold_id = 0;
  uint64_t ino = 0;
  uint64_t generation = 0;
  uint64_t file_size = 0;     // bytes
  uint64_t mapped_bytes = 0;  // file_size rounded up to page_size
  uint64_t page_size = 0;     // the region's backing page size
  uint64_t region_size = 0;
  uint64_t extent_count = 0;
  uint32_t mode = 0;  // the file's st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t hold_count = 0;  // holds on this file (kStat)
};
static_assert(sizeof(MapReply) == 80);

struct ExtentRecord {
  uint64_t file_offset = 0;  // bytes
  uint64_t region_offset = 0;
  uint64_t length = 0;
};
static_assert(sizeof(ExtentRecord) == 24);

struct HoldRecord {
  uint64_t id = 0;
  uint64_t ino = 0;
  uint64_t generation = 0;
  uint64_t start_ticks = 0;
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t stale = 0;  // 1: the holder is gone
  uint32_t reserved = 0;
};
static_assert(sizeof(HoldRecord) == 48);

// A received message: bytes plus at most one descriptor (-1 if none).
// The receiver owns `fd` and must close it.
struct Message {
  std::vector<std::byte> bytes;
  int fd = -1;
};

// Sends one message with an optional descriptor. Returns 0 or an errno.
int send_message(int socket, const void* data, size_t length, int fd = -1);
// Receives one message (blocking). Returns 0, an errno, or ECONNRESET when
// the peer closed the connection. Descriptors beyond the first are closed.
// Descriptors that came but are not kept (all but the first; all of them
// on an error) go to `drop`, ::close when empty: the daemon must close a
// received descriptor of its own region with care (see ControlServer).
int receive_message(int socket, Message& message, const std::function<void(int)>& drop = {});

// Parses a request the daemon received: its size, magic and version, a
// known op, only the flags that op takes, and a descriptor exactly when the
// op takes one. Returns 0, or EPROTO (size, magic, version), EOPNOTSUPP
// (unknown op), EINVAL (flags, a descriptor the op does not take) or EBADF
// (no descriptor where one is needed), with `error` saying what. Pure: the
// fuzz target calls it with any bytes.
int parse_request(const Message& message, Request& request, std::string& error);

// Whether requests of `op` carry a descriptor (kMap, kStat).
bool op_takes_descriptor(uint32_t op);

// Receives a whole reply (blocking): the first message, then continuation
// messages until the header's payload_bytes have come. `message.bytes` is
// the Reply header and the whole payload; `message.fd` the descriptor of
// the first message. Returns 0, an errno of receive_message, or EPROTO (a
// malformed or oversized reply, a descriptor in a continuation).
int receive_reply(int socket, Message& message);

// Connects to the socket at `path` (SOCK_SEQPACKET, close-on-exec). Returns
// the socket or -errno.
int connect_socket(const std::string& path);

// Appends the raw bytes of `value` to `out`.
template <typename T>
void append(std::vector<std::byte>& out, const T& value) {
  const auto* begin = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), begin, begin + sizeof value);
}

}  // namespace pkfs::control
