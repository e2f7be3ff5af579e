#!/usr/bin/env bash
# install_consumer.sh: `cmake --install` into a scratch DESTDIR gives what a
# program needs to build against libpkfs, and both ways of finding it work
# from there: find_package(pkfs) with the pkfs::pkfs target (CMake) and
# `pkg-config --cflags --libs pkfs`. The consumer (tests/install/) links
# the installed library, not the build tree's, and runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/region.sh"

command -v cc >/dev/null || pkfs_skip "no C compiler"
command -v pkg-config >/dev/null || pkfs_skip "no pkg-config"
pkfs_tmpdir
root="$PKFS_TMPDIR/root"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$PKFS_BIN_DIR/CMakeCache.txt")
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$PKFS_BIN_DIR/CMakeCache.txt")
echo "installing into DESTDIR $root (prefix $prefix)"
DESTDIR="$root" cmake --install "$PKFS_BIN_DIR" >"$PKFS_TMPDIR/install.log" ||
  pkfs_fail "cmake --install failed: $(cat "$PKFS_TMPDIR/install.log")"
installed="$root$prefix"
for file in "include/pkfs.h" "$libdir/libpkfs.so" "$libdir/pkgconfig/pkfs.pc" \
  "$libdir/cmake/pkfs/pkfsConfig.cmake" "$libdir/cmake/pkfs/pkfsConfigVersion.cmake" \
  "$libdir/cmake/pkfs/pkfsTargets.cmake"; do
  [ -e "$installed/$file" ] || pkfs_fail "not installed: $prefix/$file"
done
# The rest of an install: programs, man pages (when scdoc was there to make
# them), the unit and its examples; nothing outside the prefix.
for file in sbin/pkfs sbin/mkfs.pkfs sbin/fsck.pkfs sbin/pkfsctl lib/systemd/system/pkfs@.service \
  share/doc/pkfs/examples/srv-vm1.mount share/doc/pkfs/examples/fstab.example; do
  [ -e "$installed/$file" ] || pkfs_fail "not installed: $prefix/$file"
done
if grep -q '^PKFS_SCDOC:FILEPATH=.*scdoc$' "$PKFS_BIN_DIR/CMakeCache.txt"; then
  for file in man8/pkfs.8 man8/mkfs.pkfs.8 man8/fsck.pkfs.8 man8/pkfsctl.8 man3/libpkfs.3; do
    [ -e "$installed/share/man/$file" ] || pkfs_fail "not installed: $prefix/share/man/$file"
  done
fi
outside=$(cd "$root" && find . -type f | grep -v "^\.$prefix/" || true)
[ -z "$outside" ] || pkfs_fail "installed outside $prefix: $outside"
run_consumer() {  # run_consumer BINARY: runs it with the installed library
  local output
  output=$(LD_LIBRARY_PATH="$installed/$libdir" "$1" /) || pkfs_fail "$1 failed: $output"
  grep -q "^refused: " <<<"$output" || pkfs_fail "$1 printed: $output"
  # The dynamic loader must have taken the installed copy.
  local loaded
  loaded=$(LD_LIBRARY_PATH="$installed/$libdir" ldd "$1")
  grep -q "$installed/$libdir/libpkfs.so.0" <<<"$loaded" || pkfs_fail "$1 does not load the installed libpkfs: $loaded"
}

echo "CMake: find_package(pkfs), pkfs::pkfs"
cmake -S "$PKFS_SOURCE_DIR/tests/install" -B "$PKFS_TMPDIR/cmake-build" \
  -DCMAKE_PREFIX_PATH="$installed" >"$PKFS_TMPDIR/cmake.log" 2>&1 ||
  pkfs_fail "configuring the consumer failed: $(cat "$PKFS_TMPDIR/cmake.log")"
cmake --build "$PKFS_TMPDIR/cmake-build" >>"$PKFS_TMPDIR/cmake.log" 2>&1 ||
  pkfs_fail "building the consumer failed: $(cat "$PKFS_TMPDIR/cmake.log")"
run_consumer "$PKFS_TMPDIR/cmake-build/consumer"

echo "CMake: a version the package does not promise is refused"
sed 's/find_package(pkfs 0.1 REQUIRED)/find_package(pkfs 9.0 REQUIRED)/' \
  "$PKFS_SOURCE_DIR/tests/install/CMakeLists.txt" >"$PKFS_TMPDIR/CMakeLists.txt"
mkdir -p "$PKFS_TMPDIR/v9" && cp "$PKFS_TMPDIR/CMakeLists.txt" "$PKFS_SOURCE_DIR/tests/install/consumer.c" "$PKFS_TMPDIR/v9/"
if cmake -S "$PKFS_TMPDIR/v9" -B "$PKFS_TMPDIR/v9-build" -DCMAKE_PREFIX_PATH="$installed" >"$PKFS_TMPDIR/v9.log" 2>&1; then
  pkfs_fail "find_package(pkfs 9.0) accepted version $(grep -o 'VERSION [0-9.]*' "$PKFS_BIN_DIR/CMakeCache.txt" | head -1)"
fi
grep -q "not compatible\|version" "$PKFS_TMPDIR/v9.log" || pkfs_fail "unexpected refusal: $(cat "$PKFS_TMPDIR/v9.log")"

echo "pkg-config"
# The .pc file names the real prefix; --define-prefix relocates it to where
# it was installed, as it would be found under a sysroot.
flags=$(PKG_CONFIG_PATH="$installed/$libdir/pkgconfig" pkg-config --define-prefix --cflags --libs pkfs) ||
  pkfs_fail "pkg-config does not find pkfs"
grep -q -- "-I$installed/include" <<<"$flags" || pkfs_fail "pkg-config flags do not point at the install: $flags"
# shellcheck disable=SC2086 # the flags are words
cc -Wall -Wextra -Werror -o "$PKFS_TMPDIR/consumer-pc" "$PKFS_SOURCE_DIR/tests/install/consumer.c" $flags ||
  pkfs_fail "cc with pkg-config flags failed"
run_consumer "$PKFS_TMPDIR/consumer-pc"
echo "PASS"
