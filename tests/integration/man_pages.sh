#!/usr/bin/env bash
# man_pages.sh: the man pages the build makes from their scdoc sources pass
# `mandoc -Tlint` with nothing at WARNING level or above (STYLE notes, which
# scdoc's own markup causes, are allowed), and each tool's --help and its
# man page list the same options, both ways: an option --help shows must be
# in the page (under OPTIONS; for pkfsctl, in the subcommand's SYNOPSIS
# line), and an option the page documents must exist. Options that are
# aliases of each other (-q, --quiet) count as one: the page may name either.
source "$PKFS_SOURCE_DIR/tests/integration/lib/region.sh"

command -v mandoc >/dev/null || pkfs_skip "mandoc is not installed (scripts/setup-deps installs it)"
command -v python3 >/dev/null || pkfs_skip "python3 is not installed"
grep -q '^PKFS_SCDOC:FILEPATH=.*scdoc$' "$PKFS_BIN_DIR/CMakeCache.txt" ||
  pkfs_skip "the build found no scdoc, so it made no man pages (scripts/setup-deps installs it)"
pkfs_tmpdir

pages=(fs/fuse/pkfs.8 mkfs/mkfs.pkfs.8 fsck/fsck.pkfs.8 fs/ctl/pkfsctl.8 fs/client/libpkfs.3)
for page in "${pages[@]}"; do
  [ -s "$PKFS_BIN_DIR/$page" ] || pkfs_fail "$page was not built"
  status=0
  mandoc -Tlint -W warning "$PKFS_BIN_DIR/$page" >"$PKFS_TMPDIR/lint" 2>&1 || status=$?
  [ "$status" -eq 0 ] && [ ! -s "$PKFS_TMPDIR/lint" ] || pkfs_fail "mandoc -Tlint $page: $(cat "$PKFS_TMPDIR/lint")"
  rendered=$(mandoc -Tutf8 "$PKFS_BIN_DIR/$page" | sed 's/.\x08//g')
  grep -q "^NAME" <<<"$rendered" || pkfs_fail "$page does not render: $rendered"
  echo "lint clean: $page"
done

# compare NAME HELP_FILE SCD_FILE [SUBCOMMAND]
compare() {
  python3 - "$@" <<'PYTHON' || pkfs_fail "$1: --help and the man page differ (above)"
import re, sys
name, help_file, scd_file = sys.argv[1:4]
sub = sys.argv[4] if len(sys.argv) > 4 else None
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")

def help_groups(text):
    """Alias groups from --help: CLI11's "  -q,--quiet ..." or pkfs's own
    "  -o ro ...", "  -h, --help ..."."""
    groups = []
    for line in text.splitlines():
        m = re.match(r"^  (-\S+(?:,? -?-\S+)*)", line)
        if not m:
            continue
        field = m.group(1)
        o = re.match(r"^-o ([a-z_]+)", line.strip())
        if o:
            groups.append({"-o " + o.group(1)})
        elif field.startswith("-o"):
            continue  # "-o OPT": any other mount option
        else:
            groups.append({t for t in re.split(r",\s*", field.split()[0] if "," not in field else field) if t.startswith("-")})
    return [g for g in groups if g and not (sub and g & {"-h", "--help"})]

def man_options(scd):
    """Options named by the page: pkfsctl SUBCOMMAND's SYNOPSIS line, or
    the terms (unindented lines starting with *-) of OPTIONS."""
    lines = scd.splitlines()
    if sub:
        chosen = [l for l in lines if l.startswith("*pkfsctl %s" % sub) or l.startswith("*pkfsctl %s*" % sub)]
        assert len(chosen) == 1, "no single SYNOPSIS line for pkfsctl %s" % sub
        chosen = [chosen[0][len("*pkfsctl %s" % sub):]]
    else:
        start = lines.index("# OPTIONS")
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("# "))
        chosen = [l for l in lines[start + 1:end] if l.startswith("*-")]
    found = set()
    for line in chosen:
        line = re.sub(r"(?<![A-Za-z0-9])_[^_]+_(?![A-Za-z0-9])", " ", line).replace("*", "")
        words = line.split()
        for i, w in enumerate(words):
            if w == "-o" and i + 1 < len(words) and re.match(r"^[a-z_]+", words[i + 1]):
                found.add("-o " + re.match(r"^[a-z_]+", words[i + 1]).group(0))
        found |= {t for t in OPTION.findall(line) if t != "-o"}
    return found

groups = help_groups(open(help_file).read())
documented = man_options(open(scd_file).read())
ok = True
for g in groups:
    if not g & documented:
        print("%s: --help has %s, the man page does not" % (name, " / ".join(sorted(g))))
        ok = False
known = set().union(*groups) if groups else set()
for t in sorted(documented - known):
    print("%s: the man page has %s, --help does not" % (name, t))
    ok = False
print("%s: %d options agree" % (name, len(groups)))
sys.exit(0 if ok else 1)
PYTHON
}
help() {  # help OUTPUT BINARY ARGS...: --help of a tool, which must exit 0
  local out=$1
  shift
  "$@" >"$out" 2>&1 || pkfs_fail "$* failed: $(cat "$out")"
}
help "$PKFS_TMPDIR/pkfs" "$PKFS_BIN_DIR/fs/fuse/pkfs" --help
compare pkfs "$PKFS_TMPDIR/pkfs" "$PKFS_SOURCE_DIR/fs/fuse/pkfs.8.scd"
help "$PKFS_TMPDIR/mkfs" "$PKFS_BIN_DIR/mkfs/mkfs.pkfs" --help
compare mkfs.pkfs "$PKFS_TMPDIR/mkfs" "$PKFS_SOURCE_DIR/mkfs/mkfs.pkfs.8.scd"
help "$PKFS_TMPDIR/fsck" "$PKFS_BIN_DIR/fsck/fsck.pkfs" --help
compare fsck.pkfs "$PKFS_TMPDIR/fsck" "$PKFS_SOURCE_DIR/fsck/fsck.pkfs.8.scd"
subcommands=$("$PKFS_BIN_DIR/fs/ctl/pkfsctl" --help | awk '/^Subcommands:/ { on = 1; next } on && NF { print $1 }')
[ -n "$subcommands" ] || pkfs_fail "pkfsctl --help lists no subcommands"
for sub in $subcommands; do
  help "$PKFS_TMPDIR/ctl-$sub" "$PKFS_BIN_DIR/fs/ctl/pkfsctl" "$sub" --help
  compare "pkfsctl $sub" "$PKFS_TMPDIR/ctl-$sub" "$PKFS_SOURCE_DIR/fs/ctl/pkfsctl.8.scd" "$sub"
done
echo "PASS"
