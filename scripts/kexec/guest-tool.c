// guest-tool: what the kexec test's guest needs beyond busybox, as one
// static binary.
//
//   guest-tool write FILE OFFSET LENGTH SEED   write the pattern of SEED at OFFSET
//   guest-tool check FILE OFFSET LENGTH SEED   compare; names the first bad byte
//   guest-tool xset FILE NAME VALUE            setxattr
//   guest-tool xget FILE NAME                  print the value of an xattr
//   guest-tool fsync FILE                      fsync a file (or directory)
//   guest-tool scribble DEVICE SIZE SEED       flip one byte of the data whose
//                                              pattern SEED starts a 4 KiB block
//                                              of DEVICE (mapped whole, SIZE
//                                              bytes): a new kernel scribbling
//                                              on the carve-out. Again to undo.
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
#include <sys/mman.h>
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

static int scribble(const char* path, uint64_t size, uint64_t seed) {
  int fd = open(path, O_RDWR);
  if (fd < 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return 1;
  }
  uint8_t* base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    fprintf(stderr, "%s: mmap %llu bytes: %s\n", path, (unsigned long long)size, strerror(errno));
    return 1;
  }
  uint64_t first = word_at(seed, 0);
  for (uint64_t offset = 0; offset + 4096 <= size; offset += 4096) {
    if (memcmp(base + offset, &first, 8) == 0) {
      base[offset + 100] ^= 0x01;
      printf("flipped a bit of byte %llu of %s\n", (unsigned long long)(offset + 100), path);
      munmap(base, size);
      close(fd);
      return 0;
    }
  }
  fprintf(stderr, "%s: no block starts with the pattern of seed %llu\n", path, (unsigned long long)seed);
  return 1;
}

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "scribble") == 0) {
    return scribble(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
  }
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
          "fsync FILE | scribble DEVICE SIZE SEED\n");
  return 2;
}
