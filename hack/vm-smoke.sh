#!/usr/bin/env bash
# The mainstream-host smoke test: in a cgroup v2 VM with privileged Docker (hack/vm.sh), a
# cluster (one node, or one control plane and N workers) from a node image, as a user on such
# a host would make it. Asserts the privileged path and cgroup v2 inside the node; an image
# put there by `kindred load docker-image` (through Docker's containerd image store by
# default) running as a Deployment with a replica on every node; its Service answering by DNS
# name from a pod and on its NodePort from the VM; and that `kindred delete cluster` leaves no
# container, volume or network behind. Prints a result line with the times
# (hack/vm-matrix.sh collects them).
#
# With --kind, the same VM then checks kind interop and gives the side-by-side number: kind
# v0.33.0 (built here from Go modules) creates the same topology from the same kindred node
# image, timed to every node Ready like kindred's create, with kubeadm's timeouts raised as
# kindred raises them (kind uses v1beta4, and so has them, from Kubernetes 1.36). It passes
# when kind's nodes are Ready and kindred's pod network and storage agents, which kind applies
# from the image's /kind/manifests, run with CoreDNS.
#
#   hack/vm-smoke.sh [--store containerd|overlay2] [--image kindred/node:TAG] [--workers N] [--kind]
set -euo pipefail
cd "$(dirname "$0")/.."

store=containerd workers=0 kind=false
image="" kind_version=v0.33.0
while (($#)); do
  case $1 in
    --store) store=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --kind) kind=true; shift ;;
    *) echo "vm-smoke: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ -z $image ]]; then
  kindred="${CARGO_TARGET_DIR:-target}/release/kindred"
  # sed reads all of kindred's output: `head -1` may close the pipe before kindred's second
  # line, and with pipefail kindred's broken-pipe exit would fail the script.
  image="kindred/node:$("$kindred" version | sed -En '1s/.*default Kubernetes ([^)]+)\).*/\1/p')"
fi
docker image inspect "$image" >/dev/null 2>&1 ||
  { echo "vm-smoke: $image is not in Docker; build it with \`kindred build node-image\`" >&2; exit 1; }

