/* tests/client/vmm.c: a VMM-like user of libpkfs for the integration tests.
 *
 *   pkfs_test_vmm run FILE STATEDIR [--kernel-page-kib N] [--no-pin]
 *       Maps FILE read-write with pkfs_map, checks in /proc/self/smaps that
 *       every part of the mapping has KernelPageSize N kB, long-term pins it
 *       (io_uring buffer registration: pin_user_pages(FOLL_LONGTERM), the
 *       path VFIO takes), then writes pattern passes 1, 2, 3, ... over the
 *       whole mapping. After each pass it writes the pass number to
 *       STATEDIR/pass; it stops after the first pass that finds STATEDIR/stop,
 *       checks the mapping holds that last pass, unmaps and prints
 *       "last_pass=P". Any fault kills it (SIGBUS), which the test sees.
 *   pkfs_test_vmm check FILE PASS
 *       Reads FILE with read(2) (through the mount, not mapped) and checks
 *       that it holds pattern PASS.
 *   pkfs_test_vmm write FILE PASS
 *       Writes pattern PASS into FILE with pwrite(2).
 *   pkfs_test_vmm hold FILE [ro]
 *       Maps FILE, prints "hold=ID", checks the mapping against pattern
 *       (when the first word is non-zero) and waits until stdin closes or
 *       says "check PASS" (checks the mapping holds pattern PASS, prints ok)
 *       or "write PASS" (writes it through the mapping, prints ok).
 *   pkfs_test_vmm map FILE [ro]
 *       Maps FILE once and prints the mapping, or the error, then unmaps.
 *
 * Exit status 0 on success, 1 on any failure (message on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs/client/pkfs.h"

static uint64_t pattern_word(uint64_t pass, uint64_t index) {
  return (pass << 48) ^ (index * UINT64_C(0x9E3779B97F4A7C15));
}

static void fill(uint64_t* words, size_t count, uint64_t pass) {
  for (size_t i = 0; i < count; ++i) words[i] = pattern_word(pass, i);
}

/* Index of the first word that differs from pattern PASS, or count. */
static size_t first_mismatch(const uint64_t* words, size_t count, uint64_t pass) {
  for (size_t i = 0; i < count; ++i) {
    if (words[i] != pattern_word(pass, i)) return i;
  }
  return count;
}

static int die(const char* what) {
  fprintf(stderr, "pkfs_test_vmm: %s: %s\n", what, strerror(errno));
  return 1;
}

static int map_or_die(const char* path, int prot, struct pkfs_mapping* m) {
  if (pkfs_map(path, prot, m) != 0) {
    fprintf(stderr, "pkfs_test_vmm: pkfs_map %s: %s (errno %d)\n", path, pkfs_last_error(), errno);
    return 1;
  }
  return 0;
}

/* Checks that every smaps entry inside [addr, addr+length) reports
 * KernelPageSize == kib kB and that the entries cover the range. */
static int check_smaps(const struct pkfs_mapping* m, unsigned long kib) {
  FILE* smaps = fopen("/proc/self/smaps", "r");
  if (smaps == NULL) return die("/proc/self/smaps");
  char line[512];
  uintptr_t begin = (uintptr_t)m->addr, end = begin + m->length;
  uintptr_t covered = 0;
  int inside = 0, bad = 0;
  while (fgets(line, sizeof line, smaps) != NULL) {
    uintptr_t lo, hi;
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = lo >= begin && hi <= end;
      if (inside) covered += hi - lo;
      continue;
    }
    unsigned long size;
    if (inside && sscanf(line, "KernelPageSize: %lu kB", &size) == 1 && size != kib) {
      fprintf(stderr, "pkfs_test_vmm: a part of the mapping has KernelPageSize %lu kB, not %lu kB\n", size,
              kib);
      bad = 1;
    }
  }
  fclose(smaps);
  if (covered != m->length) {
    fprintf(stderr, "pkfs_test_vmm: smaps shows %zu bytes of the %zu-byte mapping\n", (size_t)covered,
            m->length);
    return 1;
  }
  if (!bad) printf("smaps: KernelPageSize %lu kB over all %zu bytes\n", kib, m->length);
  return bad;
}

/* Long-term pin of the mapping, as VFIO does on DMA map. Returns the ring,
 * kept open (and the pages pinned) until exit. */
static int pin(const struct pkfs_mapping* m) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  int ring = (int)syscall(__NR_io_uring_setup, 4, &params);
  if (ring < 0) return die("io_uring_setup");
  struct iovec iov = {m->addr, m->length};
  if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1) != 0) {
    die("long-term pin (io_uring buffer registration)");
    return -1;
  }
  printf("pinned: %zu bytes (FOLL_LONGTERM)\n", m->length);
  return ring;
}

