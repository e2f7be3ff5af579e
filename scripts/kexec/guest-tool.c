// guest-tool: what the kexec test's guest needs beyond busybox, as one
// static binary.
//
//   guest-tool write FILE OFFSET LENGTH SEED   write the pattern of SEED at OFFSET
//   guest-tool check FILE OFFSET LENGTH SEED   compare; names the first bad byte
//   guest-tool xset FILE NAME VALUE            setxattr
//   guest-tool xget FILE NAME                  print the value of an xattr
//   guest-tool fsync FILE                      fsync a file (or directory)
//
// The pattern is a function of (SEED, absolute 8-byte word index), so any
// range can be checked without knowing how it was written.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static uint64_t word_at(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 1;  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint8_t byte_at(uint64_t seed, uint64_t offset) {
  return (uint8_t)(word_at(seed, offset / 8) >> (8 * (offset % 8)));
}

static void fill(uint8_t* buffer, uint64_t offset, size_t length, uint64_t seed) {
  size_t i = 0;
  while (i < length) {
    if ((offset + i) % 8 == 0 && length - i >= 8) {  // whole words (little-endian)
      uint64_t word = word_at(seed, (offset + i) / 8);
      memcpy(buffer + i, &word, 8);
      i += 8;
    } else {
      buffer[i] = byte_at(seed, offset + i);
      ++i;
    }
  }
}

enum { kBuffer = 1 << 20 };

static int pattern(const char* mode, const char* path, uint64_t offset, uint64_t length, uint64_t seed) {
  int writing = strcmp(mode, "write") == 0;
  int fd = open(path, writing ? O_WRONLY | O_CREAT : O_RDONLY, 0644);
  if (fd < 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return 1;
  }
  static uint8_t want[kBuffer], got[kBuffer];
  for (uint64_t done = 0; done < length;) {
    size_t piece = length - done < kBuffer ? (size_t)(length - done) : kBuffer;
    fill(want, offset + done, piece, seed);
    ssize_t n = writing ? pwrite(fd, want, piece, (off_t)(offset + done))
                        : pread(fd, got, piece, (off_t)(offset + done));
    if (n <= 0) {
      fprintf(stderr, "%s: %s at %llu: %s\n", path, writing ? "write" : "read",
              (unsigned long long)(offset + done), n == 0 ? "end of file" : strerror(errno));
      return 1;
    }
    if (!writing) {
      for (ssize_t i = 0; i < n; ++i) {
        if (got[i] != want[i]) {
          fprintf(stderr, "%s: byte %llu is 0x%02x, expected 0x%02x\n", path,
                  (unsigned long long)(offset + done + (uint64_t)i), got[i], want[i]);
          return 1;
        }
      }
    }
    done += (uint64_t)n;
  }
  if (writing && fsync(fd) != 0) {
    fprintf(stderr, "%s: fsync: %s\n", path, strerror(errno));
    return 1;
  }
  close(fd);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 6 && (strcmp(argv[1], "write") == 0 || strcmp(argv[1], "check") == 0)) {
    return pattern(argv[1], argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
                   strtoull(argv[5], NULL, 0));
  }
  if (argc == 5 && strcmp(argv[1], "xset") == 0) {
    if (setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) != 0) {
      fprintf(stderr, "%s: setxattr %s: %s\n", argv[2], argv[3], strerror(errno));
      return 1;
    }
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "xget") == 0) {
    char value[4096];
    ssize_t n = getxattr(argv[2], argv[3], value, sizeof value);
    if (n < 0) {
      fprintf(stderr, "%s: getxattr %s: %s\n", argv[2], argv[3], strerror(errno));
      return 1;
    }
    printf("%.*s\n", (int)n, value);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "fsync") == 0) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
      fprintf(stderr, "%s: fsync: %s\n", argv[2], strerror(errno));
      return 1;
    }
    close(fd);
    return 0;
  }
  fprintf(stderr,
          "usage: guest-tool write|check FILE OFFSET LENGTH SEED | xset FILE NAME VALUE | xget FILE NAME | "
          "fsync FILE\n");
  return 2;
}