# The job, run as root inside the VM (see hack/vm.sh). Each check prints what it saw.
job=$(cat <<EOF
set -euo pipefail
# A failure keeps the cluster's logs (nodes, pods, journals) in the VM's artifacts.
fail() {
  echo "vm-smoke: FAILED: \$*"; docker ps -a
  kindred export logs "\$VM_ARTIFACTS/logs" >/dev/null 2>&1 || true
  exit 1
}
t() { echo \$(( \$(date +%s) - \$1 )); }
info=\$(docker info -f '{{.CgroupVersion}} {{.Driver}} {{.ServerVersion}}')
echo "vm-smoke: docker info: \$info"
[[ \$info == 2\ * ]] || fail "the VM's Docker is not on cgroup v2"
if [[ $store == containerd ]]; then
  docker info -f '{{json .DriverStatus}}' | grep -q io.containerd.snapshotter || fail "Docker does not use the containerd image store"
fi
nodes='kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane'
for _ in \$(seq $workers); do nodes+=\$'\n- role: worker'; done
# Under emulation etcd can take seconds per request, past the 10 s in which the controller
# manager and the scheduler must renew their leader leases: they then exit, restart, load the
# API further and never start the pod network's DaemonSet. Longer leases keep them up.
leases='kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  controllerManager:
    extraArgs: {leader-elect-lease-duration: 90s, leader-elect-renew-deadline: 60s}
  scheduler:
    extraArgs: {leader-elect-lease-duration: 90s, leader-elect-renew-deadline: 60s}'
t0=\$(date +%s)
# --retain: a failed create leaves its nodes, so that fail() can export their logs.
echo "\$nodes
\$leases" | kindred create cluster --image $image --config - --wait 30m --retain ||
  fail "kindred create cluster"
create_s=\$(t \$t0)
node=kindred-control-plane
[[ \$(docker inspect -f '{{.HostConfig.Privileged}}' \$node) == true ]] || fail "the node is not privileged"
fs=\$(docker exec \$node stat -fc %T /sys/fs/cgroup)
[[ \$fs == cgroup2fs ]] || fail "the node sees \$fs at /sys/fs/cgroup, not cgroup v2"
echo "vm-smoke: node is privileged and on cgroup v2"

# An image that exists only in this VM's Docker (busybox, serving a page with its httpd),
# loaded into the nodes and run by a Deployment with a replica on every node.
mkdir -p /tmp/smoke/bin /tmp/smoke/www && cp /bin/busybox /tmp/smoke/bin/busybox
echo kindred-smoke >/tmp/smoke/www/index.html
tar -C /tmp/smoke -c . | docker import -c 'ENTRYPOINT ["/bin/busybox"]' - kindred.test/smoke:v1
t0=\$(date +%s)
kindred load docker-image kindred.test/smoke:v1
load_s=\$(t \$t0)
# The same image one layer on: only that layer goes to each node.
docker run --name smoke-v2 kindred.test/smoke:v1 touch /www/v2
docker commit smoke-v2 kindred.test/smoke:v2 >/dev/null && docker rm smoke-v2 >/dev/null
sent=\$(kindred load docker-image kindred.test/smoke:v2 2>&1) || fail "loading v2 failed: \$sent"
echo "\$sent"
[[ \$(grep -c "1 of 2 layers sent" <<<"\$sent") == \$(( $workers + 1 )) ]] ||
  fail "loading an image one layer newer did not send just that layer to every node"
echo "vm-smoke: an image one layer newer sent one layer to each node"
replicas=\$(( $workers + 1 ))
kindred kubectl -- apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: \$replicas
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations: [{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname}
      containers:
      - name: web
        image: kindred.test/smoke:v1
        imagePullPolicy: Never
        args: [httpd, -f, -p, "8080", -h, /www]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
YAML
kindred kubectl -- rollout status deploy/web --timeout=10m || { kindred kubectl -- describe pods; fail "the Deployment did not become ready"; }
spread=\$(kindred kubectl -- get pods -l app=web -o jsonpath='{.items[*].spec.nodeName}' | tr ' ' '\n' | sort -u | wc -l)
[[ \$spread == \$replicas ]] || fail "web runs on \$spread nodes, not \$replicas"
kindred kubectl -- run smoke --image=kindred.test/smoke:v1 --image-pull-policy=Never --restart=Never -- sleep 3600
kindred kubectl -- wait --for=condition=Ready pod/smoke --timeout=10m || { kindred kubectl -- describe pod smoke; fail "the pod did not run"; }
# CoreDNS may still be starting under emulation when the pods are: wait for it, then give the
# name a minute (kube-proxy programs the DNS Service's rules on its own schedule).
kindred kubectl -- -n kube-system rollout status deploy/coredns --timeout=10m || { kindred kubectl -- -n kube-system describe pods; fail "CoreDNS did not become ready"; }
page=""
for try in \$(seq 12); do
  page=\$(kindred kubectl -- exec smoke -- /bin/busybox wget -qO- http://web.default.svc.cluster.local/) && break
  echo "vm-smoke: the Service by DNS name did not answer (try \$try of 12)"; sleep 5
done
[[ \$page == kindred-smoke ]] || { kindred kubectl -- -n kube-system get pods -o wide; fail "the Service by DNS name answered '\$page'"; }
ip=\$(docker inspect -f '{{.NetworkSettings.Networks.kindred.IPAddress}}' \$node)
page=\$(busybox wget -qO- http://\$ip:30080/)
[[ \$page == kindred-smoke ]] || fail "the NodePort answered '\$page' from the VM"
echo "vm-smoke: Deployment on \$spread node(s), Service by DNS name from a pod, NodePort from the VM"
kindred export logs "\$VM_ARTIFACTS/logs" >/dev/null
t0=\$(date +%s)
kindred delete cluster
delete_s=\$(t \$t0)
left="\$(docker ps -aq)\$(docker volume ls -q)\$(docker network ls -q --filter name=^kindred\$)"
[[ -z \$left ]] || fail "delete left: \$left"
echo "vm-smoke: RESULT store=$store image=$image workers=$workers create=\${create_s}s load=\${load_s}s delete=\${delete_s}s"
EOF
)
vm_args=(--store "$store" --image "$image")
if $kind; then
  bin_dir="${KINDRED_CACHE_DIR:-$HOME/.cache/kindred}/kind/$kind_version"
  if [[ ! -x $bin_dir/kind ]]; then
    echo "vm-smoke: building kind $kind_version from Go modules" >&2
    GOBIN="$bin_dir" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$kind_version"
  fi
  vm_args+=(--file "$bin_dir/kind")
  job+=$(cat <<EOF

install -m 755 /share/files/kind /usr/local/bin/kind
timeouts='  timeouts:
    controlPlaneComponentHealthCheck: 8m0s
    kubeletHealthCheck: 8m0s
    kubernetesAPICall: 4m0s
    etcdAPICall: 4m0s
    tlsBootstrap: 10m0s
    discovery: 10m0s'
config="\$nodes
kubeadmConfigPatches:
- |
  kind: InitConfiguration
\$timeouts
- |
  kind: JoinConfiguration
\$timeouts"
kind_logs() { kind export logs "\$VM_ARTIFACTS/kind-logs" >/dev/null 2>&1 || true; }
k() { docker exec kind-control-plane kubectl --kubeconfig=/etc/kubernetes/admin.conf "\$@"; }
t0=\$(date +%s)
echo "\$config" | kind create cluster --image $image --config - --retain || { kind_logs; fail "kind create cluster"; }
k wait --for=condition=Ready nodes --all --timeout=20m || { kind_logs; fail "kind's nodes did not become Ready"; }
kind_s=\$(t \$t0)
k -n kube-system rollout status ds/kindred-network --timeout=10m || { kind_logs; fail "kindred's pod network agent did not run under kind"; }
k -n kube-system rollout status ds/kindred-storage --timeout=10m || { kind_logs; fail "kindred's storage agent did not run under kind"; }
k -n kube-system rollout status deploy/coredns --timeout=10m || { kind_logs; fail "CoreDNS did not run on kind's cluster"; }
k get nodes -o wide
kind_logs
kind delete cluster
ratio=\$(awk "BEGIN {printf \"%.2f\", \$kind_s / \$create_s}")
echo "vm-smoke: RESULT kind=\${kind_s}s kindred=\${create_s}s ratio(kind/kindred)=\$ratio"
EOF
)
fi
exec hack/vm.sh "${vm_args[@]}" -- "$job"
