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
// (never stored, never listed) with the socket's path, and
// `user.pkfs.generation` with the inode's generation. So several pkfs
// mounts never get mixed up. A client trusts neither attribute alone: it
// checks that the file is on a `fuse.pkfs` mount (/proc/self/mountinfo),
// that the socket's server is root or the mount's owner (SO_PEERCRED)
// before it sends anything, and that the reply describes that inode and
// generation (pkfs.cpp, reply.cpp).
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
// gid), SO_PEERGROUPS (supplementary groups) and a pidfd of the process
// that connected (fs/fuse/peer.h). A request about a file
// carries a descriptor of that file, opened through the mount: the daemon
// checks that it is on its own mount (st_dev), takes the inode number from
// it (st_ino; pkfs inode numbers are FUSE node ids), checks that its access
// mode covers the request (O_RDWR for a writable map), and checks the caller
// against the file's owner, group and mode as the kernel's
// generic_permission does (uid 0 may map anything).
//
// Ops:
//   kMap      fd = the file (O_RDONLY or O_RDWR), arg0 = kAccessRead or
//             kAccessRead|kAccessWrite. The caller must be allowed to write
//             the file (a hold restricts its owner) and be a live process
//             (ESRCH). The daemon takes a hold for the caller (pid, uid,
//             start time; EEXIST if it holds the file already, EDQUOT over
//             the per-process or per-uid limit) and replies with a MapReply, then
//             `extent_count` ExtentRecords, then the region path (the rest of
//             the payload), and the region descriptor (O_RDONLY or O_RDWR to
//             match the access). The extents cover [0, mapped_bytes) in file
//             order, each page aligned in file offset, region offset and
//             length. The region descriptor reaches the whole region, not
//             just the file: the caller must also be allowed to open the
//             region itself with that access (EACCES otherwise; see README,
//             "Direct mappings").
//   kHold     fd = the file (O_RDONLY or O_RDWR), arg0 as for kMap. For a
//             VMM that maps the region itself (QEMU's memory-backend-file
//             with offset=) and so cannot ask for a mapping: exactly kMap's
//             checks (a live known caller, write permission on the file,
//             the file's descriptor covering the access, access to the
//             region itself with that access, the hold limits, EEXIST for
//             a second hold of the file by the same process) and kMap's
//             reply, but no region descriptor: the caller opens the region
//             by its path. The hold is the caller's (pid and start time),
//             so it lasts across execve (pkfsctl exec --hold) and is
//             released when the process exits, like a mapping's.
//   kRelease  arg0 = hold id, arg1 = inode. Releases a hold. Allowed to the
//             holder (same pid and start time), root, and the file's owner.
//             With kReleaseStaleOnly in `flags`, only a hold whose holder is
//             gone is released (EBUSY otherwise). With kReleaseOwnHold,
//             only a hold the caller itself holds (same pid and start time)
//             is released: libpkfs's unmap sends it, so a late unmap never
//             drops a hold that was force-released and its slot reused by
//             another holder. ENOENT: no such hold.
//   kStat     fd = the file, open for reading (EBADF for O_PATH or
//             O_WRONLY; EACCES without read permission). Replies with a
//             MapReply (hold_id 0), the extents and the region path, no
//             descriptor. No hold is taken.
//   kHolds    Replies with HoldRecords, one per hold: every hold to root
//             and to callers who may read the region, the holds of the
//             caller's own uid to anyone else.
//   kInfo     Replies with text: "Key: value" lines about the superblock,
//             usage and the daemon; EACCES to callers who may not read the
//             region.
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
  kHold = 6,
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

// Whether requests of `op` carry a descriptor (kMap, kStat, kHold).
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

// ===========================================================================
// libpkfs's checks of the daemon it talks to (reply.cpp). Everything a reply
// or the system says is parsed here with every bound checked, by functions
// that do no I/O (but gather_region_facts), so that unit tests and a fuzz
// target can feed them any bytes. See pkfs.h, "Who libpkfs trusts".
// ===========================================================================

#include <string_view>

