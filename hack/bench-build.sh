#!/usr/bin/env bash
# Measures one node image build and prints machine-readable results (key=value lines):
# wall time, time per step, peak memory of the build and everything it ran (the Go compiler),
# node image size, and the size of each installed binary and preloaded image archive.
#
# Usage: hack/bench-build.sh cold|warm [extra `kindred build node-image` args]
#   cold: a new, empty cache directory (Go module and build caches included), removed after
#   warm: the normal cache directory ($KINDRED_CACHE_DIR or ~/.cache/kindred)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-warm}
shift || true
case "$mode" in
  cold) export KINDRED_CACHE_DIR=$(mktemp -d /var/tmp/kindred-bench-XXXXXX)
        trap 'rm -rf "$KINDRED_CACHE_DIR"' EXIT ;;
  warm) ;;
  *) echo "usage: $0 cold|warm [build args]" >&2; exit 2 ;;
esac

cargo build --quiet --release --bin kindred
kindred=${CARGO_TARGET_DIR:-target}/release/kindred
out=$(mktemp -d)
trap 'rm -rf "$out"; [[ $mode == cold ]] && rm -rf "$KINDRED_CACHE_DIR"' EXIT

echo "machine=$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), $(go env GOVERSION)"
echo "mode=$mode"
start=$(date +%s.%N)
CI=1 /usr/bin/time -v -o "$out/time" "$kindred" build node-image "$@" >"$out/image" 2>"$out/log" || {
  tail -40 "$out/log" >&2; exit 1; }
end=$(date +%s.%N)
image=$(cat "$out/image")

printf 'wall_seconds=%.1f\n' "$(echo "$end - $start" | bc)"
# Step lines look like "[12:00:00]  ✓ Building containerd, runc and CNI plugins (8.8s, ...)".
grep ' ✓ ' "$out/log" | sed -E 's/^\[[0-9:]+\]  ✓ (.*) \(([0-9.]+)s.*$/step_seconds[\1]=\2/'
awk -F': ' '/Maximum resident set size/ {printf "peak_rss_mib=%d\n", $2/1024}' "$out/time"
echo "image=$image"
echo "image_bytes=$(docker image inspect -f '{{.Size}}' "$image")"
paths=$("$kindred" bom "$image" -o json | python3 -c 'import json,sys; print(" ".join(c["path"] for c in json.load(sys.stdin)["components"] if c["kind"]=="binary"))')
docker run --rm --entrypoint /usr/bin/stat "$image" -c 'binary_bytes[%n]=%s' $paths
cache=${KINDRED_CACHE_DIR:-$HOME/.cache/kindred}
version=$(docker image inspect -f '{{index .Config.Labels "io.kindred.kubernetes-version"}}' "$image")
dir=$(dirname "$(ls -t "$cache"/images/*/kube-apiserver-"$version".tar | head -1)")
find "$dir" -name '*.tar' -printf 'image_archive_bytes[%f]=%s\n' | sort
