#!/usr/bin/env bash
# Upstream's LoadBalancer e2e specs against kindred's built-in LoadBalancer Services: every
# `[Feature:LoadBalancer]` spec of the cluster's e2e.test plus the Services spec on Type
# LoadBalancer, on a fresh cluster of 1 control plane and 2 workers (some specs put the
# server and the client on different nodes), with `kindred test conformance` (e2e.test built
# from Go modules, test images built and loaded, registries closed). Prints the machine,
# the commit and the summary; results (junit_01.xml, ginkgo.log, summary.txt) stay in the
# artifacts directory. The cluster is deleted at the end. `--ip-family ipv6|dual` runs them on
# an IPv6 or dual-stack cluster (the Services get addresses of the pool's IPv6 twin).
#
# Where the client stands: several specs check that a LoadBalancer keeps the client's address
# by failing any address inside the /16 around a worker's InternalIP (upstream assumes clients
# outside the nodes' subnet, as in a cloud). On kindred the host reaches the cluster from the
# `kindred` network's gateway, which is inside that /16. So, as root, this script gives the
# host a second address outside it (198.18.0.1, from the block reserved for network tests,
# RFC 2544) and routes the cluster's LoadBalancer block from that address for the length of
# the run; the nodes answer it through their default route, the host. IPv4 only.
#
#   hack/e2e-loadbalancer.sh [--focus RE] [--skip RE] [--parallel N] [--artifacts DIR] [--ip-family F]
#
# Upstream's release-blocking LoadBalancer job selection (1 CP + 2 workers; [Serial] skipped as
# kind's e2e-k8s.sh does for parallel jobs):
#   hack/e2e-loadbalancer.sh --parallel 4 --focus '\[sig-network\]|\[Conformance\]' \
#     --skip 'Alpha|Beta|LoadBalancer.Service.without.NodePort|NetworkPolicy|Disruptive|Flaky|IPv6|SCTPConnectivity|IPerf2|\[Serial\]'
set -euo pipefail
cd "$(dirname "$0")/.."

focus='\[Feature:LoadBalancer\]|Type LoadBalancer' skip='SCTP' parallel=2 artifacts="" family=ipv4
while (($#)); do
  case $1 in
    --focus) focus=$2; shift 2 ;;
    --skip) skip=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --artifacts) artifacts=$2; shift 2 ;;
    --ip-family) family=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "e2e-loadbalancer: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cargo build --quiet --release --bin kindred
kindred=$(realpath "${CARGO_TARGET_DIR:-target}/release/kindred")
name=lb-e2e
artifacts=${artifacts:-$(mktemp -d -t kindred-lb-e2e.XXXXXX)}
export KUBECONFIG=$artifacts/kubeconfig
# On exit: the client address and its route (when set, below), then the cluster.
added="" client="" pool="" bridge=""
cleanup() {
  if [[ -n $added ]]; then
    ip route del "$pool" dev "$bridge" 2>/dev/null || true
    ip addr del "$client/32" dev "$bridge" 2>/dev/null || true
  fi
  "$kindred" delete cluster --name $name >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), Docker $(docker version -f '{{.Server.Version}}'), commit $(git rev-parse --short HEAD)"
echo "command: $0 --focus '$focus' --skip '$skip' --parallel $parallel --ip-family $family"
"$kindred" create cluster --name $name --wait 5m --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: $family
nodes:
- role: control-plane
- role: worker
- role: worker
EOF

# The external client address (see the header); removed again on exit.
client=198.18.0.1
pool=$(docker inspect -f '{{index .Config.Labels "io.kindred.lb-pool"}}' $name-control-plane)
gateway=$(docker inspect -f '{{(index .NetworkSettings.Networks "kindred").Gateway}}' $name-control-plane)
bridge=$(ip -o -4 addr show | awk -v gw="$gateway" '{split($4, a, "/"); if (a[1] == gw) print $2}')
if [[ $(id -u) != 0 || -z $pool || -z $bridge || $family == ipv6 ]]; then
  echo "e2e-loadbalancer: no external client address (needs root, an IPv4 LoadBalancer block and the kindred bridge; have uid $(id -u), block '${pool}', bridge '${bridge}'): the specs that check the client's address will see the host as inside the nodes' subnet" >&2
else
  ip addr add $client/32 dev "$bridge"
  added=1
  ip route add "$pool" dev "$bridge" src $client
  echo "client address $client on $bridge for the LoadBalancer block $pool"
fi
start=$(date +%s)
status=0
# Only the focus and, by default, what this host cannot do: no SCTP in the kernels kindred is
# tested on.
"$kindred" test conformance --name $name --focus "$focus" --no-default-skips \
  --skip "$skip" --parallel "$parallel" --artifacts "$artifacts" || status=$?
echo "suite took $(($(date +%s) - start)) s; artifacts in $artifacts"
exit $status
