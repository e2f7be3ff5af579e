// tests/fuzz/seeds.cpp: writes the seed corpus of a fuzz target.
//
//   pkfs_fuzz_seeds TARGET DIRECTORY
//   pkfs_fuzz_seeds --landmarks
//
// TARGET: fuzz_mount, fuzz_check or fuzz_control. Writes small inputs
// (support.h for the format) into DIRECTORY, which must exist: for the
// region targets, every seed region with no patch and with each option, and
// patches that rewrite (with their current bytes) and reseal the fields
// mount and fsck read, so the fuzzer starts from inputs that already reach
// every structure; for fuzz_control, well-formed requests of every op and
// map replies, and a few malformed ones. Generated at test time, so no
// binary input is kept in the tree. Exit status 0, or 1 with a message.
// --landmarks prints each seed region's index, name, target-space size,
// target ranges and the region offsets of its landmarks: what a hand-written reproducer needs
// (an absolute patch takes a region offset as it is).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "fs/client/protocol.h"
#include "support.h"

using namespace pkfs;

namespace {

using Input = std::vector<uint8_t>;

// A patch that rewrites `length` bytes at region offset `offset` with what
// the seed holds there, and reseals.
void rewrite(Input& input, const fuzz::SeedImage& seed, uint64_t offset, size_t length) {
  std::span<const std::byte> bytes(seed.bytes.data() + offset, length);
  fuzz::append_patch(input, fuzz::kPatchSeal, seed.target_offset(offset), bytes);
}

struct Field {
  const char* prefix;  // landmark name prefix
  uint64_t offset;     // within the structure
  size_t length;
};

// The fields worth starting from, per structure (see fs/format/format.h).
constexpr Field kFields[] = {
    {"superblock", 0x78, 0x28},     // region_bytes .. journal_offset
    {"superblock", 0xa8, 0x40},     // the table offsets and counts
    {"superblock", 0x100, 0x8},     // state, mount_count
    {"superblock", 0x128, 0x18},    // high-water marks, error count
    {"journal", 0x08, 0x08},        // journal_bytes
    {"inode:", 0x06, 0x02},         // flags
    {"inode:", 0x18, 0x18},         // mode, nlink, uid, gid, size
    {"inode:", 0x58, 0x20},         // parent, xattr_block, extent_block, extent_count
    {"inode:", 0x78, 0x18},         // trim_block, first extent
    {"inode:", 0xf0, 0x08},         // allocated_blocks
    {"dirent:", 0x05, 0x13},        // file_type, name_length, parent_ino, ino
    {"dirent:", 0x18, 0x08},        // name
    {"extent-block:", 0x06, 0x12},  // count, owner, next
    {"extent-block:", 0x18, 0x20},  // first two extents
    {"xattr-block:", 0x06, 0x10},   // entry_count, owner, used_bytes
    {"xattr-block:", 0x18, 0x20},   // first entry
    {"hold:", 0x08, 0x20},          // ino, generation, pid, uid, start_ticks
    {"chunk-map", 0x10, 0x10},      // states of the first chunks
};

// Inputs that once crashed (or broke a strict property), rebuilt from the
// seeds' landmarks so they stay right if a seed's layout changes. Named
// regression-NAME in the corpus, so a failing run's reproducer names the bug.
struct Regression {
  std::string name;
  Input input;
};

size_t seed_index(const std::string& name) {
  const auto& seeds = fuzz::seed_images();
  for (size_t index = 0; index < seeds.size(); ++index) {
    if (seeds[index].name == name) return index;
  }
  std::fprintf(stderr, "pkfs_fuzz_seeds: no seed %s\n", name.c_str());
  std::exit(1);
}

// A resealed patch of `bytes` at `field` bytes into landmark `key` of seed `seed`.
void patch(Input& input, const std::string& seed, const std::string& key, uint64_t field,
           std::span<const std::byte> bytes) {
  const fuzz::SeedImage& image = fuzz::seed_images()[seed_index(seed)];
  fuzz::append_patch(input, fuzz::kPatchSeal, image.target_offset(image.landmark(key) + field), bytes);
}

template <typename T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span(&value, 1));
}

