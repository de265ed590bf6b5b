#!/usr/bin/env bash
# Runs host variants and appends one row per run to docs/hosts.md (the table of every host
# kindred was tried on). A variant is KIND:STORE:IMAGE_TAG:WORKERS:
#   host:-:TAG:0              this machine itself (a 1-node create, timed to Ready)
#   smoke:STORE:TAG:N         hack/vm-smoke.sh in the cgroup v2 VM (1 control plane + N workers)
#   kind:STORE:TAG:N          the smoke run, then kind creating the same cluster (--kind)
# A failed run is a row too. Logs go to a temporary directory (printed).
#
#   hack/vm-matrix.sh host:-:v1.34.12:0 smoke:containerd:v1.34.12:0 smoke:overlay2:v1.34.12:0
set -uo pipefail
cd "$(dirname "$0")/.."

kindred="${CARGO_TARGET_DIR:-target}/release/kindred"
[[ -x $kindred ]] || { echo "vm-matrix: build kindred first (cargo build --release)" >&2; exit 1; }
(($#)) || { echo "vm-matrix: name the variants (see the comment atop hack/vm-matrix.sh)" >&2; exit 2; }
doc=docs/hosts.md
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/kindred-vm-matrix.XXXXXX")
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo "+changes")
machine="$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
vm_host="Debian 13 VM under QEMU TCG (kernel 6.12, 2 vCPUs, 6 GiB)"

if [[ ! -f $doc ]]; then
  cat >"$doc" <<'EOF'
# Hosts kindred was tried on

Rows are appended by `hack/vm-matrix.sh`, one per run, with the date and commit. "this
machine" is the project's CI machine (Debian 12, Docker 20.10, cgroup v1, `--privileged`
refused, so nodes use the restricted profile). The VM rows run in a fresh Debian 13 VM under
QEMU's software emulation (`hack/vm.sh`): cgroup v2, Docker 26 from Debian, `--privileged`
allowed. The VM is about 15x slower than the machine, so its times show a slow host, not a
fast one. A smoke run (`hack/vm-smoke.sh`) creates the cluster, checks the privileged profile
and cgroup v2 inside the node, loads an image with `kindred load docker-image`, runs it as a
Deployment with a replica on every node behind a NodePort Service, reaches it by DNS name from
a pod and by NodePort from the VM, and deletes the cluster, asserting nothing is left. A kind
run is a smoke run followed, in the same VM, by kind v0.33.0 creating the same topology from
the same kindred node image (`hack/vm-smoke.sh --kind`), both timed to every node Ready.

| date | commit | host | cgroup | Docker, image store | node profile | Kubernetes | topology | run | result | times |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
EOF
fi

row() { echo "| $(date -u +%Y-%m-%d) | $commit | $* |" >>"$doc"; echo "vm-matrix: $*" >&2; }
first_failure() { grep -m1 -E 'FAILED|error' "$1" | cut -c1-140 | tr '|' '/'; }

for variant in "$@"; do
  IFS=: read -r kind store tag workers <<<"$variant"
  image="kindred/node:$tag"
  topology="1 CP"
  ((workers > 0)) && topology="1 CP + $workers W"
  log="$log_dir/${variant//:/-}.log"
  t0=$(date +%s)
  case $kind in
    host)
      if "$kindred" create cluster --name hosts-matrix --image "$image" --wait 5m >"$log" 2>&1; then
        result=pass
      else
        result="FAIL: $(first_failure "$log")"
      fi
      took=$(($(date +%s) - t0))
      "$kindred" delete cluster --name hosts-matrix >>"$log" 2>&1
      row "this machine: Debian 12, $machine | v$(docker info -f '{{.CgroupVersion}}') | $(docker version -f '{{.Server.Version}}'), $(docker info -f '{{.Driver}}') | $(grep -q 'restricted' "$log" && echo restricted || echo privileged) | $tag | $topology | create | $result | create to Ready ${took}s"
      ;;
    smoke | kind)
      args=(--store "$store" --image "$image" --workers "$workers")
      [[ $kind == kind ]] && args+=(--kind)
      if hack/vm-smoke.sh "${args[@]}" >"$log" 2>&1; then result=pass; else result="FAIL: $(first_failure "$log")"; fi
      took=$(($(date +%s) - t0))
      times=$(grep -o 'RESULT .*' "$log" | sed -E 's/^RESULT //; s/(image|store|workers)=[^ ]* ?//g' | paste -sd ' ')
      docker_v=$(grep -o 'Docker [0-9][^ ]*' "$log" | head -n1)
      row "$vm_host | v2 | ${docker_v#Docker }, $store | privileged | $tag | $topology | $kind | $result | ${times:-} (whole VM run ${took}s)"
      ;;
    *) echo "vm-matrix: unknown variant $variant" >&2; exit 2 ;;
  esac
done
echo "vm-matrix: logs in $log_dir" >&2
