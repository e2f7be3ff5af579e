// pkfs: the daemon that mounts a pkfs region with FUSE.
//
// Owns: the command line, the order of startup (mountpoint check, region
// lock, core open, mount, detach), logging to stderr or syslog, the session
// loop, and marking the region clean at the end. Every request is served by
// fs/fuse/adapter.
//
//   pkfs REGION MOUNTPOINT [-o OPTIONS] [-f] [-d] [-s]
//   pkfs --takeover MOUNTPOINT [-f] [-d] [-s]
//
// --takeover: take the live FUSE connection of MOUNTPOINT over from the
// daemon serving it (planned: it stops and hands over) or, when that daemon
// is gone, from the mount's keeper; the mount, open files and working
// directories carry on (fs/takeover/handover.h has the guarantees).
//
// Options (-o, comma separated; also as mount.fuse3 passes them):
//   ro                  open the filesystem read-only (and mount read-only)
//   allow_other         let other users in (permissions are still checked)
//   fsname=NAME         source shown in /proc/mounts (default: the region)
//   subtype=NAME        default pkfs, so the type reads fuse.pkfs
//   control=PATH        the control socket for libpkfs and pkfsctl
//                       (default /run/pkfs/<filesystem uuid>.sock)
//   keeper              start a keeper process that holds a copy of the
//                       connection, so that `pkfs --takeover` can restart a
//                       daemon that died (under systemd, the service's fd
//                       store does this without the option)
//   default_permissions always on: the kernel checks permissions
//   anything else libfuse knows (rw, dev, nosuid, noatime, ...) passes on;
//   fstab-only words (defaults, auto, noauto, user, nofail, _netdev, x-*,
//   comment=) are ignored.
//   -f foreground, -d debug (implies -f), -s single-threaded.
//
// mount(8): `mount -t fuse.pkfs REGION MNT` runs mount.fuse3, which runs
// `pkfs REGION MNT -o OPTIONS` through /bin/sh. mount(8) clears PATH, so the
// shell's default search path applies: install pkfs in /usr/sbin or
// /usr/local/sbin. An /etc/fstab line:
//
//   /dev/hugepages/vm0  /srv/vm0  fuse.pkfs  allow_other,nofail  0  0
//
// Exit status: 0 after a clean unmount, 1 if the region could not be
// mounted (the message says why; the region is left as it was, but for a
// failing mount(2), which comes last and leaves it marked clean) or the
// filesystem could not be marked clean.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/fuse/adapter.h"
#include "fs/fuse/control_server.h"
#include "fs/fuse/notify.h"
#include "fs/region/region.h"
#include "fs/takeover/connection.h"
#include "fs/takeover/handover.h"

namespace {

using namespace pkfs;

#ifndef PKFS_VERSION
#define PKFS_VERSION "unknown"
#endif

// Log lines go to stderr while a terminal may be watching, and to syslog
// once the daemon runs in the background (and, in background mode, already
// during startup, so a boot-time mount leaves its story in the log).
class Logger {
 public:
  void set_stderr(bool on) { m_stderr = on; }
  void set_syslog(bool on) {
    if (on && !m_syslog) openlog("pkfs", LOG_PID, LOG_DAEMON);
    m_syslog = on;
  }
  bool to_syslog() const { return m_syslog; }

  // Routine news stays off a terminal that only waits for mount(8) to end.
  void info(const std::string& line) { write(LOG_INFO, line, !m_syslog); }
  void warning(const std::string& line) { write(LOG_WARNING, line); }
  void error(const std::string& line) { write(LOG_ERR, line); }

 private:
  void write(int priority, const std::string& line, bool to_stderr = true) {
    std::lock_guard lock(m_mutex);
    if (m_stderr && to_stderr) std::fprintf(stderr, "pkfs: %s\n", line.c_str());
    if (m_syslog) syslog(priority, "%s", line.c_str());
  }

