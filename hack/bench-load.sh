#!/usr/bin/env bash
# Measures `kindred load docker-image` against kind's method, in one run on one cluster, and
# prints a table (median of N runs, seconds):
#   full load    the image into nodes that have none of its layers
#   reload       the image rebuilt with one changed top layer, into nodes holding the old one
# kind's method is what `kind load docker-image` does: `docker save -o FILE`, then
# `ctr -n k8s.io images import` of that file on every node at once; it sends the whole
# image both times.
#
# Usage: hack/bench-load.sh [runs=3] [layer MiB=250] [layers=4]
#   a cluster `load-bench` (1 control plane + 2 workers) is created and deleted; the images
#   `load-bench/app:{v1,v2}` (layers of random data on kindred/base) are built and removed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
mib=${2:-250}
layers=${3:-4}
cluster=load-bench
nodes=($cluster-control-plane $cluster-worker $cluster-worker2)
app=load-bench/app

cargo build --quiet --release --bin kindred
kindred=${CARGO_TARGET_DIR:-target}/release/kindred
work=$(mktemp -d)
cleanup() {
  "$kindred" delete cluster --name $cluster >/dev/null 2>&1 || true
  docker rmi -f $app:v1 $app:v2 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

base=$(docker images kindred/base --format '{{.Repository}}:{{.Tag}}' | head -1)
[[ -n $base ]] || { echo "no kindred/base image here: build a node image first" >&2; exit 1; }
{
  echo "FROM $base"
  for i in $(seq "$layers"); do echo "RUN head -c ${mib}M /dev/urandom > /layer$i"; done
  echo "ARG TOP=1"
  echo "RUN echo \$TOP > /top"
} >"$work/Dockerfile"
docker build -q -t $app:v1 --build-arg TOP=1 "$work" >/dev/null 2>&1
docker build -q -t $app:v2 --build-arg TOP=2 "$work" >/dev/null 2>&1
size=$(docker image inspect -f '{{.Size}}' $app:v1)

printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n' \
  | "$kindred" create cluster --name $cluster --config - >/dev/null 2>&1

# Removes an image from every node, under every name (the CRI also names it by ID, kind's
# --digests by manifest digest), with its blobs (--sync waits for containerd's GC).
forget() {
  local pattern="" tag id
  for tag in "$@"; do
    id=$(docker image inspect -f '{{.Id}}' $app:$tag)
    pattern+="|^docker.io/$app:$tag\$|^$id\$"
  done
  for n in "${nodes[@]}"; do
    docker exec "$n" sh -c "ctr -n k8s.io images ls -q | grep -E '^import-${pattern}' \
      | xargs -r ctr -n k8s.io images rm --sync" >/dev/null
  done
}

now() { date +%s.%N; }
# Seconds a command takes.
timed() {
  local start; start=$(now)
  "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  echo "$(now) - $start" | bc
}

kind_load() {
  docker save -o "$work/image.tar" "$1"
  local pids=()
  for n in "${nodes[@]}"; do
    docker exec -i "$n" ctr -n k8s.io images import --all-platforms --digests \
      --snapshotter=overlayfs - <"$work/image.tar" >/dev/null & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  rm -f "$work/image.tar"
}
kindred_load() { "$kindred" load docker-image "$1" --name $cluster; }

# kindred's transfer line for one node, kept for the report.
sent() {
  grep -m1 "layers sent" "$work/out" >"$work/$1-line" || { cat "$work/out" >&2; exit 1; }
}

declare -A t
for r in $(seq "$runs"); do
  for tool in kindred kind; do
    forget v1 v2
    t[$tool-full-$r]=$(timed ${tool}_load $app:v1)
    [[ $tool == kind ]] || sent full
    t[$tool-reload-$r]=$(timed ${tool}_load $app:v2)
    [[ $tool == kind ]] || sent reload
    forget v2
  done
done
forget v1 v2

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}'; }
row() {
  local kd=() kn=()
  for r in $(seq "$runs"); do kd+=("${t[kindred-$1-$r]}"); kn+=("${t[kind-$1-$r]}"); done
  printf '| %-40s | %10s | %14s |\n' "$2" "$(median "${kd[@]}")" "$(median "${kn[@]}")"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), Docker $(docker version -f '{{.Server.Version}}')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- pkg cli || echo ' (modified)')"
echo "image: $((size / 1000000)) MB, $layers layers of $mib MiB + a small top layer; 3 nodes; median of $runs runs"
echo
printf '| %-40s | %10s | %14s |\n' "seconds" "kindred" "kind's method"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..16})"
row full "full load (nodes have no layer)"
row reload "reload (one top layer changed)"
echo
echo "kindred, full:   $(sed 's/^\[[^]]*\] *//' "$work/full-line")"
echo "kindred, reload: $(sed 's/^\[[^]]*\] *//' "$work/reload-line")"
