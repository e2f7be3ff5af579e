// pkfsctl map --qemu TARGET [PATH]: the QEMU (8.1 or later) arguments that
// map a guest-RAM file of pkfs straight from the region:
//
//   -object memory-backend-file,id=ram0,mem-path=REGION,offset=O,size=S,align=A,share=on
//
// Only a file in one contiguous extent can be mapped so: QEMU maps one
// range of one file. QEMU opens the region itself (it must be allowed to)
// and takes no hold of its own: run it under `pkfsctl exec --hold FILE --
// qemu-system-x86_64 ...` (exec.cpp), which holds the file for exactly
// QEMU's lifetime, so that it cannot be shrunk, punched or freed under the
// guest. stdout is the -object argument alone (for $(...)); stderr says how
// to use and hold it. Programs that link libpkfs get holds of their own
// (see fs/client/pkfs.h).
#include <cinttypes>
#include <cstdio>
#include <string>

#include "fs/ctl/command.h"
#include "fs/ctl/target.h"

namespace pkfs::ctl {
namespace {

// A byte count as QEMU's size options take it, with the largest suffix that
// divides it: 1073741824 -> "1G", 2097152 -> "2M", 4096 -> "4K".
std::string qemu_size(uint64_t bytes) {
  const char* suffixes = "KMGT";
  std::string suffix;
  for (int i = 3; i >= 0; --i) {
    uint64_t unit = uint64_t{1} << (10 * (i + 1));
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + suffixes[i];
  }
  return std::to_string(bytes);
}

int fail(const std::string& message) {
  std::fprintf(stderr, "pkfsctl map: %s\n", message.c_str());
  return kExitFailure;
}

int run_map(const std::string& argument, const std::string& path, const std::string& id) {
  auto target = resolve_target(argument);
  if (!target) return fail(target.error().message());
  Result<FileLayout> layout = Error(EINVAL, "");
  std::string name = argument;
  if (target->mounted()) {
    layout = request_stat(*target, argument);
  } else {
    if (path.empty()) return fail("with a region, name the file inside it: pkfsctl map --qemu REGION PATH");
    name = path;
    auto ino = offline_lookup(*target, path);
    if (!ino) return fail(ino.error().message());
    layout = offline_layout(*target, *ino);
  }
  if (!layout) return fail(layout.error().message());
  const control::MapReply& head = layout->head;
  if ((head.mode & S_IFMT) != S_IFREG) return fail(name + " is not a regular file");
  if (head.file_size == 0) return fail(name + " is empty; size it first (e.g. fallocate -l 4G " + name + ")");
  const auto& extents = layout->extents;
  uint64_t covered = 0;
  for (const auto& e : extents) covered = std::max(covered, e.file_offset + e.length);
  if (extents.size() != 1 || extents[0].file_offset != 0 || extents[0].length < head.mapped_bytes ||
      extents[0].region_offset % head.page_size != 0) {
    std::string why =
        extents.empty()       ? "has no data allocated"
        : extents.size() != 1 ? "is in " + std::to_string(extents.size()) + " extents"
        : extents[0].length < head.mapped_bytes
            ? "has holes (only " + std::to_string(covered) + " of " + std::to_string(head.mapped_bytes) +
                  " bytes allocated)"
            : "does not start on a " + std::to_string(head.page_size) + "-byte page of the region";
    // What to do depends on why: pages in the wrong place move when the file
    // is held once; pieces mean free space was fragmented when it was made.
    std::string fix =
        extents.size() > 1
            ? "Free space was fragmented when it was allocated (no run of free pages was that long): "
              "free a long enough run of whole pages (remove files that take part of one), then copy "
              "the file to a new one sized with fallocate -l SIZE and remove the old one; or"
            : "Hold it once (pkfsctl exec --hold " + name +
                  " -- true) to move it onto whole pages of the region, then run this again; or";
    return fail(name + " " + why +
                ", so QEMU's memory-backend-file (one contiguous range of one file) cannot map it. " + fix +
                " map it with libpkfs, which maps any number of extents");
  }
  // QEMU's size suffixes (4K, 2M, 1G): the alignment is the region's page.
  const std::string align = qemu_size(head.page_size);
  std::printf(
      "-object memory-backend-file,id=%s,mem-path=%s,offset=%" PRIu64 ",size=%" PRIu64 ",align=%s,share=on\n",
      id.c_str(), layout->region_path.c_str(), extents[0].region_offset, head.mapped_bytes, align.c_str());
  // -m in MiB when whole, else in KiB (mapped_bytes is whole pages).
  bool whole_mib = head.mapped_bytes % (uint64_t{1} << 20) == 0;
  std::string memory = std::to_string(head.mapped_bytes >> (whole_mib ? 20 : 10)) + (whole_mib ? "M" : "K");
  std::fprintf(stderr,
               "pkfsctl map: QEMU maps the region itself; run it under a hold on %s, which keeps the file's "
               "pages in place while QEMU runs and goes when it exits:\n"
               "  pkfsctl exec --hold %s -- qemu-system-x86_64 -machine memory-backend=%s -m %s \\\n"
               "    -object memory-backend-file,id=%s,mem-path=%s,offset=%" PRIu64 ",size=%" PRIu64
               ",align=%s,share=on ...\n",
               name.c_str(), target->mounted() ? name.c_str() : "MOUNT/PATH", id.c_str(), memory.c_str(),
               id.c_str(), layout->region_path.c_str(), extents[0].region_offset, head.mapped_bytes,
               align.c_str());
  return kExitOk;
}

void setup(CLI::App& app, int& exit_code) {
  auto* sub = app.add_subcommand("map", "Print the arguments that map a file directly (QEMU >= 8.1)");
  static bool qemu = false;
  static std::string argument, path, id = "ram0";
  sub->add_flag("--qemu", qemu, "QEMU memory-backend-file arguments")->required();
  sub->add_option("--id", id, "The memory backend's id (default ram0)");
  sub->add_option("FILE", argument, "A file on a pkfs mount, or a region")->required();
  sub->add_option("PATH", path, "With a region: the file's path inside it");
  sub->callback([&exit_code] { exit_code = run_map(argument, path, id); });
}

const Registration registration{setup};

}  // namespace
}  // namespace pkfs::ctl