  std::mutex m_mutex;
  bool m_stderr = true;
  bool m_syslog = false;
};

Logger g_logger;

// libfuse's own messages follow ours to syslog once we are detached.
void fuse_log_to_syslog(enum fuse_log_level level, const char* format, va_list args) {
  vsyslog(static_cast<int>(level), format, args);
}

struct Options {
  std::string region;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  bool single_threaded = false;
  bool read_only = false;
  bool background_zeroing = true;
  std::optional<std::string> fsname;
  std::optional<std::string> subtype;
  std::optional<std::string> control;
  fuse::ControlLimits limits;
  std::vector<std::string> fuse_options;  // passed to libfuse as they are
  bool keeper = false;
  bool takeover = false;        // --takeover MOUNTPOINT
  bool keeper_process = false;  // --keeper MOUNTPOINT (started by the daemon)
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: pkfs REGION MOUNTPOINT [-o OPTIONS] [-f] [-d] [-s]\n"
               "       pkfs --takeover MOUNTPOINT [-f] [-d] [-s]\n"
               "\n"
               "Mounts the pkfs filesystem in REGION (a hugetlbfs or tmpfs file, or a\n"
               "device-dax device formatted by mkfs.pkfs) on MOUNTPOINT.\n"
               "\n"
               "  -o ro              mount read-only\n"
               "  -o allow_other     let other users in (permissions are checked)\n"
               "  -o fsname=NAME     source shown in /proc/mounts (default: REGION)\n"
               "  -o control=PATH    control socket for libpkfs and pkfsctl\n"
               "                     (default: /run/pkfs/<filesystem uuid>.sock)\n"
               "  -o max_holds_per_process=N  direct-mapping holds one process may have\n"
               "                     (default 64)\n"
               "  -o max_holds_per_uid=N      holds all processes of one uid may have\n"
               "                     (default 256; root has no such limit)\n"
               "  -o keeper          keep a copy of the connection in a keeper process, for\n"
               "                     pkfs --takeover after the daemon died\n"
               "  -o background_zeroing=on|off  zero freed space while idle, so that\n"
               "                     new guest RAM needs no zeroing (default on)\n"
               "  -o OPT             other FUSE and mount options (rw, nosuid, noatime, ...)\n"
               "  --takeover MNT     take the mount over from its daemon (or its keeper)\n"
               "  -f                 stay in the foreground, log to stderr\n"
               "  -d                 debug: print every FUSE request (implies -f)\n"
               "  -s                 single-threaded\n"
               "  -h, --help         this text\n"
               "  -V, --version      print the version\n");
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Sorts one -o word into ours, libfuse's, or fstab's. Returns an error
// message for a word pkfs refuses.
std::optional<std::string> add_option(Options& options, const std::string& word) {
  if (word.empty()) return std::nullopt;
  if (word == "ro") {
    options.read_only = true;
    options.fuse_options.push_back(word);
  } else if (word == "rw") {
    options.read_only = false;
    options.fuse_options.push_back(word);
  } else if (word == "keeper") {
    options.keeper = true;
  } else if (word == "no_default_permissions") {
    return std::string(
        "no_default_permissions is not supported: pkfs leaves permission checks to the kernel "
        "(default_permissions) and checks none itself");
  } else if (word == "debug") {
    options.debug = true;
    options.foreground = true;
  } else if (starts_with(word, "fsname=")) {
    options.fsname = word.substr(7);
  } else if (starts_with(word, "control=")) {
    if (word.size() == 8) return std::string("control= needs a socket path");
    options.control = std::filesystem::absolute(word.substr(8)).lexically_normal().string();
  } else if (starts_with(word, "max_holds_per_process=") || starts_with(word, "max_holds_per_uid=")) {
    size_t equals = word.find('=');
    std::string value = word.substr(equals + 1);
    char* end = nullptr;
    errno = 0;
    unsigned long number = std::strtoul(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || errno != 0 || number == 0 || number > 1u << 20 || value[0] == '-') {
      return word.substr(0, equals) + " needs a number of holds from 1 to 1048576, not '" + value + "'";
    }
    (starts_with(word, "max_holds_per_uid=") ? options.limits.holds_per_uid
                                             : options.limits.holds_per_process) =
        static_cast<uint32_t>(number);
  } else if (starts_with(word, "background_zeroing=")) {
    std::string value = word.substr(19);
    if (value != "on" && value != "off") return "background_zeroing= takes on or off, not '" + value + "'";
    options.background_zeroing = value == "on";
  } else if (starts_with(word, "subtype=")) {
    options.subtype = word.substr(8);
  } else if (word == "default_permissions" || word == "defaults" || word == "auto" || word == "noauto" ||
             word == "user" || word == "nouser" || word == "users" || word == "owner" || word == "group" ||
             word == "nofail" || word == "_netdev" || starts_with(word, "x-") ||
             starts_with(word, "comment=")) {
    // default_permissions is always on (mount_options() adds it); the rest
    // are fstab and mount(8) words that mean nothing to a FUSE mount.
  } else {
    options.fuse_options.push_back(word);
  }
  return std::nullopt;
}

std::optional<std::string> add_option_list(Options& options, std::string_view list) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    if (auto refused = add_option(options, std::string(list.substr(start, comma - start)))) return refused;
    start = comma + 1;
  }
  return std::nullopt;
}

