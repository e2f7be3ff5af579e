// mkfs.pkfs: format a region. A thin main over core::format_region.
//
//   mkfs.pkfs [-L label] [-U uuid] [-s size] [-N inodes] [-J journal] [-n] [-F] [-q] REGION
//
// Exit status: 0 formatted (or dry run done), 1 error (bad option, bad
// region, refused), as mke2fs.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "fs/core/filesystem.h"
#include "fs/region/region.h"

namespace {

using namespace pkfs;

// "256M", "1G", "1T", "4096": binary suffixes K, M, G, T (optionally "iB").
std::optional<uint64_t> parse_size(const std::string& text) {
  if (text.empty() || std::isdigit(static_cast<unsigned char>(text[0])) == 0) return std::nullopt;
  size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used, 10);
  } catch (...) {
    return std::nullopt;
  }
  std::string suffix = text.substr(used);
  if (suffix.size() == 3 && (suffix.substr(1) == "iB" || suffix.substr(1) == "ib")) {
    suffix = suffix.substr(0, 1);
  }
  unsigned shift = 0;
  if (!suffix.empty()) {
    if (suffix.size() != 1) return std::nullopt;
    switch (suffix[0]) {
      case 'K':
      case 'k': shift = 10; break;
      case 'M':
      case 'm': shift = 20; break;
      case 'G':
      case 'g': shift = 30; break;
      case 'T':
      case 't': shift = 40; break;
      default: return std::nullopt;
    }
  }
  if (shift != 0 && value > (UINT64_MAX >> shift)) return std::nullopt;
  return static_cast<uint64_t>(value) << shift;
}

// Plain decimal: no sign, no suffix.
std::optional<uint64_t> parse_count(const std::string& text) {
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  if (text.empty() || text.size() > 19 || !std::all_of(text.begin(), text.end(), digit)) return std::nullopt;
  return std::stoull(text);
}

// What region::open() would create at `path` (which does not exist) with
// `size` bytes, for a dry run: the same checks, nothing created.
Result<region::Info> planned_region(const std::string& path, uint64_t size) {
  constexpr uint64_t kHugetlbfsMagic = 0x958458f6;
  constexpr uint64_t kTmpfsMagic = 0x01021994;
  auto slash = path.find_last_of('/');
  std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct statfs fs {};
  if (::statfs(parent.c_str(), &fs) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return Error(ENOENT, path + ": cannot create, directory " + parent + " does not exist");
    }
    return Error::from_errno(err, path + ": cannot create");
  }
  region::Info info;
  info.path = path;
  info.size_bytes = size;
  auto magic = static_cast<uint64_t>(fs.f_type);
  if (magic == kHugetlbfsMagic) {
    info.kind = region::Kind::kHugetlbfs;
    info.page_size = static_cast<uint64_t>(fs.f_bsize);
  } else if (magic == kTmpfsMagic) {
    info.kind = region::Kind::kTmpfs;
    info.page_size = 4096;
  } else {
    return Error(ENOTSUP, path + ": cannot create a region in " + parent +
                              ", which is neither hugetlbfs nor tmpfs; pkfs regions live in a file on "
                              "hugetlbfs or tmpfs, or on a device-dax character device (/dev/daxN.M)");
  }
  if (size < format::kMinRegionBytes) {
    return Error(EINVAL, path + ": too small to format: " + std::to_string(size) +
                             " bytes, pkfs needs at least 16 MiB");
  }
  if (size % info.page_size != 0) {
    return Error(EINVAL, path + ": size " + std::to_string(size) +
                             " bytes is not a multiple of the page size (" + std::to_string(info.page_size) +
                             " bytes)");
  }
  return info;
}

std::string human(uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  uint64_t value = bytes;
  while (unit < 4 && value >= 1024 && value % 1024 == 0) {
    value /= 1024;
    ++unit;
  }
  return std::to_string(value) + " " + units[unit];
}

