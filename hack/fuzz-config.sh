#!/usr/bin/env bash
# Fuzzes cluster config decoding for MINUTES minutes (default 30): runs pkg/tests/config_fuzz.rs
# over and over, each round with PROPTEST_CASES cases per strategy (default 5000) and a fresh
# random seed, and stops at the first finding (a panic, or one input over the per-case time
# limit). proptest writes each finding to pkg/tests/config_fuzz.proptest-regressions: commit it
# with the fix, so that CI replays it.
#
# Usage: hack/fuzz-config.sh [MINUTES]   (run it niced on a shared machine: nice -n 19 ...)
# Prints one line per round and a total: rounds, inputs checked, inputs that decoded.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-30}
cases=${PROPTEST_CASES:-5000}
log=$(mktemp -t kindred-fuzz-config.XXXXXX)
trap 'rm -f "$log"' EXIT

# The test binary is built once and run directly, so that edits made meanwhile neither change
# what is being fuzzed nor hold cargo's lock on the target directory.
bin=$(cargo test --locked -p kindred --test config_fuzz --no-run --message-format=json \
  | sed -n 's/.*"executable":"\([^"]*config_fuzz[^"]*\)".*/\1/p' | tail -1)
[[ -x $bin ]] || { echo "fuzz-config: could not build the config_fuzz test" >&2; exit 1; }
deadline=$(( $(date +%s) + minutes * 60 ))
start=$(date +%s)
rounds=0 checked=0 decoded=0
while (( $(date +%s) < deadline )); do
  rounds=$((rounds + 1))
  # Run from pkg/, as cargo does, so that proptest finds its regression file.
  if ! (cd pkg && PROPTEST_CASES=$cases RUST_BACKTRACE=0 "$bin" --nocapture) >"$log" 2>&1; then
    cat "$log"
    echo "fuzz-config: FINDING in round $rounds after $(( ($(date +%s) - start) / 60 )) min;" \
      "the failing input is printed above and its seed is in pkg/tests/config_fuzz.proptest-regressions" >&2
    exit 1
  fi
  round_checked=$(awk '/inputs checked/ {s += $(NF-8)} END {print s+0}' "$log")
  round_decoded=$(awk '/inputs checked/ {s += $(NF-5)} END {print s+0}' "$log")
  checked=$((checked + round_checked))
  decoded=$((decoded + round_decoded))
  echo "round $rounds: $round_checked inputs ($round_decoded decoded), total $checked in $(( $(date +%s) - start )) s"
done
echo "fuzz-config: no finding in $(( ($(date +%s) - start) / 60 )) min: $rounds rounds, $checked inputs checked, $decoded of them decoded and validated"
