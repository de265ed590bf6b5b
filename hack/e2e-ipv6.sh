#!/usr/bin/env bash
# Upstream's network e2e specs on IPv6 and dual-stack clusters: for each family asked for, a
# fresh cluster of 1 control plane and 2 workers with `networking.ipFamily` set, then
# `kindred test conformance` (e2e.test built from Go modules, test images built and loaded,
# registries closed) with the family's focus:
#   ipv6: every `[sig-network] ... [Conformance]` spec;
#   dual: the same, plus every `[Feature:IPv6DualStack]` spec.
# Prints the machine, the commit and each summary; results (junit_01.xml, ginkgo.log,
# summary.txt) stay in ARTIFACTS/<family>. Each cluster is deleted after its run.
#
#   hack/e2e-ipv6.sh [--family ipv6|dual|both] [--focus RE] [--parallel N] [--artifacts DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

family=both focus="" parallel=2 artifacts=""
while (($#)); do
  case $1 in
    --family) family=$2; shift 2 ;;
    --focus) focus=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --artifacts) artifacts=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "e2e-ipv6: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $family in
  ipv6|dual) families=("$family") ;;
  both) families=(ipv6 dual) ;;
  *) echo "e2e-ipv6: --family is ipv6, dual or both, not $family" >&2; exit 2 ;;
esac

cargo build --quiet --release --bin kindred
kindred=$(realpath "${CARGO_TARGET_DIR:-target}/release/kindred")
artifacts=${artifacts:-$(mktemp -d -t kindred-ipv6-e2e.XXXXXX)}
current=""
trap '[[ -z $current ]] || "$kindred" delete cluster --name "$current" >/dev/null 2>&1 || true' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), Docker $(docker version -f '{{.Server.Version}}'), commit $(git rev-parse --short HEAD)"
status=0
for f in "${families[@]}"; do
  current=$f-e2e
  dir=$artifacts/$f
  mkdir -p "$dir"
  export KUBECONFIG=$dir/kubeconfig
  want=${focus:-'\[sig-network\] .*\[Conformance\]'}
  [[ -n $focus || $f != dual ]] || want="$want|\\[Feature:IPv6DualStack\\]"
  echo "== $f: command: $0 --family $f --focus '$want' --parallel $parallel"
  created=$(date +%s)
  "$kindred" create cluster --name "$current" --wait 5m --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: $f
nodes:
- role: control-plane
- role: worker
- role: worker
EOF
  echo "$f: cluster Ready in $(($(date +%s) - created)) s"
  start=$(date +%s)
  # The focus and what this host cannot do: no SCTP in the kernels kindred is tested on.
  "$kindred" test conformance --name "$current" --focus "$want" --no-default-skips \
    --skip 'SCTP|\[Serial\]|\[Disruptive\]|\[Flaky\]' --parallel "$parallel" \
    --artifacts "$dir" || status=$?
  echo "$f: suite took $(($(date +%s) - start)) s; artifacts in $dir"
  "$kindred" delete cluster --name "$current"
  current=""
done
exit $status
