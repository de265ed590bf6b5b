#!/usr/bin/env bash
# Runs the host matrix and prints docs/hosts.md: this machine itself (cgroup v1, Docker 20.10,
# the restricted profile), then hack/vm-smoke.sh in the cgroup v2 VM for each Docker image
# store and each node image given. Each row is one run; a failed run is a row too.
#
#   hack/vm-matrix.sh [NODE_IMAGE...] > docs/hosts.md     (default: the default node image)
set -uo pipefail
cd "$(dirname "$0")/.."

kindred="${CARGO_TARGET_DIR:-target}/release/kindred"
[[ -x $kindred ]] || { echo "vm-matrix: build kindred first (cargo build --release)" >&2; exit 1; }
default_image="kindred/node:$("$kindred" version | sed -E 's/.*default Kubernetes ([^)]+)\).*/\1/')"
images=("$@")
((${#images[@]})) || images=("$default_image")
rows=()
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/kindred-vm-matrix.XXXXXX")

# This machine: a 1-node cluster the way a user makes one.
host_row() {
  local image=$1 t0 result
  local docker cgroup
  docker=$(docker version -f '{{.Server.Version}}')
  cgroup=$(docker info -f '{{.CgroupVersion}}')
  t0=$(date +%s)
  if "$kindred" create cluster --name hosts-matrix --image "$image" --wait 5m >"$log_dir/host.log" 2>&1; then
    result="pass"
  else
    result="FAIL (see $log_dir/host.log)"
  fi
  local took=$(($(date +%s) - t0))
  local profile
  profile=$(grep -o 'restricted profile\|privileged' "$log_dir/host.log" | head -n1)
  "$kindred" delete cluster --name hosts-matrix >/dev/null 2>&1
  rows+=("| this machine: Debian 12, kernel $(uname -r) | v$cgroup | $docker, $(docker info -f '{{.Driver}}') | ${profile:-?} | ${image#*:} | 1 CP | $result | create ${took}s |")
}

vm_row() {
  local store=$1 image=$2 workers=$3 log result times
  log="$log_dir/vm-$store-${image##*:}-$workers.log"
  local t0=$(date +%s)
  if hack/vm-smoke.sh --store "$store" --image "$image" --workers "$workers" >"$log" 2>&1; then
    result="pass"
  else
    result="FAIL: $(grep -m1 'FAILED\|error' "$log" | cut -c1-120)"
  fi
  local took=$(($(date +%s) - t0))
  times=$(grep -o 'create=.*' "$log" | tail -n1)
  local docker
  docker=$(grep -o 'Docker [0-9][^ ]*' "$log" | head -n1)
  local topo="1 CP"
  ((workers)) && topo="1 CP + $workers W"
  rows+=("| VM: Debian 13 under QEMU (TCG), kernel 6.12 | v2 | ${docker#Docker }, $store store | privileged | ${image#*:} | $topo | $result | ${times:-?} (whole VM run ${took}s) |")
  echo "vm-matrix: $store ${image} -> $result" >&2
}

host_row "$default_image"
for image in "${images[@]}"; do
  for store in containerd overlay2; do
    vm_row "$store" "$image" 0
  done
done

cat <<EOF
# Hosts kindred was tried on

Produced by \`hack/vm-matrix.sh ${*:-}\` on $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD),
on a 2-core, 24 GiB Debian 12 machine (Docker 20.10, cgroup v1, \`--privileged\` refused). The VM
rows run in a Debian 13 VM under QEMU's software emulation (\`hack/vm.sh\`: about 15x slower
than the machine, so their times show a slow host, not a fast one). Each VM run boots a fresh
VM, loads the node image into its Docker, creates the cluster (\`--wait 20m\`), checks cgroup v2
and the privileged profile inside the node, loads an image with \`kindred load docker-image\`,
runs a pod from it and deletes the cluster, asserting nothing is left (\`hack/vm-smoke.sh\`).

| host | cgroup | Docker, image store | node profile | Kubernetes | topology | result | time |
| --- | --- | --- | --- | --- | --- | --- | --- |
$(printf '%s\n' "${rows[@]}")

Logs of this run: $log_dir (not kept in the repository).
EOF
