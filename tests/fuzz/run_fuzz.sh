#!/bin/sh
# Runs one fuzz target for a bounded time (meson test --suite fuzz).
#   run_fuzz.sh <corpus_gen> <fuzzer> <work dir>
# SLUICE_FUZZ_SECONDS (default 60) bounds the run. Exit status is non-zero on any finding (crash,
# sanitizer report, leak, timeout or out-of-memory on one input); the reproducer is left in
# <work dir>/artifacts/ and its path is printed by libFuzzer.
set -eu
gen=$1
fuzzer=$2
work=$3
seconds=${SLUICE_FUZZ_SECONDS:-60}

corpus="$work/corpus"
artifacts="$work/artifacts"
rm -rf "$artifacts"
mkdir -p "$corpus" "$artifacts"
"$gen" "$corpus"

echo "fuzzing $(basename "$fuzzer") for ${seconds}s (corpus $corpus)"
# -timeout: one input taking longer than 10 s is a finding; -rss_limit_mb bounds memory.
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65507 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" || status=$?
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$artifacts")" ]; then
  echo "fuzz finding: see $artifacts" >&2
  exit 1
fi
