#!/usr/bin/env bash
# client_library.sh: libpkfs as a VMM's build sees it. Installed into a
# private prefix, pkg-config finds it, the README's C snippet compiles and
# links against it, the library exports pkfs_* and nothing else, and links
# neither FUSE nor anything of pkfs's core.
set -euo pipefail
: "${PKFS_BIN_DIR:?PKFS_BIN_DIR must name the build directory (ctest sets it)}"
source "$(dirname "${BASH_SOURCE[0]}")/lib/region.sh"

command -v pkg-config >/dev/null || pkfs_skip "pkg-config is not installed"
command -v cc >/dev/null || pkfs_skip "no C compiler"
command -v nm >/dev/null || pkfs_skip "nm is not installed"
pkfs_tmpdir
prefix="$PKFS_TMPDIR/prefix"
cmake --install "$PKFS_BIN_DIR" --prefix "$prefix" >"$PKFS_TMPDIR/install.log" 2>&1 ||
  pkfs_fail "cmake --install failed: $(cat "$PKFS_TMPDIR/install.log")"
pc=$(find "$prefix" -name pkfs.pc)
[ -n "$pc" ] || pkfs_fail "no pkfs.pc installed"
[ -f "$prefix/include/pkfs.h" ] || pkfs_fail "no pkfs.h installed"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
# The .pc file names the prefix cmake was configured with; point it here.
flags=$(pkg-config --define-variable=prefix="$prefix" --cflags --libs pkfs)

cat >"$PKFS_TMPDIR/vmm.c" <<'C'
#include <pkfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
  struct pkfs_mapping ram;
  if (pkfs_map(argc > 1 ? argv[1] : "/nonexistent", PROT_READ | PROT_WRITE, &ram) != 0) {
    fprintf(stderr, "guest RAM: %s\n", pkfs_last_error());
    return 1;
  }
  pkfs_unmap(&ram);
  return 0;
}
C
# shellcheck disable=SC2086
cc -Wall -Wextra -Werror -o "$PKFS_TMPDIR/vmm" "$PKFS_TMPDIR/vmm.c" $flags ||
  pkfs_fail "the README snippet does not build with: $flags"
lib=$(find "$prefix" -name 'libpkfs.so.*' -type f | head -n 1)
out=$(LD_LIBRARY_PATH=$(dirname "$lib") "$PKFS_TMPDIR/vmm" /nonexistent 2>&1) && pkfs_fail "mapping a missing file succeeded"
grep -q "guest RAM: /nonexistent: No such file or directory" <<<"$out" || pkfs_fail "unexpected message: $out"
out=$(LD_LIBRARY_PATH=$(dirname "$lib") "$PKFS_TMPDIR/vmm" "$PKFS_TMPDIR/vmm.c" 2>&1) && pkfs_fail "mapping a non-pkfs file succeeded"
grep -q "not a file on a pkfs mount" <<<"$out" || pkfs_fail "unexpected message for a file elsewhere: $out"

exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" || $2 == "W" {print $3}' | sed 's/@.*//' | sort)
[ "$exported" = "$(printf 'pkfs_last_error\npkfs_map\npkfs_unmap')" ] || pkfs_fail "libpkfs exports: $exported"
if ldd "$lib" | grep -Eq "fuse|xxhash"; then pkfs_fail "libpkfs links more than it should: $(ldd "$lib")"; fi
echo "ok: pkfs.pc, pkfs.h and libpkfs.so install and build a client; exports: $(echo $exported)"
