#!/usr/bin/env bash
# Measures building what `kindred test conformance` needs — e2e.test (`go test -c` of
# k8s.io/kubernetes/test/e2e), ginkgo, and the test images — and prints machine-readable
# results (key=value lines): wall time, time per step, the largest single process (the Go
# linker, usually) and the peak of the whole process tree's summed RSS (parallel compilers).
#
# Usage: hack/bench-conformance-build.sh cold|warm [--kube-version vX.Y.Z]
#   cold: a new, empty cache directory (Go module and build caches, Debian base included),
#         removed afterwards
#   warm: the normal cache directory ($KINDRED_CACHE_DIR or ~/.cache/kindred)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-warm}
shift || true
case "$mode" in
  cold) export KINDRED_CACHE_DIR=$(mktemp -d /var/tmp/kindred-bench-XXXXXX) ;;
  warm) ;;
  *) echo "usage: $0 cold|warm [--kube-version vX.Y.Z]" >&2; exit 2 ;;
esac

cargo build --quiet --bin kindred
kindred=${CARGO_TARGET_DIR:-target}/debug/kindred
out=$(mktemp -d)
trap 'rm -rf "$out"; if [[ $mode == cold ]]; then rm -rf "$KINDRED_CACHE_DIR"; fi' EXIT

# Sums the RSS (KiB) of a process and all its descendants, once a second; keeps the peak.
sample_tree_rss() {
  local root=$1 peak=0 sum
  while kill -0 "$root" 2>/dev/null; do
    sum=$(ps -e -o pid=,ppid=,rss= | awk -v root="$root" '
      { parent[$1] = $2; rss[$1] = $3 }
      END { for (p in parent) { q = p; while (q > 1) { if (q == root) { s += rss[p]; break } q = parent[q] } } print s + 0 }')
    (( sum > peak )) && peak=$sum
    echo "$peak" > "$out/tree-peak"
    sleep 1
  done
}

echo "machine=$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), $(go env GOVERSION)"
echo "mode=$mode"
start=$(date +%s.%N)
CI=1 /usr/bin/time -v -o "$out/time" "$kindred" test conformance --build-only "$@" >"$out/paths" 2>"$out/log" &
pid=$!
sample_tree_rss "$pid" &
sampler=$!
status=0
wait "$pid" || status=$?
wait "$sampler" || true
end=$(date +%s.%N)
if (( status != 0 )); then tail -40 "$out/log" >&2; exit 1; fi

printf 'wall_seconds=%.1f\n' "$(echo "$end - $start" | bc)"
# Step lines look like "[12:00:00]  ✓ Building the test images (24.2s, 14 images, ...)".
grep ' ✓ ' "$out/log" | sed -E 's/^\[[0-9:]+\]  ✓ (.*) \(([0-9.]+)s.*$/step_seconds[\1]=\2/'
awk -F': ' '/Maximum resident set size/ {printf "largest_process_rss_mib=%d\n", $2/1024}' "$out/time"
echo "process_tree_peak_rss_mib=$(( $(cat "$out/tree-peak" 2>/dev/null || echo 0) / 1024 ))"
while read -r path; do
  echo "bytes[$(basename "$path")]=$(stat -c %s "$path")"
done <"$out/paths"
