#!/usr/bin/env bash
# kindred on Podman instead of Docker: in the cgroup v2 VM (hack/vm.sh, with Debian trixie's
# podman on its disk), Docker is stopped and kindred talks to Podman's Docker-compatible API
# (`podman system service`, DOCKER_HOST=unix:///run/podman/podman.sock), as a Podman user
# would run it. A 1 control plane + 1 worker cluster from a kindred node image, a pod on each
# node, an image made in Podman loaded with `kindred load docker-image` and run, the node
# lifecycle agent deleting the Node of a worker removed with `podman rm -f`, and `kindred
# delete cluster` leaving no container, volume or network. Prints a RESULT line with times.
#
#   hack/vm-podman.sh [--image kindred/node:TAG]
set -euo pipefail
cd "$(dirname "$0")/.."

image=""
while (($#)); do
  case $1 in
    --image) image=$2; shift 2 ;;
    *) echo "vm-podman: unknown option $1" >&2; exit 2 ;;
  esac
done
kindred="${CARGO_TARGET_DIR:-target}/release/kindred"
if [[ -z $image ]]; then
  image="kindred/node:$("$kindred" version | sed -En '1s/.*default Kubernetes ([^)]+)\).*/\1/p')"
fi
docker image inspect "$image" >/dev/null 2>&1 ||
  { echo "vm-podman: $image is not in Docker; build it with \`kindred build node-image\`" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/kindred-vm-podman.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "vm-podman: saving $image for Podman" >&2
docker save "$image" -o "$work/node.tar"

job=$(cat <<EOF
set -euo pipefail
fail() { echo "vm-podman: FAILED: \$*"; podman ps -a || true; exit 1; }
t() { echo \$(( \$(date +%s) - \$1 )); }
systemctl stop docker.socket docker
podman version --format 'vm-podman: Podman {{.Server.Version}}'
podman info --format 'vm-podman: cgroup v{{.Host.CgroupsVersion}}, runtime {{.Host.OCIRuntime.Name}}, network {{.Host.NetworkBackend}}'
t0=\$(date +%s)
podman load -q -i /share/files/node.tar
echo "vm-podman: node image loaded in \$(t \$t0)s"
podman system service --time=0 unix:///run/podman/podman.sock &
for _ in \$(seq 60); do [[ -S /run/podman/podman.sock ]] && break; sleep 1; done
export DOCKER_HOST=unix:///run/podman/podman.sock
t0=\$(date +%s)
printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n' |
  kindred create cluster --image $image --config - --wait 20m || fail "create"
create_s=\$(t \$t0)
kindred get nodes
kindred kubectl -- get nodes -o wide
fs=\$(podman exec kindred-control-plane stat -fc %T /sys/fs/cgroup)
[[ \$fs == cgroup2fs ]] || fail "the node sees \$fs at /sys/fs/cgroup"

mkdir -p /tmp/smoke/bin && cp /bin/busybox /tmp/smoke/bin/busybox
tar -C /tmp/smoke -c . | podman import -c 'ENTRYPOINT ["/bin/busybox"]' - kindred.test/smoke:v1
t0=\$(date +%s)
kindred load docker-image kindred.test/smoke:v1 || fail "load"
load_s=\$(t \$t0)
for node in kindred-control-plane kindred-worker; do
  kindred kubectl -- run "smoke-\$node" --image=kindred.test/smoke:v1 --image-pull-policy=Never \
    --restart=Never --overrides="{\"spec\":{\"nodeName\":\"\$node\"}}" -- sleep 3600
done
kindred kubectl -- wait --for=condition=Ready pod --all --timeout=10m ||
  { kindred kubectl -- describe pods; fail "the pods did not run"; }
echo "vm-podman: a loaded image runs on both nodes"

podman rm -f kindred-worker
gone=false
for _ in \$(seq 30); do
  kindred kubectl -- get node kindred-worker >/dev/null 2>&1 || { gone=true; break; }
  sleep 2
done
\$gone || { podman logs kindred-node-lifecycle; fail "the removed worker's Node stayed"; }
echo "vm-podman: the removed worker's Node was deleted"
kindred export logs "\$VM_ARTIFACTS/logs" >/dev/null
t0=\$(date +%s)
kindred delete cluster
delete_s=\$(t \$t0)
left="\$(podman ps -aq)\$(podman volume ls -q)\$(podman network ls -q --filter name=^kindred\$)"
[[ -z \$left ]] || fail "delete left: \$left"
echo "vm-podman: RESULT image=$image create=\${create_s}s load=\${load_s}s delete=\${delete_s}s"
EOF
)
hack/vm.sh --package podman --file "$work/node.tar" --kindred "$kindred" --timeout 3600 -- "$job"
