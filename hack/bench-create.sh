#!/usr/bin/env bash
# Measures `kindred create cluster` and prints machine-readable results (key=value lines):
# for a 1-node and a 1 control plane + 2 worker cluster, the median over RUNS (default 3) of
# the time from command start to (a) the API server answering on the host and (b) every node
# Ready (the end of `create --wait`), the time per step of the last run, and each node's memory
# once idle (docker stats, 30 s after Ready).
# Usage: hack/bench-create.sh [RUNS]   (the default node image must be built)
# KINDRED=/path/to/kindred measures that binary instead of this checkout's release build (an
# older commit's, to compare on the same machine and node image).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
if [[ -z ${KINDRED:-} ]]; then
  cargo build --quiet --release --bin kindred
fi
kindred=${KINDRED:-${CARGO_TARGET_DIR:-target}/release/kindred}
work=$(mktemp -d)
export KUBECONFIG=$work/kubeconfig
name=kindred-bench
trap '"$kindred" delete cluster --name $name >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

echo "binary=$kindred ($("$kindred" version 2>/dev/null | head -1))"
echo "machine=$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), Docker $(docker version -f '{{.Server.Version}}')"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for topology in 1 3; do
  config=$work/config-$topology.yaml
  { echo "kind: Cluster"; echo "apiVersion: kind.x-k8s.io/v1alpha4"; echo "nodes:"; echo "- role: control-plane"
    for _ in $(seq 2 "$topology"); do echo "- role: worker"; done; } >"$config"
  : >"$work/api" ; : >"$work/ready"
  for run in $(seq "$runs"); do
    start=$(date +%s.%N)
    CI=1 "$kindred" create cluster --name $name --config "$config" --wait 5m 2>"$work/log" &
    pid=$!
    # (a): the published API server port answers /readyz (any HTTP answer counts).
    until port=$(docker port $name-control-plane 6443/tcp 2>/dev/null | head -1 | sed 's/.*://') && [[ -n "$port" ]] \
        && curl -sk --max-time 1 "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
      kill -0 $pid 2>/dev/null || break
      sleep 0.2
    done
    echo "$(date +%s.%N) - $start" | bc >>"$work/api"
    wait $pid || { cat "$work/log" >&2; exit 1; }
    echo "$(date +%s.%N) - $start" | bc >>"$work/ready"
    if [[ $run == "$runs" ]]; then
      grep ' ✓ ' "$work/log" | sed -E "s/^\[[0-9:]+\]  ✓ (.*) \(([0-9.]+)s.*$/step_seconds[$topology nodes: \1]=\2/"
      sleep 30
      docker stats --no-stream --format "idle_memory[{{.Name}}]={{.MemUsage}}" $(docker ps --filter label=io.kindred.cluster=$name -q)
    fi
    "$kindred" delete cluster --name $name >/dev/null 2>&1
  done
  echo "api_answering_seconds_median[$topology nodes]=$(median <"$work/api")"
  echo "all_ready_seconds_median[$topology nodes]=$(median <"$work/ready")"
done
