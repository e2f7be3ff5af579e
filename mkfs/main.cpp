// mkfs.pkfs: format a region. A thin main over core::format_region.
//
//   mkfs.pkfs [-L label] [-U uuid] [-s size] [-N inodes] [-J journal] [-n] [-F] [-q] REGION
//
// Exit status: 0 formatted (or dry run done), 1 error (bad option, bad
// region, refused), as mke2fs.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
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
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return std::nullopt;
  size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used, 10);
  } catch (...) {
    return std::nullopt;
  }
  std::string suffix = text.substr(used);
  if (suffix.size() == 3 && (suffix.substr(1) == "iB" || suffix.substr(1) == "ib")) suffix = suffix.substr(0, 1);
  unsigned shift = 0;
  if (suffix.empty()) shift = 0;
  else if (suffix == "K" || suffix == "k") shift = 10;
  else if (suffix == "M" || suffix == "m") shift = 20;
  else if (suffix == "G" || suffix == "g") shift = 30;
  else if (suffix == "T" || suffix == "t") shift = 40;
  else return std::nullopt;
  if (shift != 0 && value > (UINT64_MAX >> shift)) return std::nullopt;
  return static_cast<uint64_t>(value) << shift;
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

void print_summary(const region::Info& info, const format::Layout& layout, const format::Superblock* sb,
                   const std::string& label) {
  std::printf("Region:           %s\n", info.path.c_str());
  std::printf("Kind:             %s\n", region::kind_name(info.kind));
  std::printf("Size:             %llu bytes (%s)\n", static_cast<unsigned long long>(info.size_bytes),
              human(info.size_bytes).c_str());
  std::printf("Page size:        %s\n", human(info.page_size).c_str());
  std::printf("Survives kexec:   %s\n", info.survives_kexec ? "yes" : "no");
  if (sb != nullptr) std::printf("UUID:             %s\n", format::uuid_to_string(sb->uuid).c_str());
  std::printf("Label:            %s\n", label.empty() ? "(none)" : label.c_str());
  std::printf("Inodes:           %llu\n", static_cast<unsigned long long>(layout.inode_count - 1));
  std::printf("Directory slots:  %llu\n", static_cast<unsigned long long>(layout.dirent_count));
  std::printf("Journal:          %s\n", human(layout.journal_bytes).c_str());
  std::printf("Metadata:         %s\n", human(layout.data_offset + format::kChunkSize).c_str());
  std::printf("Usable space:     %s (%llu chunks of 2 MiB)\n", human(layout.usable_bytes).c_str(),
              static_cast<unsigned long long>(layout.usable_bytes / format::kChunkSize));
}

int fail(const std::string& message) {
  std::fprintf(stderr, "mkfs.pkfs: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Format a pkfs region: a hugetlbfs file, a device-dax device, or a file on tmpfs.", "mkfs.pkfs"};
  std::string path, label, uuid_text, size_text, journal_text;
  uint64_t inode_count = 0;
  bool dry_run = false, force = false, quiet = false;
  app.add_option("REGION", path, "Region to format: a file on hugetlbfs or tmpfs, or /dev/daxX.Y")->required();
  app.add_option("-L,--label", label, "Volume label, at most 63 bytes");
  app.add_option("-U,--uuid", uuid_text, "Filesystem UUID (default: random)");
  app.add_option("-s,--size", size_text,
                 "Create the region file with this size if it does not exist (e.g. 256M, 4G); "
                 "a multiple of the backing page size, at least 16M");
  app.add_option("-N,--inodes", inode_count, "Number of inodes (default: one per 64 KiB, 1024 to 4194304)");
  app.add_option("-J,--journal-size", journal_text, "Journal size (default: 1M, 4M for regions of 4G or more)");
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

  core::FormatOptions options;
  options.label = label;
  options.layout.inode_count = inode_count;
  if (label.size() > 63) return fail("label \"" + label + "\" is longer than 63 bytes");
  if (!uuid_text.empty()) {
    std::array<uint8_t, 16> uuid{};
    uint8_t raw[16];
    if (!format::uuid_from_string(uuid_text, raw)) return fail("invalid UUID \"" + uuid_text + "\" (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
    std::copy(std::begin(raw), std::end(raw), uuid.begin());
    options.uuid = uuid;
  }
  std::optional<uint64_t> size;
  if (!size_text.empty()) {
    size = parse_size(size_text);
    if (!size || *size == 0) return fail("invalid size \"" + size_text + "\" (want a number with K, M, G or T)");
  }
  if (!journal_text.empty()) {
    auto journal = parse_size(journal_text);
    if (!journal) return fail("invalid journal size \"" + journal_text + "\"");
    options.layout.journal_bytes = *journal;
  }
  if (inode_count > (1ull << 32) - 1) return fail("too many inodes: at most 4294967295");

  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && size) {
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) != *size) {
      return fail(path + " exists with " + std::to_string(st.st_size) + " bytes; -s " + size_text +
                  " does not match (mkfs.pkfs never resizes a region)");
    }
    if (!S_ISREG(st.st_mode)) return fail(path + " is a device: its size is fixed, drop -s");
  }
  if (!exists && !size) return fail(path + " does not exist; give -s SIZE to create it");

  if (dry_run) {
    region::Info info;
    if (exists) {
      auto probed = region::probe(path);
      if (!probed) return fail(probed.error().message());
      info = probed.value();
    } else {
      info.path = path;
      info.size_bytes = *size;
      info.kind = region::Kind::kTmpfs;
      std::string parent = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
      auto probed_parent = region::probe(parent.empty() ? "." : parent);
      (void)probed_parent;
    }
    auto layout = format::compute_layout(info.size_bytes, options.layout);
    if (!layout) return fail(path + ": " + layout.error().message());
    if (!quiet) {
      std::printf("Dry run: nothing written%s.\n", exists ? "" : ", nothing created");
      print_summary(info, layout.value(), nullptr, label);
    }
    return 0;
  }

  region::OpenOptions open_options;
  open_options.access = region::Access::kReadWrite;
  open_options.create_size_bytes = size;
  auto opened = region::open(path, open_options);
  if (!opened) return fail(opened.error().message());
  std::unique_ptr<region::Region> region = std::move(opened).value();

  if (!force) {
    auto primary = core::read_superblock(*region);
    auto backup = primary ? primary : core::read_superblock(*region, true);
    if (backup) {
      const format::Superblock& sb = backup.value();
      std::string old_label(sb.label, strnlen(sb.label, sizeof sb.label));
      return fail(path + " already holds a pkfs filesystem (UUID " + format::uuid_to_string(sb.uuid) +
                  (old_label.empty() ? "" : ", label \"" + old_label + "\"") + "); use -F to overwrite it");
    }
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
    print_summary(region->info(), formatted.value(), sb ? &sb.value() : nullptr, label);
  }
  return 0;
}