namespace pkfs::control {

// Name of the virtual xattr holding the inode's generation, in decimal:
// answered for every inode of a pkfs mount, never stored, never listed,
// read-only (EPERM), like kControlXattr.
inline constexpr const char* kGenerationXattr = "user.pkfs.generation";
// fstatfs(2) f_type of FUSE, hugetlbfs and tmpfs.
inline constexpr uint64_t kFuseSuperMagic = 0x65735546;
inline constexpr uint64_t kHugetlbfsMagic = 0x958458f6;
inline constexpr uint64_t kTmpfsMagic = 0x01021994;
// The filesystem type of a pkfs mount in /proc/self/mountinfo.
inline constexpr const char* kMountType = "fuse.pkfs";
// Bounds of a region's page size: 4 KiB (tmpfs) to 1 GiB (hugetlbfs).
inline constexpr uint64_t kMinPageSize = uint64_t{4} << 10;
inline constexpr uint64_t kMaxPageSize = uint64_t{1} << 30;
// Longest region path a map reply may name (PATH_MAX without the NUL).
inline constexpr size_t kMaxRegionPathBytes = 4095;

// Splits a kMap reply's payload (the bytes after the Reply header) into its
// head, extents and region path, and checks them: extent_count against the
// bytes present, a page size that is a power of two in [kMinPageSize,
// kMaxPageSize], a non-zero mapped_bytes that is file_size rounded up to
// the page size, extents in file order, page aligned, inside region_size,
// covering [0, mapped_bytes) exactly, without overflow; a region path that
// is absolute, without NUL, at most kMaxRegionPathBytes. Returns 0, or
// EPROTO with `error` saying what is wrong. `head` is filled whenever the
// payload holds one (so a caller can release the hold it names), the rest
// only on success. Never reads outside `payload`, for any bytes.
int parse_map_reply(const std::vector<std::byte>& payload, MapReply& head, std::vector<ExtentRecord>& extents,
                    std::string& region_path, std::string& error);

// Checks that a map reply describes the file the caller opened: its inode
// number (st_ino) and generation (kGenerationXattr). Returns 0 or EPERM.
int check_map_identity(const MapReply& head, uint64_t ino, uint64_t generation, std::string& error);

// Parses a generation as kGenerationXattr gives it: 1-20 decimal digits,
// no sign, no space, no overflow.
bool parse_generation(std::string_view text, uint64_t& generation);

// One line of /proc/self/mountinfo, octal escapes (\040) undone.
struct MountEntry {
  std::string mount_point;
  std::string fstype;
  std::string source;
  std::string super_options;
};

// Finds the first mount of device major:minor in the text of a
// /proc/PID/mountinfo. Returns 0, ENOENT (no such mount) or EPROTO (a line
// of that device that cannot be parsed).
int find_mount(std::string_view mountinfo, uint32_t major, uint32_t minor, MountEntry& entry);

// Finds KEY=VALUE in a comma-separated option list ("rw,user_id=0,...").
bool mount_option(std::string_view options, std::string_view key, std::string& value);

// What the system says about a region descriptor a daemon sent and about
// the region path it named.
struct RegionFacts {
  uint32_t mode = 0;  // fstat of the descriptor
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t nlink = 0;
  uint64_t rdev = 0;
  uint64_t fs_type = 0;   // fstatfs f_type of the descriptor
  int path_errno = 0;     // stat() of the region path: 0 or its errno
  uint64_t path_dev = 0;  // when path_errno is 0
  uint64_t path_ino = 0;
  std::string subsystem;  // character devices: the target of
                          // /sys/dev/char/MAJ:MIN/subsystem ("" if none)
};

// Fills `facts` for descriptor `fd` and `region_path`. Returns 0 or the
// errno of an fstat/fstatfs that failed.
int gather_region_facts(int fd, const std::string& region_path, RegionFacts& facts);

// Checks that the descriptor is a region backing of a kind pkfs uses: a
// regular file on hugetlbfs or tmpfs, linked (st_nlink > 0: not a memfd or
// an O_TMPFILE), that is the file at the region path (same st_dev and
// st_ino; when the caller may not search the path's directories, EACCES,
// the other checks stand alone); or a character device of the dax
// subsystem. Returns 0 or EPERM.
int check_region_facts(const RegionFacts& facts, const std::string& region_path, std::string& error);

}  // namespace pkfs::control