std::vector<Regression> region_regressions(uint8_t repair_option) {
  std::vector<Regression> regressions;
  auto start = [](const std::string& seed, uint8_t options) {
    return Input{static_cast<uint8_t>(seed_index(seed)), options};
  };
  const fuzz::SeedImage& chain = fuzz::seed_images()[seed_index("chain")];
  // An extent-block offset past 16 TiB whose low 44 bits name a real block:
  // the range check saw it cut to a 32-bit block number and passed it, and
  // load_extents read at base + offset (SEGV). The same for xattr blocks.
  {
    Input input = start("chain", 0);
    uint8_t top = 0xdd;
    patch(input, "chain", "inode:eight", offsetof(format::Inode, extent_block) + 7, bytes_of(top));
    regressions.push_back({"extent-block-beyond-16tib", std::move(input)});
  }
  {
    Input input = start("tree", 0);
    uint8_t top = 0xdd;
    patch(input, "tree", "inode:readme", offsetof(format::Inode, xattr_block) + 7, bytes_of(top));
    regressions.push_back({"xattr-block-beyond-16tib", std::move(input)});
  }
  // An extent chain that points back to itself under an extent_count of
  // 2^32-1: load_extents walked it until memory ran out.
  {
    Input input = start("chain", 0);
    uint64_t self = chain.landmark("extent-block:chain");
    patch(input, "chain", "extent-block:chain", offsetof(format::ExtentBlock, next), bytes_of(self));
    uint32_t count = UINT32_MAX;
    patch(input, "chain", "inode:chain", offsetof(format::Inode, extent_count), bytes_of(count));
    regressions.push_back({"extent-chain-cycle", std::move(input)});
  }
  // An unused entry of an extent block not zero: check reports
  // EXTENT_BLOCK_INVALID, repair -y does nothing about it (a property only
  // PKFS_FUZZ_STRICT=1 checks).
  if (repair_option != 0) {
    Input input = start("chain", repair_option);
    uint8_t stray = 0x2b;
    patch(input, "chain", "extent-block:eight",
          offsetof(format::ExtentBlock, extents) + 148 * sizeof(format::Extent) + 5, bytes_of(stray));
    regressions.push_back({"repair-leaves-unused-extent-entries", std::move(input)});
  }
  return regressions;
}

std::vector<Input> region_inputs(const std::vector<uint8_t>& options) {
  std::vector<Input> inputs;
  const auto& seeds = fuzz::seed_images();
  for (size_t index = 0; index < seeds.size(); ++index) {
    const fuzz::SeedImage& seed = seeds[index];
    for (uint8_t option : options) inputs.push_back({static_cast<uint8_t>(index), option});
    for (const auto& [name, offset] : seed.landmarks) {
      for (const Field& field : kFields) {
        if (name.rfind(field.prefix, 0) != 0) continue;
        Input input{static_cast<uint8_t>(index), options[inputs.size() % options.size()]};
        rewrite(input, seed, offset + field.offset, field.length);
        inputs.push_back(std::move(input));
      }
    }
    // The journal's commit words are outside its checksum: a raw patch.
    Input raw{static_cast<uint8_t>(index), 0};
    uint64_t commit = seed.landmark("journal") + offsetof(format::JournalHeader, last_sequence);
    fuzz::append_patch(raw, 0, seed.target_offset(commit), std::span(seed.bytes.data() + commit, 16));
    inputs.push_back(std::move(raw));
  }
  return inputs;
}

template <typename T>
void put(Input& input, const T& value) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  input.insert(input.end(), bytes, bytes + sizeof value);
}

