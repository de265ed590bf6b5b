#!/usr/bin/env bash
# The Podman check itself, shared by hack/vm-podman.sh (in the cgroup v2 VM) and
# hack/podman-chroot.sh (trixie's Podman in a chroot on this Debian host). It expects Podman's
# Docker-compatible API at $DOCKER_HOST with the node image $IMAGE loaded, `kindred` on PATH,
# `podman` working (a command or a function), $BUSYBOX (a static busybox, the test image's
# only file) and $ARTIFACTS for the cluster's logs.
# A 1 control plane + 1 worker cluster, a pod on each node from an image made in Podman and
# loaded with `kindred load docker-image`, the lifecycle agent deleting the Node of a worker
# removed with `podman rm -f`, and `kindred delete cluster` leaving no container, volume or
# network. Ends with a RESULT line; exits non-zero at the first failure.
set -euo pipefail
: "${IMAGE:?}" "${ARTIFACTS:?}" "${DOCKER_HOST:?}" "${BUSYBOX:?}"

fail() { echo "podman-job: FAILED: $*"; podman ps -a || true; exit 1; }
since() { echo $(($(date +%s) - $1)); }

echo "podman-job: Podman $(podman version --format '{{.Client.Version}}')," \
  "$(podman info --format 'cgroup {{.Host.CgroupsVersion}}, runtime {{.Host.OCIRuntime.Name}}, network {{.Host.NetworkBackend}}')"

t0=$(date +%s)
printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n' |
  kindred create cluster --image "$IMAGE" --config - --wait 20m || fail "create"
create_s=$(since "$t0")
kindred get nodes
kindred kubectl -- get nodes -o wide
echo "podman-job: /sys/fs/cgroup in a node is $(podman exec kindred-control-plane stat -fc %T /sys/fs/cgroup)"

# An image made in Podman, loaded and run.
smoke=$(mktemp -d)
mkdir -p "$smoke/bin"
cp "$BUSYBOX" "$smoke/bin/busybox"
tar -C "$smoke" -c . | podman import -c 'ENTRYPOINT ["/bin/busybox"]' - kindred.test/smoke:v1
rm -rf "$smoke"
t0=$(date +%s)
kindred load docker-image kindred.test/smoke:v1 || fail "load"
load_s=$(since "$t0")
for node in kindred-control-plane kindred-worker; do
  kindred kubectl -- run "smoke-$node" --image=kindred.test/smoke:v1 --image-pull-policy=Never \
    --restart=Never --overrides="{\"spec\":{\"nodeName\":\"$node\"}}" -- sleep 3600
done
kindred kubectl -- wait --for=condition=Ready pod --all --timeout=10m ||
  { kindred kubectl -- describe pods; fail "the pods did not run"; }
echo "podman-job: a loaded image runs on both nodes"

podman rm -f kindred-worker
gone=false
for _ in $(seq 30); do
  kindred kubectl -- get node kindred-worker >/dev/null 2>&1 || { gone=true; break; }
  sleep 2
done
$gone || { podman logs kindred-node-lifecycle; fail "the removed worker's Node stayed"; }
echo "podman-job: the removed worker's Node was deleted"
kindred export logs "$ARTIFACTS/logs" >/dev/null
t0=$(date +%s)
kindred delete cluster
delete_s=$(since "$t0")
left="$(podman ps -aq)$(podman volume ls -q)$(podman network ls -q --filter name=^kindred\$)"
[[ -z $left ]] || fail "delete left: $left"
echo "podman-job: RESULT image=$IMAGE create=${create_s}s load=${load_s}s delete=${delete_s}s"
