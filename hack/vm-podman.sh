#!/usr/bin/env bash
# kindred on Podman instead of Docker: in the cgroup v2 VM (hack/vm.sh, with Debian trixie's
# podman and what `apt install podman` brings along for its network, nftables and aardvark-dns,
# on its disk), Docker is stopped and kindred talks to Podman's Docker-compatible API
# (`podman system service`, DOCKER_HOST=unix:///run/podman/podman.sock), as a Podman user
# would run it; then the check in hack/podman-job.sh (also run by hack/podman-chroot.sh at
# native speed on this host). Prints a RESULT line with times.
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

# Stop Docker, load the node image, serve Podman's API; then the shared check.
job=$(cat <<EOF
set -euo pipefail
systemctl stop docker.socket docker
# Docker's netfilter rules outlive it, and its FORWARD policy (drop) would drop the bridged
# traffic between Podman's containers; a host with Podman only has none of them.
nft flush ruleset
t0=\$(date +%s)
podman load -q -i /share/files/node.tar
echo "vm-podman: node image loaded in \$(( \$(date +%s) - t0 ))s"
mkdir -p /run/podman
podman system service --time=0 unix:///run/podman/podman.sock &
for _ in \$(seq 60); do [[ -S /run/podman/podman.sock ]] && break; sleep 1; done
DOCKER_HOST=unix:///run/podman/podman.sock IMAGE=localhost/$image ARTIFACTS=\$VM_ARTIFACTS \\
  BUSYBOX=/bin/busybox bash /share/files/podman-job.sh
EOF
)
hack/vm.sh --package podman --package nftables --package aardvark-dns --file "$work/node.tar" --file hack/podman-job.sh --kindred "$kindred" --timeout 3600 -- "$job"
