#!/usr/bin/env bash
# fuse_permissions.sh: with -o allow_other, a non-root user (uid 1000 via
# setpriv) creates files owned by its uid/gid with its umask applied, and
# the kernel's permission checks (default_permissions) hold: no writing a
# 0644 root file, no reading a 0600 one, no chmod/chown of others' files, no
# unlinking others' files in a sticky directory. Root can do all of that.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

pkfs_setup
pkfs_need setpriv stat
chmod 0755 "$WORK"  # the user must reach the mountpoint
pkfs_mkfs 64M
pkfs_mount -o allow_other

as_user() { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$@"; }
owner_mode() { stat -c '%u:%g %a' "$1"; }
expect() {  # expect PATH "UID:GID MODE"
  [ "$(owner_mode "$1")" = "$2" ] || pkfs_fail "$1 is $(owner_mode "$1"), expected $2"
}

mkdir "$MNT/pub"
chmod 1777 "$MNT/pub"
echo secret > "$MNT/root_0644"
chmod 0644 "$MNT/root_0644"
echo secret > "$MNT/root_0600"
chmod 0600 "$MNT/root_0600"
echo root > "$MNT/pub/root_in_sticky"
chmod 0666 "$MNT/pub/root_in_sticky"

pkfs_log "files the user creates are the user's, with its umask"
as_user sh -c "umask 027 && echo mine > '$MNT/pub/user_027' && mkdir '$MNT/pub/userdir_027' && mkfifo '$MNT/pub/fifo_027'"
expect "$MNT/pub/user_027" "1000:1000 640"
expect "$MNT/pub/userdir_027" "1000:1000 750"
expect "$MNT/pub/fifo_027" "1000:1000 640"
as_user sh -c "umask 022 && : > '$MNT/pub/user_022' && mkdir '$MNT/pub/userdir_022'"
expect "$MNT/pub/user_022" "1000:1000 644"
expect "$MNT/pub/userdir_022" "1000:1000 755"
as_user sh -c "umask 077 && ln -s target '$MNT/pub/user_link'"
[ "$(stat -c '%u:%g %a' "$MNT/pub/user_link")" = "1000:1000 777" ] || pkfs_fail "symlink: $(stat -c '%u:%g %a' "$MNT/pub/user_link")"
as_user sh -c "umask 000 && : > '$MNT/pub/user_000'"
expect "$MNT/pub/user_000" "1000:1000 666"
# The user's own file: it may chmod it and write it.
as_user chmod 0600 "$MNT/pub/user_022"
expect "$MNT/pub/user_022" "1000:1000 600"
as_user sh -c "echo more >> '$MNT/pub/user_022'"

pkfs_log "what the user may not do"
pkfs_expect_fail "Permission denied" as_user sh -c "echo x >> '$MNT/root_0644'"
pkfs_expect_fail "Permission denied" as_user cat "$MNT/root_0600"
pkfs_expect_fail "Permission denied" as_user sh -c ": > '$MNT/new_in_root_dir'"
pkfs_expect_fail "Operation not permitted" as_user chmod 0666 "$MNT/root_0644"
pkfs_expect_fail "Operation not permitted" as_user chown 1000 "$MNT/root_0644"
pkfs_expect_fail "Operation not permitted" as_user chown 0 "$MNT/pub/user_027"
pkfs_expect_fail "Operation not permitted" as_user chgrp 0 "$MNT/pub/user_027"
pkfs_expect_fail "Operation not permitted|Permission denied" as_user touch -d "2001-01-01" "$MNT/root_0644"
pkfs_expect_fail "Operation not permitted" as_user rm -f "$MNT/pub/root_in_sticky"
pkfs_expect_fail "Operation not permitted" as_user mv "$MNT/pub/root_in_sticky" "$MNT/pub/stolen"
[ "$(cat "$MNT/root_0644")" = secret ] || pkfs_fail "root_0644 changed"
[ -e "$MNT/pub/root_in_sticky" ] || pkfs_fail "the user removed root's file from the sticky dir"
[ ! -e "$MNT/new_in_root_dir" ] || pkfs_fail "the user created a file in root's 0755 dir"
expect "$MNT/root_0644" "0:0 644"
# World-writable is still writable: the sticky bit only guards names.
as_user sh -c "echo appended >> '$MNT/pub/root_in_sticky'"

pkfs_log "what root may do"
echo root-was-here >> "$MNT/pub/user_022"
chmod 0604 "$MNT/pub/user_027"
chown 4242:4343 "$MNT/pub/user_027"
expect "$MNT/pub/user_027" "4242:4343 604"
rm "$MNT/pub/user_000"
[ ! -e "$MNT/pub/user_000" ] || pkfs_fail "root could not unlink the user's file from the sticky dir"
# The user may remove its own entries from the sticky dir.
as_user rm "$MNT/pub/user_022"
as_user rmdir "$MNT/pub/userdir_022"

pkfs_log "ownership survives a remount"
pkfs_unmount
pkfs_mount -o allow_other
expect "$MNT/pub/userdir_027" "1000:1000 750"
expect "$MNT/pub/user_027" "4242:4343 604"
pkfs_unmount
pkfs_log "PASS"
