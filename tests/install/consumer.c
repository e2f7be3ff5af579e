/* tests/install/consumer.c: the smallest libpkfs user. It maps a path that
 * is not on a pkfs mount, which must fail with a message, and prints that
 * message: proof that the header, the library and its symbols were found. */
#include <pkfs.h>
#include <stdio.h>
#include <sys/mman.h>

int main(int argc, char** argv) {
  struct pkfs_mapping mapping;
  const char* path = argc > 1 ? argv[1] : "/";
  if (pkfs_map(path, PROT_READ, &mapping) == 0) {
    fprintf(stderr, "pkfs_map(%s) succeeded on a path outside pkfs\n", path);
    return 1;
  }
  printf("refused: %s\n", pkfs_last_error());
  return 0;
}