std::vector<Input> control_inputs() {
  std::vector<Input> inputs;
  auto request = [&](uint8_t selector, control::Op op, uint32_t flags, uint64_t arg0, uint64_t arg1) {
    control::Request value;
    value.op = static_cast<uint32_t>(op);
    value.flags = flags;
    value.arg0 = arg0;
    value.arg1 = arg1;
    Input input{selector};
    put(input, value);
    return input;
  };
  inputs.push_back(request(2, control::Op::kMap, 0, control::kAccessRead, 0));
  inputs.push_back(request(2, control::Op::kMap, 0, control::kAccessRead | control::kAccessWrite, 0));
  inputs.push_back(request(0, control::Op::kMap, 0, control::kAccessRead, 0));  // no descriptor
  inputs.push_back(request(0, control::Op::kRelease, control::kReleaseOwnHold, 3, 12));
  inputs.push_back(request(0, control::Op::kRelease, control::kReleaseStaleOnly, 0, 1));
  inputs.push_back(request(2, control::Op::kStat, 0, 0, 0));
  inputs.push_back(request(0, control::Op::kHolds, 0, 0, 0));
  inputs.push_back(request(0, control::Op::kInfo, 0, 0, 0));
  inputs.push_back(request(0, static_cast<control::Op>(99), 0, 0, 0));
  Input truncated = request(0, control::Op::kInfo, 0, 0, 0);
  truncated.resize(17);
  inputs.push_back(truncated);
  Input longer = request(2, control::Op::kMap, 0, control::kAccessRead, 0);
  longer.resize(longer.size() + 8, 0xff);
  inputs.push_back(longer);
  Input wrong_version = request(0, control::Op::kInfo, 0, 0, 0);
  wrong_version[1 + 4] = 2;
  inputs.push_back(wrong_version);

  auto map_reply = [&](uint64_t extents, uint64_t counted, const std::string& path) {
    control::MapReply head;
    head.hold_id = 1;
    head.ino = 12;
    head.generation = 3;
    head.page_size = 4096;
    head.file_size = extents * 8192;
    head.mapped_bytes = head.file_size;
    head.region_size = uint64_t{64} << 20;
    head.extent_count = counted;
    head.mode = 0100644;
    Input input{1};
    put(input, head);
    for (uint64_t i = 0; i < extents; ++i) {
      control::ExtentRecord record{i * 8192, (uint64_t{4} << 20) + i * 16384, 8192};
      put(input, record);
    }
    input.insert(input.end(), path.begin(), path.end());
    return input;
  };
  inputs.push_back(map_reply(0, 0, "/dev/hugepages/vm1"));
  inputs.push_back(map_reply(1, 1, "/dev/hugepages/vm1"));
  inputs.push_back(map_reply(3, 3, "/dev/dax0.0"));
  inputs.push_back(map_reply(2, 3, "/dev/hugepages/vm1"));     // fewer records than counted
  inputs.push_back(map_reply(2, uint64_t{1} << 60, "/r"));     // a count that overflows
  inputs.push_back(map_reply(1, 1, ""));                       // no path
  inputs.push_back(map_reply(1, 1, std::string("/a\0b", 4)));  // a NUL in the path
  inputs.push_back(Input{1, 0, 0, 0});                         // shorter than a MapReply
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--landmarks") == 0) {
    const auto& seeds = fuzz::seed_images();
    for (size_t index = 0; index < seeds.size(); ++index) {
      std::printf("seed %zu %s: target space %llu bytes\n", index, seeds[index].name.c_str(),
                  static_cast<unsigned long long>(seeds[index].target_bytes));
      uint64_t at = 0;
      for (const fuzz::Range& range : seeds[index].targets) {
        std::printf("  target 0x%05llx: region 0x%llx, 0x%llx bytes\n", static_cast<unsigned long long>(at),
                    static_cast<unsigned long long>(range.offset),
                    static_cast<unsigned long long>(range.length));
        at += range.length;
      }
      for (const auto& [name, offset] : seeds[index].landmarks)
        std::printf("  %-24s 0x%llx\n", name.c_str(), static_cast<unsigned long long>(offset));
    }
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: pkfs_fuzz_seeds fuzz_mount|fuzz_check|fuzz_control DIRECTORY\n");
    return 1;
  }
  const std::string target = argv[1];
  std::vector<Input> inputs;
  std::vector<Regression> regressions;
  if (target == "fuzz_mount") {
    inputs =
        region_inputs({0, fuzz::kMountWrite, fuzz::kMountWrite | fuzz::kMountRestart, fuzz::kMountReadOnly,
                       fuzz::kMountHugePages | fuzz::kMountWrite, fuzz::kMountReleaseStale});
    regressions = region_regressions(0);
  } else if (target == "fuzz_check") {
    inputs = region_inputs({0, fuzz::kCheckRepair, fuzz::kCheckRepair | fuzz::kCheckMount,
                            fuzz::kCheckRepair | fuzz::kCheckPreen, fuzz::kCheckKnownZero});
    regressions = region_regressions(fuzz::kCheckRepair);
  } else if (target == "fuzz_control") {
    inputs = control_inputs();
  } else {
    std::fprintf(stderr, "pkfs_fuzz_seeds: unknown target %s\n", target.c_str());
    return 1;
  }
  auto write = [&](const std::string& name, const Input& input) {
    std::string path = argv[2] + ("/" + name);
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
    if (!out) {
      std::fprintf(stderr, "pkfs_fuzz_seeds: cannot write %s\n", path.c_str());
      std::exit(1);
    }
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "seed-%03zu", i);
    write(name, inputs[i]);
  }
  for (const Regression& regression : regressions) write("regression-" + regression.name, regression.input);
  std::printf("pkfs_fuzz_seeds: %zu inputs and %zu regressions for %s in %s\n", inputs.size(),
              regressions.size(), target.c_str(), argv[2]);
  return 0;
}