// `uuid` is empty when it is yet to be drawn (dry run without -U).
void print_summary(const region::Info& info, const format::Layout& layout, const std::string& uuid,
                   const std::string& label) {
  std::printf("Region:           %s\n", info.path.c_str());
  std::printf("Kind:             %s\n", region::kind_name(info.kind));
  std::printf("Size:             %llu bytes (%s)\n", static_cast<unsigned long long>(info.size_bytes),
              human(info.size_bytes).c_str());
  std::printf("Page size:        %s\n", human(info.page_size).c_str());
  std::printf("Survives kexec:   %s\n", info.survives_kexec ? "yes" : "no");
  std::printf("UUID:             %s\n", uuid.empty() ? "(random)" : uuid.c_str());
  std::printf("Label:            %s\n", label.empty() ? "(none)" : label.c_str());
  std::printf("Inodes:           %llu\n", static_cast<unsigned long long>(layout.inode_count - 1));
  std::printf("Directory slots:  %llu\n", static_cast<unsigned long long>(layout.dirent_count));
  std::printf("Journal:          %s\n", human(layout.journal_bytes).c_str());
  std::printf("Metadata:         %s\n", human(layout.data_offset + format::kChunkSize).c_str());
  std::printf("Usable space:     %s (%llu chunks of 2 MiB)\n", human(layout.usable_bytes).c_str(),
              static_cast<unsigned long long>(layout.usable_bytes / format::kChunkSize));
  if (layout.page_bytes != 0) {
    // Large pages: what a VMM can map with them, and what the rest is for.
    std::printf("Guest RAM:        %llu whole pages of %s (%s), from offset %s\n",
                static_cast<unsigned long long>(layout.guest_pages), human(layout.page_bytes).c_str(),
                human(layout.guest_pages * layout.page_bytes).c_str(),
                human(layout.reserved_pages * layout.page_bytes).c_str());
    std::printf("Reserved pages:   %llu (metadata, backup superblock, and %s for small files)\n",
                static_cast<unsigned long long>(layout.reserved_pages),
                human((layout.backup_chunk - layout.metadata_chunks) * format::kChunkSize).c_str());
  }
}

int fail(const std::string& message) {
  std::fprintf(stderr, "mkfs.pkfs: %s\n", message.c_str());
  return 1;
}

