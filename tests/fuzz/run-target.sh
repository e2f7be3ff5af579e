#!/usr/bin/env bash
# tests/fuzz/run-target.sh: one bounded fuzzing run of one target (the CTest
# "fuzz: TARGET" tests and scripts/fuzz).
#
#   run-target.sh TARGET_BINARY SEEDS_BINARY RUNS_DIR SECONDS [libFuzzer options...]
#
# Writes the target's seed corpus afresh to RUNS_DIR/NAME/seeds, fuzzes for
# SECONDS with RUNS_DIR/NAME/corpus (what the run adds; kept across runs)
# and the seeds, and keeps findings in RUNS_DIR/NAME/findings. A finding
# (crash, leak, a timeout of 10 s on one input, RSS over 1 GiB, one malloc
# over 512 MiB) fails the run and prints the reproducer's path and how to
# rerun it. Extra options go to libFuzzer (scripts/fuzz passes -jobs etc.).
# Exit status: libFuzzer's (0: nothing found).
set -euo pipefail

binary=$1 seeds_binary=$2 runs=$3 seconds=$4
shift 4
name=$(basename "$binary")
dir=$runs/$name
rm -rf "$dir/seeds"
mkdir -p "$dir/seeds" "$dir/corpus" "$dir/findings"
"$seeds_binary" "$name" "$dir/seeds"

# Findings of earlier runs stay where they are; only this run's are reported.
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT

# UBSan's own report gets a stack; LeakSanitizer runs at exit of each input
# that leaked (libFuzzer's -detect_leaks, on by default).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 -max_len=4096 \
  -print_final_stats=1 -artifact_prefix="$dir/findings/" "$@" "$dir/corpus" "$dir/seeds" || status=$?

if ((status != 0)); then
  echo "fuzz: $name found a problem (exit status $status)" >&2
  found=0
  while IFS= read -r artifact; do
    found=1
    echo "fuzz: reproducer: $artifact" >&2
    echo "fuzz:   rerun with: $binary $artifact" >&2
    # An input of the seed corpus (a regression-NAME, say) is named as well.
    sha=$(sha1sum "$artifact" | cut -d' ' -f1)
    sha1sum "$dir"/seeds/* | awk -v sha="$sha" '$1 == sha { print "fuzz:   it is the seed input " $2 }' >&2
  done < <(find "$dir/findings" -type f -newer "$marker")
  ((found)) || echo "fuzz: no reproducer was written (see the output above)" >&2
fi
exit "$status"
