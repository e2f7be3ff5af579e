// holder: maps a pkfs file directly through libpkfs, as a VMM maps guest
// RAM, writes a pattern through the mapping, reports the mapping's kernel
// page size, and then keeps the mapping (and its hold) until killed.
//
//   holder FILE SEED OFFSET LENGTH
//   holder --check FILE SEED OFFSET LENGTH
//
// Prints "HOLD id=N page_size=P kernel_page_kb=K digest=D" once the pattern
// is in. The pattern is guest-tool's (same SEED, same absolute offsets), so
// `guest-tool check` verifies it through any other path.
//
// --check maps the file the same way, compares the range with the pattern,
// prints "CHECK ok|bad ..." with the mapping's kernel page size and the
// range's digest, and exits (0 when every byte is the pattern's). A GiB
// read through the mapping costs seconds under emulation; through FUSE
// (md5sum) minutes. D is a 64-bit digest of the range's words, for an
// equality before and after, as md5 would be but cheaper.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fs/client/pkfs.h"

static uint64_t word_at(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 1;  // splitmix64, as guest-tool
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// KernelPageSize (kB) of the mapping that contains `address`, from smaps.
static long kernel_page_kb(const void* address) {
  FILE* smaps = fopen("/proc/self/smaps", "r");
  if (smaps == NULL) return -1;
  char line[512];
  int inside = 0;
  long result = -1;
  uintptr_t want = (uintptr_t)address;
  while (fgets(line, sizeof line, smaps) != NULL) {
    uintptr_t begin = 0, end = 0;
    // Mapping header lines start "begin-end "; no "Key:" line parses so.
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &begin, &end) == 2) {
      inside = want >= begin && want < end;
      continue;
    }
    long kb = 0;
    if (inside && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1) {
      result = kb;
      break;
    }
  }
  fclose(smaps);
  return result;
}

// Multiply-xorshift over the words in order: not cryptographic, but every
// changed or moved word changes it.
static uint64_t digest(const uint64_t* words, uint64_t count) {
  uint64_t h = 0x6A09E667F3BCC908ull;
  for (uint64_t i = 0; i < count; ++i) {
    h = (h ^ words[i]) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  return h;
}

int main(int argc, char** argv) {
  int checking = argc == 6 && strcmp(argv[1], "--check") == 0;
  if (checking) {
    --argc;
    ++argv;
  }
  if (argc != 5) {
    fprintf(stderr, "usage: holder [--check] FILE SEED OFFSET LENGTH\n");
    return 2;
  }
  uint64_t seed = strtoull(argv[2], NULL, 0);
  uint64_t offset = strtoull(argv[3], NULL, 0);
  uint64_t length = strtoull(argv[4], NULL, 0);
  struct pkfs_mapping mapping;
  if (pkfs_map(argv[1], PROT_READ | PROT_WRITE, &mapping) != 0) {
    fprintf(stderr, "holder: pkfs_map %s: %s\n", argv[1], pkfs_last_error());
    return 1;
  }
  if (offset % 8 != 0 || length % 8 != 0 || offset + length > mapping.file_size) {
    fprintf(stderr, "holder: range must be 8-byte aligned and inside the file\n");
    return 2;
  }
  uint64_t* words = (uint64_t*)((char*)mapping.addr + offset);
  if (checking) {
    for (uint64_t i = 0; i < length / 8; ++i) {
      if (words[i] != word_at(seed, offset / 8 + i)) {
        printf("CHECK bad: the word at byte %" PRIu64 " is not the pattern's\n", offset + 8 * i);
        return 1;
      }
    }
    printf("CHECK ok bytes=%" PRIu64 " page_size=%" PRIu64 " kernel_page_kb=%ld digest=%016" PRIx64 "\n", length,
           mapping.page_size, kernel_page_kb(mapping.addr), digest(words, length / 8));
    return 0;
  }
  for (uint64_t i = 0; i < length / 8; ++i) words[i] = word_at(seed, offset / 8 + i);
  printf("HOLD id=%" PRIu64 " page_size=%" PRIu64 " kernel_page_kb=%ld digest=%016" PRIx64 "\n", mapping.hold_id,
         mapping.page_size, kernel_page_kb(mapping.addr), digest(words, length / 8));
  fflush(stdout);
  for (;;) pause();
}