static int exists(const char* dir, const char* name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

static int put_pass(const char* dir, uint64_t pass) {
  char path[4096], tmp[4096];
  snprintf(path, sizeof path, "%s/pass", dir);
  snprintf(tmp, sizeof tmp, "%s/pass.tmp", dir);
  FILE* f = fopen(tmp, "w");
  if (f == NULL) return die(tmp);
  fprintf(f, "%" PRIu64 "\n", pass);
  if (fclose(f) != 0 || rename(tmp, path) != 0) return die(path);
  return 0;
}

static int run(const char* file, const char* dir, unsigned long kib, int want_pin) {
  struct pkfs_mapping m;
  if (map_or_die(file, PROT_READ | PROT_WRITE, &m) != 0) return 1;
  printf("mapped: addr=%p length=%zu file_size=%" PRIu64 " page_size=%" PRIu64 " hold=%" PRIu64 "\n", m.addr,
         m.length, m.file_size, m.page_size, m.hold_id);
  if ((uintptr_t)m.addr % m.page_size != 0) {
    fprintf(stderr, "pkfs_test_vmm: mapping not aligned to the page size\n");
    return 1;
  }
  if (kib != 0 && check_smaps(&m, kib) != 0) return 1;
  int ring = -1;
  if (want_pin && (ring = pin(&m)) < 0) return 1;
  fflush(stdout);
  uint64_t* words = m.addr;
  size_t count = m.file_size / sizeof(uint64_t);
  uint64_t pass = 0;
  for (;;) {
    int stopping = exists(dir, "stop");
    ++pass;
    fill(words, count, pass);
    if (put_pass(dir, pass) != 0) return 1;
    if (stopping) break;
  }
  size_t bad = first_mismatch(words, count, pass);
  if (bad != count) {
    fprintf(stderr, "pkfs_test_vmm: mapping word %zu is not pattern %" PRIu64 "\n", bad, pass);
    return 1;
  }
  if (ring >= 0) close(ring);
  if (pkfs_unmap(&m) != 0) {
    fprintf(stderr, "pkfs_test_vmm: pkfs_unmap: %s\n", pkfs_last_error());
    return 1;
  }
  printf("last_pass=%" PRIu64 "\n", pass);
  return 0;
}

static int check_file(const char* file, uint64_t pass, int write_it) {
  int fd = open(file, write_it ? O_WRONLY : O_RDONLY);
  if (fd < 0) return die(file);
  struct stat st;
  if (fstat(fd, &st) != 0) return die(file);
  size_t count = (size_t)st.st_size / sizeof(uint64_t);
  size_t chunk = 1 << 17; /* words: 1 MiB */
  uint64_t* buffer = malloc(chunk * sizeof(uint64_t));
  if (buffer == NULL) return die("malloc");
  for (size_t at = 0; at < count; at += chunk) {
    size_t n = count - at < chunk ? count - at : chunk;
    size_t bytes = n * sizeof(uint64_t);
    if (write_it) {
      for (size_t i = 0; i < n; ++i) buffer[i] = pattern_word(pass, at + i);
      if (pwrite(fd, buffer, bytes, (off_t)(at * sizeof(uint64_t))) != (ssize_t)bytes) return die("pwrite");
    } else {
      if (pread(fd, buffer, bytes, (off_t)(at * sizeof(uint64_t))) != (ssize_t)bytes) return die("pread");
      for (size_t i = 0; i < n; ++i) {
        if (buffer[i] != pattern_word(pass, at + i)) {
          fprintf(stderr,
                  "pkfs_test_vmm: %s word %zu is %#" PRIx64 ", pattern %" PRIu64 " wants %#" PRIx64 "\n",
                  file, at + i, buffer[i], pass, pattern_word(pass, at + i));
          return 1;
        }
      }
    }
  }
  free(buffer);
  close(fd);
  printf("ok\n");
  return 0;
}

static int hold(const char* file, int read_only) {
  struct pkfs_mapping m;
  int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  if (map_or_die(file, prot, &m) != 0) return 1;
  printf("hold=%" PRIu64 "\n", m.hold_id);
  fflush(stdout);
  size_t count = m.file_size / sizeof(uint64_t);
  char line[128];
  while (fgets(line, sizeof line, stdin) != NULL) {
    uint64_t pass;
    if (sscanf(line, "check %" SCNu64, &pass) == 1) {
      size_t bad = first_mismatch(m.addr, count, pass);
      if (bad != count) {
        printf("mismatch at word %zu\n", bad);
      } else {
        printf("ok\n");
      }
    } else if (sscanf(line, "write %" SCNu64, &pass) == 1) {
      fill(m.addr, count, pass);
      printf("ok\n");
    } else if (strncmp(line, "unmap", 5) == 0) {
      printf(pkfs_unmap(&m) == 0 ? "ok\n" : "failed\n");
      fflush(stdout);
      return 0;
    }
    fflush(stdout);
  }
  return 0;
}

static int map_once(const char* file, int read_only) {
  struct pkfs_mapping m;
  int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  if (pkfs_map(file, prot, &m) != 0) {
    int err = errno;
    printf("error errno=%d %s\n", err, pkfs_last_error());
    return 1;
  }
  printf("mapped length=%zu page_size=%" PRIu64 " hold=%" PRIu64 "\n", m.length, m.page_size, m.hold_id);
  if (pkfs_unmap(&m) != 0) {
    printf("unmap error %s\n", pkfs_last_error());
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 4 && strcmp(argv[1], "run") == 0) {
    unsigned long kib = 0;
    int want_pin = 1;
    for (int i = 4; i < argc; ++i) {
      if (strcmp(argv[i], "--kernel-page-kib") == 0 && i + 1 < argc) {
        kib = strtoul(argv[++i], NULL, 10);
      } else if (strcmp(argv[i], "--no-pin") == 0) {
        want_pin = 0;
      } else {
        fprintf(stderr, "pkfs_test_vmm: unknown option %s\n", argv[i]);
        return 1;
      }
    }
    return run(argv[2], argv[3], kib, want_pin);
  }
  if (argc == 4 && strcmp(argv[1], "check") == 0) return check_file(argv[2], strtoull(argv[3], NULL, 10), 0);
  if (argc == 4 && strcmp(argv[1], "write") == 0) return check_file(argv[2], strtoull(argv[3], NULL, 10), 1);
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "hold") == 0) return hold(argv[2], argc == 4);
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "map") == 0) return map_once(argv[2], argc == 4);
  fprintf(stderr,
          "usage: pkfs_test_vmm run FILE STATEDIR [--kernel-page-kib N] [--no-pin]\n"
          "       pkfs_test_vmm check|write FILE PASS\n"
          "       pkfs_test_vmm hold|map FILE [ro]\n");
  return 1;
}