// Returns the exit status to leave with, or nothing to go on.
std::optional<int> parse_arguments(int argc, char** argv, Options& options) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    }
    if (arg == "-V" || arg == "--version") {
      std::printf("pkfs %s (FUSE library %s)\n", PKFS_VERSION, fuse_pkgversion());
      return 0;
    }
    if (arg == "--takeover") {
      options.takeover = true;
    } else if (arg == "--keeper") {
      options.keeper_process = true;
    } else if (arg == "-f") {
      options.foreground = true;
    } else if (arg == "-d") {
      options.debug = true;
      options.foreground = true;
    } else if (arg == "-s") {
      options.single_threaded = true;
    } else if (arg == "-o" || (starts_with(arg, "-o") && arg.size() > 2)) {
      std::string list;
      if (arg == "-o") {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "pkfs: -o needs an option list\n");
          return 1;
        }
        list = argv[++i];
      } else {
        list = arg.substr(2);
      }
      if (auto refused = add_option_list(options, list)) {
        std::fprintf(stderr, "pkfs: %s\n", refused->c_str());
        return 1;
      }
    } else if (arg == "--") {
      for (++i; i < argc; ++i) positional.emplace_back(argv[i]);
    } else if (starts_with(arg, "-") && arg.size() > 1) {
      std::fprintf(stderr, "pkfs: unknown option %s\n", arg.c_str());
      usage(stderr);
      return 1;
    } else {
      positional.push_back(arg);
    }
  }
  if (options.takeover || options.keeper_process) {
    if (positional.size() != 1) {
      std::fprintf(stderr, "pkfs: %s wants one mountpoint\n", options.takeover ? "--takeover" : "--keeper");
      return 1;
    }
    positional.insert(positional.begin(), std::string());  // the region comes from the daemon
  }
  if (positional.size() != 2) {
    std::fprintf(stderr, "pkfs: want a region and a mountpoint, got %zu argument%s\n", positional.size(),
                 positional.size() == 1 ? "" : "s");
    usage(stderr);
    return 1;
  }
  // Absolute paths: the daemon changes to / after detaching, and libfuse
  // unmounts by the path it mounted.
  std::error_code ignored;
  options.region = std::filesystem::absolute(positional[0], ignored).lexically_normal().string();
  options.mountpoint = std::filesystem::absolute(positional[1], ignored).lexically_normal().string();
  if (positional[0].empty()) options.region.clear();
  if (options.region.empty()) options.region = positional[0];
  if (options.mountpoint.empty()) options.mountpoint = positional[1];
  return std::nullopt;
}

