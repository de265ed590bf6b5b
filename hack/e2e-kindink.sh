#!/usr/bin/env bash
# Kubernetes in Docker in Kubernetes, end to end: an outer kindred cluster runs the documented
# CI pod (docs/examples/ci-pod.yaml) from the CI image; inside the pod kindred creates an inner
# cluster, runs a smoke workload, exports logs to the pod's artifacts volume and deletes the
# inner cluster; the pod must succeed. Then a second job pod is deleted in the middle of its
# `kindred create cluster`: nothing of it may keep running in the outer node.
#
# Too slow for CI's time budget (two clusters on top of each other); run it by hand:
#   hack/e2e-kindink.sh          (exit status 0 when every check passed)
set -euo pipefail
cd "$(dirname "$0")/.."

kindred() { cargo run -q --locked --bin kindred -- "$@"; }
say() { echo "[$(date +%H:%M:%S)] kindink: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

outer=kindink
node="$outer-control-plane"
work=$(mktemp -d /tmp/kindink.XXXXXX)
cleanup() {
  kindred delete cluster --name "$outer" --kubeconfig "$work/kubeconfig" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# kubectl as cluster admin on the outer node (the host needs no kubectl).
okubectl() { docker exec -i "$node" kubectl --kubeconfig=/etc/kubernetes/admin.conf "$@"; }

node_image=$(kindred build node-image 2>/dev/null | tail -n 1)
ci_image=$(kindred build ci-image 2>/dev/null | tail -n 1)
say "node image $node_image, CI image $ci_image"

mkdir -p "$work/images"
docker save -o "$work/images/node.tar" "$node_image"
cat >"$work/outer.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraMounts:
  - hostPath: $work/images
    containerPath: /kindred-images
    readOnly: true
EOF
kindred create cluster --name "$outer" --config "$work/outer.yaml" --kubeconfig "$work/kubeconfig" --wait 5m
kindred load docker-image --name "$outer" "$ci_image"

init_before=$(docker exec "$node" ps -eo args= | grep -c '^/sbin/init' || true)

# 1. The documented job, as it is.
say "job 1: the documented pod"
okubectl apply -f - <docs/examples/ci-pod.yaml
started=$(date +%s)
phase=
while (( $(date +%s) - started < 900 )); do
  phase=$(okubectl get pod kindred-ci-job -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 5
done
okubectl logs kindred-ci-job >"$work/job1.log" 2>&1 || true
cat "$work/job1.log" >&2
[[ $phase == Succeeded ]] || fail "the job pod ended as '$phase' after $(( $(date +%s) - started ))s"
say "job 1 succeeded in $(( $(date +%s) - started ))s"
grep -q 'ci: deleting cluster kindred' "$work/job1.log" || fail "the entrypoint did not delete the inner cluster"
docker exec "$node" test -f /var/kindred-artifacts/dockerd.log || fail "no dockerd.log in the artifacts volume"
docker exec "$node" test -d /var/kindred-artifacts/logs/kindred-control-plane || fail "no inner node logs in the artifacts volume"
okubectl delete pod kindred-ci-job --wait=true >/dev/null

# 2. Deleted while it creates its cluster.
say "job 2: deleted in the middle of kindred create cluster"
sed -e 's/name: kindred-ci-job$/name: kindred-ci-job-2/' docs/examples/ci-pod.yaml | okubectl apply -f -
started=$(date +%s)
until okubectl logs kindred-ci-job-2 2>/dev/null | grep -q 'Starting the control plane'; do
  (( $(date +%s) - started < 600 )) || fail "job 2 never reached kubeadm init"
  sleep 2
done
okubectl logs -f kindred-ci-job-2 >"$work/job2.log" 2>&1 &
deleted=$(date +%s)
okubectl delete pod kindred-ci-job-2 --wait=true --timeout=120s
took=$(( $(date +%s) - deleted ))
sleep 2
cat "$work/job2.log" >&2
grep -q 'SIGTERM received: passing it on' "$work/job2.log" || fail "the entrypoint did not see SIGTERM"
grep -q 'deleting the partly created cluster' "$work/job2.log" || fail "kindred did not delete the half-made cluster"
leftover=$(docker exec "$node" ps -eo pid=,args= | grep -E 'dockerd|containerd-shim-runc-v2 -namespace moby' | grep -v grep || true)
[[ -z $leftover ]] || fail "left running in the outer node after the pod was deleted:
$leftover"
init_after=$(docker exec "$node" ps -eo args= | grep -c '^/sbin/init' || true)
[[ $init_after == "$init_before" ]] || fail "inner node containers still run in the outer node ($init_after systemd instances, $init_before before)"
say "job 2 deleted and cleaned up in ${took}s"
say "PASS"
