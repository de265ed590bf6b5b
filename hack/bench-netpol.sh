#!/usr/bin/env bash
# Measures NetworkPolicy programming and prints a table:
# 1. scale: one node's rules for P policies over N pods on that node (synthetic cluster, see
#    pkg/src/agent/policy/bench.rs), computed and programmed with the kernel's nftables in a
#    throwaway node container (no cluster): median of RUNS of the compute and the program time;
# 2. latency: on a real 1-node cluster, from the API accepting a policy change (`kubectl`
#    returning; and, for an upper bound, from starting it) to the agent's log line saying the
#    rules are in (container log timestamps: the same clock), for a create, an update and a
#    delete of a policy selecting a running pod; median of RUNS.
# Usage: hack/bench-netpol.sh [RUNS]   (the default node image must be built)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --quiet --release --bin kindred
kindred=$(realpath "${CARGO_TARGET_DIR:-target}/release/kindred")
image=$("$kindred" version | sed -En '1s/.*default Kubernetes ([^)]+)\).*/kindred\/node:\1/p')
work=$(mktemp -d)
export KUBECONFIG=$work/kubeconfig
name=bench-netpol
trap '"$kindred" delete cluster --name $name >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), Docker $(docker version -f '{{.Server.Version}}'), commit $(git rev-parse --short HEAD)"
echo
echo "| policies | pods on the node | compute ms | program ms | rules | script KiB |"
echo "| --- | --- | --- | --- | --- | --- |"
for size in "50 20" "500 200" "1000 400"; do
  read -r policies pods <<<"$size"
  : >"$work/compile"; : >"$work/apply"
  for _ in $(seq "$runs"); do
    line=$(docker run --rm --cap-add NET_ADMIN --entrypoint /bench/kindred -v "$kindred:/bench/kindred:ro" \
      "$image" agent policy-bench --policies "$policies" --pods "$pods")
    sed -E 's/.*compile_ms=([0-9.]+).*/\1/' <<<"$line" >>"$work/compile"
    sed -E 's/.*apply_ms=([0-9.]+).*/\1/' <<<"$line" >>"$work/apply"
  done
  rules=$(sed -E 's/.* rules=([0-9]+).*/\1/' <<<"$line")
  kib=$(sed -E 's/.*script_kib=([0-9]+).*/\1/' <<<"$line")
  echo "| $policies | $pods | $(median <"$work/compile") | $(median <"$work/apply") | $rules | $kib |"
done

"$kindred" create cluster --name $name --image "$image" --wait 5m >/dev/null 2>&1
k() { "$kindred" kubectl --name $name -- "$@"; }
k run target --image=registry.k8s.io/pause:3.10.1 --labels=app=target >/dev/null
k wait --for=condition=Ready pod/target --timeout=120s >/dev/null
agent=$(k -n kube-system get pods -l app=kindred-network -o name | head -1)
# Seconds from $1 (epoch) to the first "rules applied" log line after it that says $2.
applied_after() {
  local since=$1 want=$2 stamp
  for _ in $(seq 100); do
    stamp=$(k -n kube-system logs "$agent" --timestamps --since-time="$(date -u -d "@${since%.*}" +%Y-%m-%dT%H:%M:%SZ)" \
      | grep "rules applied.*$want" | head -1 | cut -d' ' -f1 || true)
    if [[ -n "$stamp" ]]; then
      local applied
      applied=$(date -d "$stamp" +%s.%N)
      # The log is read from the whole second of $since: skip lines from before it.
      if (( $(echo "$applied >= $since" | bc) )); then echo "$applied - $since" | bc; return; fi
    fi
    sleep 0.1
  done
  echo "no 'rules applied' line with $want within 10 s" >&2; exit 1
}
policy() {
  printf 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bench}\nspec:\n  podSelector: {matchLabels: {app: target}}\n  ingress: [{ports: [{port: %s}]}]\n' "$1"
}
: >"$work/times"
for _ in $(seq "$runs"); do
  for change in create update delete; do
    sleep 1
    t0=$(date +%s.%N)
    case $change in
      create) policy 80 | k apply -f - >/dev/null; want="policies=1 ingress_isolated=1" ;;
      update) policy 81 | k apply -f - >/dev/null; want="policies=1 ingress_isolated=1" ;;
      delete) k delete networkpolicy bench >/dev/null; want="policies=0" ;;
    esac
    t1=$(date +%s.%N)
    from_start=$(applied_after "$t0" "$want")
    echo "$change $(echo "$from_start - ($t1 - $t0)" | bc) $from_start" >>"$work/times"
  done
done
echo
echo "| change (1 node, 1 selected pod) | seconds from the API accepting it | from starting kubectl | median of |"
echo "| --- | --- | --- | --- |"
for change in create update delete; do
  accepted=$(awk -v c=$change '$1 == c {print $2}' "$work/times" | median)
  started=$(awk -v c=$change '$1 == c {print $3}' "$work/times" | median)
  echo "| $change | $accepted | $started | $runs |"
done