std::optional<std::string> check_mountpoint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    std::string message = "mountpoint " + path + ": " + errno_text(err);
    if (err == ENOTCONN) message += " (a dead FUSE mount; clear it with: fusermount3 -u -z " + path + ")";
    return message;
  }
  if (!S_ISDIR(st.st_mode)) return "mountpoint " + path + " is not a directory";
  return std::nullopt;
}

// Going to the background. fuse_daemonize() would fork after the region is
// open, and a forked child does not inherit the POSIX record lock that
// keeps a second writer out; nor could it report a failed open. So the
// daemon forks first: the child does all the work while the parent waits
// for one byte ("mounted") and otherwise exits with the child's status, the
// child having printed why on the shared stderr.
class Detacher {
 public:
  // Returns nothing in the child, which goes on to mount; in the parent (or
  // on failure to fork) returns the status to exit with.
  std::optional<int> fork_and_wait() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      std::fprintf(stderr, "pkfs: pipe: %s\n", errno_text(errno).c_str());
      return 1;
    }
    pid_t child = ::fork();
    if (child < 0) {
      std::fprintf(stderr, "pkfs: fork: %s\n", errno_text(errno).c_str());
      return 1;
    }
    if (child == 0) {
      ::close(fds[0]);
      m_ready_fd = fds[1];
      ::setsid();
      return std::nullopt;
    }
    ::close(fds[1]);
    char byte = 0;
    ssize_t got = 0;
    do {
      got = ::read(fds[0], &byte, 1);
    } while (got < 0 && errno == EINTR);
    if (got == 1) return 0;  // mounted; the child carries on alone
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
      std::fprintf(stderr, "pkfs: the daemon died during startup (signal %d)\n", WTERMSIG(status));
      return 1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1;
  }

  // In the child, once mounted: tells the parent to exit 0, lets go of the
  // terminal and the working directory.
  void detached() {
    if (m_ready_fd < 0) return;
    if (::chdir("/") != 0) {
      // Harmless: we only hold on to the old directory.
    }
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      if (null > STDERR_FILENO) ::close(null);
    }
    char byte = '1';
    ssize_t written;
    do {
      written = ::write(m_ready_fd, &byte, 1);
    } while (written < 0 && errno == EINTR);
    ::close(m_ready_fd);
    m_ready_fd = -1;
  }

 private:
  int m_ready_fd = -1;
};

// Owns a fuse_args for fuse_session_new.
class FuseArgs {
 public:
  FuseArgs() { m_args = FUSE_ARGS_INIT(0, nullptr); }
  ~FuseArgs() { fuse_opt_free_args(&m_args); }
  FuseArgs(const FuseArgs&) = delete;
  FuseArgs& operator=(const FuseArgs&) = delete;
  bool add(const std::string& arg) { return fuse_opt_add_arg(&m_args, arg.c_str()) == 0; }
  fuse_args* get() { return &m_args; }

 private:
  fuse_args m_args;
};

std::string mount_options(const Options& options) {
  char* joined = nullptr;
  auto add = [&joined](const std::string& option) { fuse_opt_add_opt(&joined, option.c_str()); };
  add("default_permissions");
  for (const std::string& option : options.fuse_options) add(option);
  // fsname may hold commas or backslashes: escape it.
  fuse_opt_add_opt_escaped(&joined, ("fsname=" + options.fsname.value_or(options.region)).c_str());
  add("subtype=" + options.subtype.value_or("pkfs"));
  std::string result = joined != nullptr ? joined : "";
  std::free(joined);
  return result;
}

// ---- taking over a live connection (fs/takeover) ---------------------------