// Refuses to format over the filesystem whose superblock is `sb` (no -F).
int refuse_existing(const std::string& path, const format::Superblock& sb) {
  std::string old_label(sb.label, strnlen(sb.label, sizeof sb.label));
  return fail(path + " already holds a pkfs filesystem (UUID " + format::uuid_to_string(sb.uuid) +
              (old_label.empty() ? "" : ", label \"" + old_label + "\"") + "); use -F to overwrite it");
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"Format a pkfs region: a hugetlbfs file, a device-dax device, or a file on tmpfs.",
               "mkfs.pkfs"};
  std::string path;
  std::string label;
  std::string uuid_text;
  std::string size_text;
  std::string journal_text;
  std::string inode_text;
  bool dry_run = false;
  bool force = false;
  bool quiet = false;
  app.add_option("REGION", path, "Region to format: a file on hugetlbfs or tmpfs, or /dev/daxX.Y")
      ->required();
  app.add_option("-L,--label", label, "Volume label, at most 63 bytes");
  app.add_option("-U,--uuid", uuid_text, "Filesystem UUID (default: random)");
  app.add_option("-s,--size", size_text,
                 "Create the region file with this size if it does not exist (e.g. 256M, 4G); "
                 "a multiple of the backing page size, at least 16M");
  app.add_option("-N,--inodes", inode_text,
                 "Number of usable inodes, 15 to " + std::to_string(format::kMaxInodes) +
                     " (default: one per 64 KiB of region, at least 1024, at most 4194304)");
  app.add_option("-J,--journal-size", journal_text,
                 "Journal size, 512K to 256M (default: 1M, 4M for regions of 4G or more, plus twice the "
                 "chunk map)");
  app.add_flag("-n,--dry-run", dry_run, "Show what would be done; write nothing, create nothing");
  app.add_flag("-F,--force", force, "Overwrite an existing pkfs filesystem");
  app.add_flag("-q,--quiet", quiet, "Print nothing but errors");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 1;
  }

  // Everything is checked before the region is opened, created or written:
  // a refused mkfs leaves an existing region exactly as it was.
  core::FormatOptions options;
  options.label = label;
  if (label.size() > 63) return fail("label \"" + label + "\" is longer than 63 bytes");
  std::string uuid_shown;  // empty: drawn at random when formatting
  if (!uuid_text.empty()) {
    std::array<uint8_t, 16> uuid{};
    uint8_t raw[16];
    if (!format::uuid_from_string(uuid_text, raw)) {
      return fail("invalid UUID \"" + uuid_text + "\" (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
    }
    std::copy(std::begin(raw), std::end(raw), uuid.begin());
    options.uuid = uuid;
    uuid_shown = format::uuid_to_string(raw);
  }
  std::optional<uint64_t> size;
  if (!size_text.empty()) {
    size = parse_size(size_text);
    if (!size || *size == 0) {
      return fail("invalid size \"" + size_text + "\" (want a number with K, M, G or T)");
    }
  }
  if (!journal_text.empty()) {
    auto journal = parse_size(journal_text);
    if (!journal) return fail("invalid journal size \"" + journal_text + "\"");
    options.layout.journal_bytes = *journal;
  }
  if (!inode_text.empty()) {
    auto count = parse_count(inode_text);
    if (!count || *count < 15 || *count > format::kMaxInodes) {
      return fail("invalid inode count \"" + inode_text + "\" (want 15 to " +
                  std::to_string(format::kMaxInodes) + "; leave out -N for one per 64 KiB of region)");
    }
    options.layout.inode_count = *count;
  }

  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && size) {
    if (S_ISDIR(st.st_mode)) return fail(path + " is a directory; name a region file in it");
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) != *size) {
      return fail(path + " exists with " + std::to_string(st.st_size) + " bytes; -s " + size_text +
                  " does not match (mkfs.pkfs never resizes a region)");
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      return fail(path + " is a device: its size is fixed, drop -s");
    }
  }
  if (!exists && !size) return fail(path + " does not exist; give -s SIZE to create it");

  // The region as it is (or would be created), and the layout it would get.
  region::Info info;
  if (exists) {
    auto probed = region::probe(path);
    if (!probed) return fail(probed.error().message());
    info = probed.value();
  } else if (dry_run) {
    auto planned = planned_region(path, *size);
    if (!planned) return fail(planned.error().message());
    info = planned.value();
  } else {
    info.size_bytes = *size;  // region::open() checks the rest as it creates
  }
  // Pages larger than a chunk (1 GiB) get the large-page layout, which keeps
  // every page after the first one(s) whole for guest RAM. A region yet to
  // be created learns its page size when it is opened, below.
  options.layout.page_bytes = info.page_size;
  auto planned_layout = format::compute_layout(info.size_bytes, options.layout);
  if (!planned_layout) return fail(path + ": " + planned_layout.error().message());

  if (dry_run) {
    if (exists) {
      // Refuse as the real run would: a region in use, or one that holds a
      // filesystem without -F. A read-only, lock-free look changes nothing.
      std::string holder = region::lock_holder(path);
      if (!holder.empty()) return fail("region " + path + " is in use by " + holder);
      if (!force) {
        region::OpenOptions look;
        look.access = region::Access::kReadOnly;
        look.locking = region::Locking::kNone;
        auto opened = region::open(path, look);
        if (!opened) return fail(opened.error().message());
        auto primary = core::read_superblock(*opened.value());
        auto sb = primary ? primary : core::read_superblock(*opened.value(), true);
        if (sb) return refuse_existing(path, sb.value());
      }
    }
    if (!quiet) {
      std::printf("Dry run: nothing written%s.\n", exists ? "" : ", nothing created");
      print_summary(info, planned_layout.value(), uuid_shown, label);
    }
    return 0;
  }

  region::OpenOptions open_options;
  open_options.access = region::Access::kReadWrite;
  open_options.create_size_bytes = size;
  auto opened = region::open(path, open_options);
  if (!opened) return fail(opened.error().message());
  std::unique_ptr<region::Region> region = std::move(opened).value();
  options.layout.page_bytes = region->info().page_size;

  if (!force) {
    auto primary = core::read_superblock(*region);
    auto backup = primary ? primary : core::read_superblock(*region, true);
    if (backup) return refuse_existing(path, backup.value());
  }

  // Known-zero data lets a fresh region allocate without zeroing. A file we
  // just created is zero; an old tmpfs file is made zero by punching it
  // (which also gives its memory back). hugetlbfs pages are not punched:
  // that would drop the reservation the region relies on.
  bool known_zero = region->created();
  if (!known_zero && region->info().kind == region::Kind::kTmpfs && region->fd() >= 0) {
    known_zero = ::fallocate(region->fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                             static_cast<off_t>(region->size())) == 0;
  }
  options.data_known_zero = known_zero;
  auto formatted = core::format_region(*region, options);
  if (!formatted) {
    if (region->created()) ::unlink(path.c_str());
    return fail(path + ": " + formatted.error().message());
  }
  if (!quiet) {
    auto sb = core::read_superblock(*region);
    print_summary(region->info(), formatted.value(), sb ? format::uuid_to_string(sb->uuid) : "", label);
  }
  return 0;
}

int main(int argc, char** argv) {
  // Nothing below is expected to throw; an exception (out of memory) must
  // still end in a message and exit status 1, not in std::terminate.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    return fail(std::string("unexpected error: ") + e.what());
  }
}
