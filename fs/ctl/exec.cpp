// pkfsctl exec --hold FILE [--hold FILE...] [--read-only] [-q] -- COMMAND [ARGS...]:
// holds files for the lifetime of a program that maps them itself.
//
// A VMM that maps guest RAM straight from the region (QEMU >= 8.1's
// memory-backend-file with offset=, see map.cpp) does not link libpkfs and
// so takes no hold: nothing would keep its file from being shrunk, punched
// or freed under it. This command asks the daemon for a hold on each FILE
// (control op kHold: the checks of a mapping, see fs/client/protocol.h) for
// its own process, then replaces itself with COMMAND by execvp: the same
// pid and start time, so the holds are COMMAND's, and the daemon's pidfd
// watch releases them when it exits. Holds are on the region: they survive
// a restart of the daemon like any other.
//
// All or nothing: when a hold cannot be taken, the ones already taken are
// released, the reason is printed, and the command is not run (exit 1). A
// COMMAND that cannot be executed: holds released, exit 127. COMMAND must
// stay the process that holds: QEMU's -daemonize (fork, parent exits) is
// refused, since the holds would go when the parent exits.
//
// Files are opened read-write and held for a writable mapping; --read-only
// opens them read-only and holds them for a read-only mapping (QEMU's
// readonly=on). Either way the caller must be allowed to write the file
// (a hold restricts its owner) and to open the region with that access.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fs/ctl/command.h"
#include "fs/ctl/target.h"

namespace pkfs::ctl {
namespace {

using namespace control;

int fail(const std::string& message) {
  std::fprintf(stderr, "pkfsctl exec: %s\n", message.c_str());
  return kExitFailure;
}

struct Taken {
  std::string file;
  std::string socket;
  uint64_t id = 0;
  uint64_t ino = 0;
};

// Takes a hold on `file` for this process.
Result<Taken> take_hold(const std::string& file, bool read_only) {
  auto target = resolve_target(file);
  if (!target) return std::move(target).error();
  if (!target->mounted()) {
    return Error(EINVAL,
                 file + " is not on a mounted pkfs (a hold is taken through the daemon of its mount)");
  }
  int fd =
      ::open(file.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    return Error::from_errno(errno, "cannot open " + file + (read_only ? " for reading" : " read-write") +
                                        " (a hold needs write permission on the file)");
  }
  Request request;
  request.op = static_cast<uint32_t>(Op::kHold);
  request.arg0 = read_only ? kAccessRead : kAccessRead | kAccessWrite;
  auto payload = request_reply(target->socket, request, fd);
  ::close(fd);
  if (!payload) return payload.error().with_context(file);
  MapReply head;
  if (payload->size() < sizeof head) return Error(EPROTO, file + ": short hold reply from the pkfs daemon");
  std::memcpy(&head, payload->data(), sizeof head);
  return Taken{file, target->socket, head.hold_id, head.ino};
}

// Gives back a hold this process took (kReleaseOwnHold: never another's).
void release(const Taken& hold) {
  Request request;
  request.op = static_cast<uint32_t>(Op::kRelease);
  request.flags = kReleaseOwnHold;
  request.arg0 = hold.id;
  request.arg1 = hold.ino;
  if (auto released = request_reply(hold.socket, request); !released) {
    fail("releasing hold " + std::to_string(hold.id) + " on " + hold.file + ": " +
         released.error().message());
  }
}

int run_exec(const std::vector<std::string>& files, const std::vector<std::string>& command, bool read_only,
             bool quiet) {
  if (command.empty()) return fail("no command to run (pkfsctl exec --hold FILE -- COMMAND ARGS...)");
  // The holds are this process's: a command that forks and lets this
  // process exit (QEMU's -daemonize) would lose them at once.
  for (const std::string& arg : command) {
    if (arg == "-daemonize" || arg == "--daemonize") {
      return fail(arg + " makes " + command[0] +
                  " fork and exit, and its holds would go with the process that exits; run it in the "
                  "foreground (under a supervisor if need be)");
    }
  }
  std::vector<Taken> taken;
  auto release_all = [&taken] {
    for (auto it = taken.rbegin(); it != taken.rend(); ++it) release(*it);
  };
  for (const std::string& file : files) {
    auto hold = take_hold(file, read_only);
    if (!hold) {
      release_all();
      return fail("cannot hold " + hold.error().message() + "; " + command[0] + " not run");
    }
    taken.push_back(*hold);
    if (!quiet) {
      std::fprintf(stderr, "pkfsctl exec: hold %" PRIu64 " on %s for pid %d (%s)\n", hold->id, file.c_str(),
                   static_cast<int>(::getpid()), command[0].c_str());
    }
  }
  std::vector<char*> argv;
  argv.reserve(command.size() + 1);
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  ::execvp(argv[0], argv.data());
  int err = errno;
  release_all();
  fail("cannot run " + command[0] + ": " + errno_text(err) + " (holds released)");
  return 127;
}

void setup(CLI::App& app, int& exit_code) {
  auto* sub =
      app.add_subcommand("exec", "Hold files for the lifetime of a command (a VMM that maps them itself)");
  static std::vector<std::string> files;
  static bool read_only = false, quiet = false;
  sub->add_option("--hold", files, "A file on a pkfs mount to hold (repeatable)")
      ->required()
      ->allow_extra_args(false);
  sub->add_flag("--read-only", read_only, "Hold for a read-only mapping (open the files read-only)");
  sub->add_flag("-q,--quiet", quiet, "Do not print the holds taken");
  // The command: everything after `--`, which main() keeps from CLI11.
  sub->footer(
      "Example: pkfsctl exec --hold /mnt/pkfs/vm1/ram -- qemu-system-x86_64 $(pkfsctl map --qemu "
      "/mnt/pkfs/vm1/ram) -machine memory-backend=ram0 ...");
  sub->callback([&exit_code] { exit_code = run_exec(files, command_after_dashes(), read_only, quiet); });
}

const Registration registration{setup};

}  // namespace
}  // namespace pkfs::ctl