// Opens the region (exclusively) and the filesystem on it: at mount, after
// a takeover, and when a failed hand-over gives the region back.
Result<std::unique_ptr<core::Filesystem>> open_filesystem(const Options& options, core::Takeover takeover,
                                                          std::vector<core::InheritedReferences> inherited) {
  // region::open's own "does not exist" advice is mkfs's; say the daemon's.
  struct stat region_stat {};
  if (::stat(options.region.c_str(), &region_stat) != 0 && errno == ENOENT) {
    return Error(ENOENT, options.region + ": no such region (create and format one with mkfs.pkfs -s SIZE " +
                             options.region + ")");
  }
  region::OpenOptions region_options{};
  region_options.access = options.read_only ? region::Access::kReadOnly : region::Access::kReadWrite;
  region_options.locking = region::Locking::kExclusive;
  auto opened_region = region::open(options.region, region_options);
  if (!opened_region) return std::move(opened_region).error();
  core::OpenOptions fs_options;
  fs_options.read_only = options.read_only;
  fs_options.takeover = takeover;
  fs_options.inherited = std::move(inherited);
  fs_options.log = [region = options.region](const std::string& line) {
    g_logger.warning(region + ": " + line);
  };
  auto opened_fs = core::Filesystem::open(std::move(opened_region).value(), fs_options);
  if (!opened_fs) {
    const Error& error = opened_fs.error();
    // A region without a superblock is usually one nobody formatted yet.
    std::string hint = error.code() == ENODATA ? " (is it formatted? see mkfs.pkfs)" : "";
    return Error(error.code(), options.region + ": " + error.message() + hint);
  }
  return std::move(opened_fs).value();
}

// What a successor needs to know of this mount (protocol.h, Params).
Result<takeover::Params> handover_params(const Options& options, const std::string& control_path) {
  takeover::Params params;
  TRY(takeover::set_param(params.region, sizeof params.region, options.region, "the region path"));
  TRY(takeover::set_param(params.mountpoint, sizeof params.mountpoint, options.mountpoint, "the mountpoint"));
  TRY(takeover::set_param(params.control, sizeof params.control, control_path, "the control socket path"));
  params.read_only = options.read_only ? 1 : 0;
  params.holds_per_process = options.limits.holds_per_process;
  params.holds_per_uid = options.limits.holds_per_uid;
  params.keeper = options.keeper ? 1 : 0;
  params.background_zeroing_off = options.background_zeroing ? 0 : 1;
  params.owner_uid = static_cast<uint32_t>(::geteuid());
  return params;
}

// A successor serves the mount as its predecessor was told to.
void adopt_params(Options& options, const takeover::Params& params) {
  options.region = std::string(params.region, strnlen(params.region, sizeof params.region));
  options.control = std::string(params.control, strnlen(params.control, sizeof params.control));
  options.read_only = params.read_only != 0;
  options.limits.holds_per_process = params.holds_per_process;
  options.limits.holds_per_uid = params.holds_per_uid;
  options.keeper = params.keeper != 0;
  options.background_zeroing = params.background_zeroing_off == 0;
}

// Where the incoming connection comes from: `pkfs --takeover`, or a
// service that systemd restarted with the connection in its fd store.
Result<std::optional<takeover::Incoming>> incoming_connection(const Options& options) {
  if (options.takeover) {
    auto got = takeover::request(options.mountpoint, PKFS_VERSION);
    if (!got) return got.error().with_context("cannot take over " + options.mountpoint);
    return std::optional<takeover::Incoming>(std::move(got).value());
  }
  return takeover::take_from_systemd(options.mountpoint,
                                     [](const std::string& line) { g_logger.warning(line); });
}

// Tests only (builds with PKFS_TESTS; see CMakeLists.txt): make a successor
// fail after it opened the region, or wait up to 10 s before it answers (so
// that a second successor meets the first).
std::optional<std::string> test_hook_failure() {
#ifdef PKFS_TEST_HOOKS
  // NOLINTBEGIN(concurrency-mt-unsafe): the daemon never sets its environment
  if (const char* delay = std::getenv("PKFS_TAKEOVER_TEST_DELAY_MS")) {
    ::usleep(
        static_cast<useconds_t>(std::min<unsigned long>(std::strtoul(delay, nullptr, 10), 10000) * 1000));
  }
  const char* fail = std::getenv("PKFS_TAKEOVER_TEST_FAIL");
  // NOLINTEND(concurrency-mt-unsafe)
  if (fail != nullptr && std::strcmp(fail, "validate") == 0)
    return std::string("region validation failed (test)");
#endif
  return std::nullopt;
}

