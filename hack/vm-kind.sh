#!/usr/bin/env bash
# kind interop, in the cgroup v2 VM (hack/vm.sh): kind v0.33.0, built here from Go modules,
# creates a cluster from a kindred node image, and the same VM gives the side-by-side number:
# kindred and kind each create the same topology (1 control plane + 1 worker) from the same
# image, timed to every node Ready. kind also gets kubeadm's timeouts raised (the VM is an
# emulated, slow host; kindred raises them itself). Passes when kind's cluster has every node
# Ready and kindred's pod network and storage agents, applied by kind from the image's
# /kind/manifests, running with CoreDNS. Prints a RESULT line (hack/vm-matrix.sh collects it).
#
#   hack/vm-kind.sh --image kindred/node:v1.37.2 [--store overlay2|containerd]
set -euo pipefail
cd "$(dirname "$0")/.."

kind_version=v0.33.0 store=overlay2 image=""
while (($#)); do
  case $1 in
    --image) image=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    *) echo "vm-kind: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n $image ]] || { echo "vm-kind: --image kindred/node:TAG is required (kind uses kubeadm v1beta4, and so its timeouts, from Kubernetes 1.36)" >&2; exit 2; }
docker image inspect "$image" >/dev/null 2>&1 ||
  { echo "vm-kind: $image is not in Docker; build it with \`kindred build node-image --kube-version ${image##*:}\`" >&2; exit 1; }

bin_dir="${KINDRED_CACHE_DIR:-$HOME/.cache/kindred}/kind/$kind_version"
if [[ ! -x $bin_dir/kind ]]; then
  echo "vm-kind: building kind $kind_version from Go modules" >&2
  GOBIN="$bin_dir" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$kind_version"
fi

job=$(cat <<EOF
set -euo pipefail
fail() { echo "vm-kind: FAILED: \$*"; docker ps -a; exit 1; }
install -m 755 /share/files/kind /usr/local/bin/kind
topology='kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker'
all_ready() { # CONTAINER: every node Ready, within 20 minutes
  docker exec "\$1" kubectl --kubeconfig=/etc/kubernetes/admin.conf wait --for=condition=Ready nodes --all --timeout=20m
}

t0=\$(date +%s)
echo "\$topology" | kindred create cluster --image $image --config -
all_ready kindred-control-plane
kindred_s=\$(( \$(date +%s) - t0 ))
echo "vm-kind: kindred: every node Ready after \${kindred_s}s"
kindred delete cluster

# kind's own v1beta4 documents, with kubeadm's waits raised as kindred raises them.
timeouts='  timeouts:
    controlPlaneComponentHealthCheck: 8m0s
    kubeletHealthCheck: 8m0s
    kubernetesAPICall: 4m0s
    etcdAPICall: 4m0s
    tlsBootstrap: 10m0s
    discovery: 10m0s'
config="\$topology
kubeadmConfigPatches:
- |
  kind: InitConfiguration
\$timeouts
- |
  kind: JoinConfiguration
\$timeouts"
t0=\$(date +%s)
echo "\$config" | kind create cluster --image $image --config - --retain || { kind export logs "\$VM_ARTIFACTS/kind-logs" || true; fail "kind create cluster"; }
all_ready kind-control-plane || { kind export logs "\$VM_ARTIFACTS/kind-logs" || true; fail "kind's nodes did not become Ready"; }
kind_s=\$(( \$(date +%s) - t0 ))
echo "vm-kind: kind: every node Ready after \${kind_s}s"
k() { docker exec kind-control-plane kubectl --kubeconfig=/etc/kubernetes/admin.conf "\$@"; }
k -n kube-system rollout status ds/kindred-network --timeout=10m || fail "kindred's pod network agent did not run under kind"
k -n kube-system rollout status ds/kindred-storage --timeout=10m || fail "kindred's storage agent did not run under kind"
k -n kube-system rollout status deploy/coredns --timeout=10m || fail "CoreDNS did not run on kind's pod network"
k get nodes -o wide
kind export logs "\$VM_ARTIFACTS/kind-logs" >/dev/null
kind delete cluster
echo "vm-kind: RESULT image=$image store=$store kindred=\${kindred_s}s kind=\${kind_s}s ratio(kind/kindred)=\$(awk "BEGIN {printf \"%.2f\", \$kind_s / \$kindred_s}")"
EOF
)
exec hack/vm.sh --store "$store" --image "$image" --file "$bin_dir/kind" -- "$job"