int run(Options options, Detacher& detacher) {
  auto incoming_result = incoming_connection(options);
  if (!incoming_result) {
    g_logger.error(incoming_result.error().message());
    return 1;
  }
  std::optional<takeover::Incoming> incoming = std::move(incoming_result).value();
  if (incoming) adopt_params(options, incoming->params);
  // A successor that cannot serve says so to the daemon that handed over,
  // which then serves on.
  auto refuse_incoming = [&incoming](const std::string& message) {
    if (!incoming) return;
    takeover::send_verdict(*incoming, EIO, message);
    if (incoming->fd >= 0) ::close(incoming->fd);
    incoming->fd = -1;
  };

  // The session comes before the filesystem: libfuse refuses bad options
  // here, and until core opens it the region is only locked, not touched.
  fuse::Adapter adapter([](const std::string& line) { g_logger.warning(line); });
  FuseArgs args;
  bool built = args.add("pkfs") && args.add("-o") && args.add(mount_options(options));
  if (built && options.debug) built = args.add("-d");
  if (!built) {
    g_logger.error("out of memory building the FUSE arguments");
    refuse_incoming("out of memory");
    return 1;
  }
  const fuse_lowlevel_ops& ops = fuse::Adapter::operations();
  fuse_session* session = fuse_session_new(args.get(), &ops, sizeof ops, &adapter);
  if (session == nullptr) {
    g_logger.error("cannot start a FUSE session (see the message above)");
    refuse_incoming("cannot start a FUSE session");
    return 1;
  }
  if (fuse_set_signal_handlers(session) != 0) {
    g_logger.error("cannot install signal handlers");
    refuse_incoming("cannot install signal handlers");
    fuse_session_destroy(session);
    return 1;
  }
  auto end_session = [session]() {
    fuse_remove_signal_handlers(session);
    fuse_session_destroy(session);
  };

  auto opened_fs =
      open_filesystem(options, incoming ? incoming->mode : core::Takeover::kNone,
                      incoming ? incoming->references : std::vector<core::InheritedReferences>{});
  if (!opened_fs) {
    g_logger.error(opened_fs.error().message());
    refuse_incoming(opened_fs.error().message());
    end_session();
    return 1;
  }
  std::unique_ptr<core::Filesystem> fs = std::move(opened_fs).value();
  if (!fs->open_report().was_clean) {
    // Recovery and reclaimed orphans, if any, were logged by core above.
    g_logger.warning(options.region +
                     " was not cleanly unmounted (the previous daemon was killed or crashed)");
  }
  adapter.attach(*fs);
  fuse::HeldInodes held;
  const std::string control_path = options.control.value_or(fuse::ControlServer::default_path(*fs));
  auto make_control = [&]() {
    return std::make_unique<fuse::ControlServer>(*fs, held, control_path, options.mountpoint, options.region,
                                                 options.limits,
                                                 [](const std::string& line) { g_logger.info(line); });
  };
  std::unique_ptr<fuse::ControlServer> control = make_control();
  adapter.set_control(control->socket_path(), &held);

  // Marks the region clean; the one step every exit after open takes.
  auto close_fs = [&fs, &options]() {
    auto closed = fs->close();
    if (!closed) {
      g_logger.error(options.region + ": could not mark the filesystem clean: " + closed.error().message());
      return 1;
    }
    return 0;
  };

  const unsigned workers = options.single_threaded ? 1 : 8;
  auto log_warning = [](const std::string& line) { g_logger.warning(line); };
  std::unique_ptr<takeover::Connection> connection;
  if (incoming) {
    auto adopted =
        takeover::Connection::adopted(session, incoming->fd, incoming->params.init, workers, log_warning);
    incoming->fd = -1;  // the session's now (fuse_session_destroy closes it)
    std::optional<std::string> refusal;
    if (!adopted) refusal = adopted.error().message();
    if (!refusal) refusal = test_hook_failure();
    if (refusal) {
      g_logger.error("cannot take over " + options.mountpoint + ": " + *refusal);
      // The region goes back first: the old daemon reopens it on our word.
      close_fs();
      fs.reset();
      refuse_incoming(*refusal);
      end_session();
      return 1;
    }
    connection = std::move(adopted).value();
  } else {
    if (fuse_session_mount(session, options.mountpoint.c_str()) != 0) {
      g_logger.error("cannot mount on " + options.mountpoint);
      end_session();
      close_fs();
      return 1;
    }
    auto served = takeover::Connection::mounted(session, workers, log_warning);
    if (!served) {
      g_logger.error(served.error().message());
      fuse_session_unmount(session);
      end_session();
      close_fs();
      return 1;
    }
    connection = std::move(served).value();
  }
  auto params = handover_params(options, control_path);
  if (!params) g_logger.warning(params.error().message() + ": no hand-over possible");
  if (!incoming && params) {
    // Before any thread starts: the keeper is forked.
    if (options.keeper) {
      if (auto kept =
              takeover::spawn_keeper("/proc/self/exe", options.mountpoint, *connection, params.value(),
                                     [](const std::string& line) { g_logger.info(line); });
          !kept) {
        g_logger.warning("no keeper: " + kept.error().message());
      }
    }
    connection->on_init([mountpoint = options.mountpoint, base = params.value(),
                         fd = connection->fd()](const takeover::InitRecord& init) {
      takeover::Params with_init = base;
      with_init.init = init;
      auto stored = takeover::store_in_systemd(mountpoint, fd, with_init,
                                               [](const std::string& line) { g_logger.info(line); });
      if (!stored) g_logger.warning(stored.error().message());
    });
  }
  if (auto started = control->start(session); !started) {
    g_logger.error(started.error().message());
    connection.reset();
    close_fs();
    fs.reset();
    refuse_incoming(started.error().message());
    if (!incoming) fuse_session_unmount(session);
    end_session();
    return 1;
  }
  std::unique_ptr<takeover::Listener> listener;
  if (params) {
    auto listening = takeover::Listener::start(options.mountpoint, *connection,
                                               [](const std::string& line) { g_logger.info(line); });
    if (listening) {
      listener = std::move(listening).value();
    } else {
      g_logger.warning("no hand-over socket: " + listening.error().message());
    }
  }
  // After a crash, the kernel re-sends what the dead daemon had read and not
  // answered, before any worker reads: a re-send moves every request read
  // and unanswered back to the queue, so one sent while this daemon's
  // workers run would hand them requests they are answering already (a
  // CREATE run again after the client had renamed the file left a second
  // name behind). A planned hand-over leaves nothing unanswered.
  if (incoming && incoming->mode == core::Takeover::kUnknown) {
    if (connection->kernel_has_resend()) {
      if (auto resent = connection->notify_resend(); !resent) g_logger.warning(resent.error().message());
    } else {
      g_logger.warning(
          "this kernel has no FUSE_NOTIFY_RESEND: requests the previous daemon had read stay "
          "unanswered");
    }
  }
  connection->start();
  if (incoming) {
    // Serving already when the old daemon hears it may go: nothing can fail
    // after this point, and every millisecond here is a client's stall.
    takeover::send_verdict(*incoming, 0, "");
    g_logger.info("took over " + options.mountpoint + " from " + incoming->source + "; region " +
                  options.region + "; control socket " + control->socket_path());
  } else {
    g_logger.info("mounted " + options.region + " on " + options.mountpoint +
                  (options.read_only ? " (read-only)" : "") + "; control socket " + control->socket_path());
  }
  if (g_logger.to_syslog()) {
    g_logger.set_stderr(false);
    fuse_set_log_func(fuse_log_to_syslog);
  }
  detacher.detached();
  if (options.background_zeroing && !options.read_only) fs->start_background_zeroing();
  fuse::notify_ready("serving " + options.region + " on " + options.mountpoint);

  bool handed_over = false;
  bool lost = false;  // a failed hand-over that could not resume either
  while (!connection->wait()) {
    std::optional<int> channel = listener ? listener->take() : std::nullopt;
    if (!channel) continue;
    takeover::Params with_init = params.value();
    with_init.init = connection->init().value_or(takeover::InitRecord{});
    auto let_go = [&]() -> Result<std::vector<core::InheritedReferences>> {
      control->stop();
      std::vector<core::InheritedReferences> references = fs->export_references();
      close_fs();
      fs.reset();
      return references;
    };
    auto resume = [&](const std::vector<core::InheritedReferences>& references) -> Result<void> {
      lost = true;
      // A successor that gave up may still be on its way out with the
      // region: wait for it a little.
      auto reopened = open_filesystem(options, core::Takeover::kExact, references);
      for (int attempt = 0; !reopened && attempt < 50; ++attempt) {
        ::usleep(100 * 1000);
        reopened = open_filesystem(options, core::Takeover::kExact, references);
      }
      if (!reopened) return std::move(reopened).error();
      fs = std::move(reopened).value();
      if (options.background_zeroing && !options.read_only) fs->start_background_zeroing();
      adapter.attach(*fs);
      control = make_control();
      TRY(control->start(session));
      lost = false;
      return success();
    };
    if (listener->hand_over(*channel, with_init, let_go, resume)) {
      handed_over = true;
      break;
    }
  }
  if (handed_over) {
    // The successor serves the mount now: no unmount, and the region is
    // its. Closing our copy of the descriptor leaves the connection alone.
    listener.reset();
    connection.reset();
    end_session();
    if (lost) {
      g_logger.error("the hand-over of " + options.mountpoint +
                     " failed and the region could not be reopened; the mount has no daemon now (pkfs "
                     "--takeover " +
                     options.mountpoint + " can still pick it up, or unmount it)");
    } else {
      g_logger.info("handed " + options.mountpoint + " over; exiting");
    }
    std::fflush(nullptr);
    ::_exit(lost ? 1 : 0);
  }
  fuse::notify_stopping();
  connection->quiesce();
  control->stop();
  listener.reset();
  if (incoming) {
    // libfuse unmounts only what it mounted; after a signal, unmount here
    // (after an unmount this finds no mount: EINVAL).
    (void)::umount2(options.mountpoint.c_str(), MNT_DETACH);
  } else {
    fuse_session_unmount(session);
  }
  if (options.keeper) takeover::release_keeper(options.mountpoint);
  takeover::remove_from_systemd(options.mountpoint);
  connection.reset();
  end_session();
  int status = close_fs();
  if (status == 0) g_logger.info("unmounted " + options.mountpoint + "; " + options.region + " is clean");
  if (control->abandoned_workers() > 0) {
    // Threads still closing a client's descriptor: leave without running
    // exit handlers beside them; the kernel ends them with the process.
    std::fflush(nullptr);
    ::_exit(status);
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options options;
    if (auto status = parse_arguments(argc, argv, options)) return *status;
    if (options.keeper_process) return takeover::keeper_main(options.mountpoint);
    // A successor does not look at the mountpoint: if its daemon is dead,
    // stat(2) there waits for the successor itself. Nor does a service
    // systemd restarted with descriptors (its connection may be stored).
    bool restarted_by_systemd =
        std::getenv("LISTEN_FDS") != nullptr;  // NOLINT(concurrency-mt-unsafe): one thread yet
    if (auto problem =
            options.takeover || restarted_by_systemd ? std::nullopt : check_mountpoint(options.mountpoint)) {
      std::fprintf(stderr, "pkfs: %s\n", problem->c_str());
      return 1;
    }
    Detacher detacher;
    if (!options.foreground) {
      if (auto status = detacher.fork_and_wait()) return *status;
      g_logger.set_syslog(true);
    }
    return run(options, detacher);
  } catch (const std::exception& e) {
    // Requests never get here (the adapter catches); startup might.
    std::fprintf(stderr, "pkfs: %s\n", e.what());
    return 1;
  }
}
