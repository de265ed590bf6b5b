#!/usr/bin/env bash
# kindred on Podman 5 at native speed: Debian trixie's podman (5.4, crun, netavark) installed in
# a chroot on this Debian host and serving its Docker-compatible API; kindred, on the host,
# talks to it through DOCKER_HOST as a Podman user would. Runs the same check as
# hack/vm-podman.sh (hack/podman-job.sh: 1 control plane + 1 worker, an image made in Podman
# loaded and run on both nodes, a `podman rm -f`'d worker's Node deleted, nothing left after
# `kindred delete cluster`). Needs root (debootstrap, mounts). The host's kernel and cgroup
# version are the host's: on these machines cgroup v1, which Podman 5 still runs (it warns).
#
#   hack/podman-chroot.sh [--image kindred/node:TAG] [--artifacts DIR]
#
# On a cgroup v1 host (these machines) it shows why kindred refuses Podman there instead: a
# node needs its own cgroup namespace on cgroup v1, and Podman's Docker-compatible API ignores
# `HostConfig.CgroupnsMode` (Podman defaults to the host's namespace on cgroup v1, and its
# containers.conf `cgroupns` does not reach compat-API containers either). It creates one
# container each way, through Podman's CLI with `--cgroupns=private` and through the compat
# API with `CgroupnsMode: private`, prints which namespace each got, then shows
# `kindred create cluster` refusing, and exits 1.
#
# The chroot is built once per package list (cached under $KINDRED_CACHE_DIR/podman-chroot);
# every run starts with empty Podman storage. Everything is undone on exit, also on failure
# and Ctrl-C: the cluster, the API service, the mounts. Docker's own state is not touched.
#
# Host-sharing details that matter: the chroot's /run/podman is also mounted at the host's
# /run/podman, so the socket path kindred gives Podman (the lifecycle agent mounts it) is the
# same on both sides; netavark uses its iptables driver, whose rules go ahead of Docker's
# FORWARD policy (DROP) in the host's one netfilter.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "podman-chroot: error: $*" >&2; exit 1; }
image="" artifacts=""
while (($#)); do
  case $1 in
    --image) image=$2; shift 2 ;;
    --artifacts) artifacts=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $(id -u) == 0 ]] || die "needs root (debootstrap and mounts)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
[[ -e /run/podman ]] && die "/run/podman exists: a Podman already runs on this host; use it directly"

kindred=$(realpath "${CARGO_TARGET_DIR:-target}/release/kindred")
[[ -x $kindred ]] || die "$kindred is missing: cargo build --release"
if [[ -z $image ]]; then
  image="kindred/node:$("$kindred" version | sed -En '1s/.*default Kubernetes ([^)]+)\).*/\1/p')"
fi
docker image inspect "$image" >/dev/null 2>&1 ||
  die "$image is not in Docker; build it with \`kindred build node-image\`"
artifacts=${artifacts:-$(mktemp -d -t kindred-podman.XXXXXX)}
mkdir -p "$artifacts"

packages=podman,crun,conmon,netavark,aardvark-dns,iptables,nftables,busybox-static,ca-certificates
cache=${KINDRED_CACHE_DIR:-$HOME/.cache/kindred}/podman-chroot
root=$cache/trixie-$(echo "$packages" | sha256sum | cut -c1-12)
if [[ ! -f $root/.done ]]; then
  echo "podman-chroot: installing trixie's Podman into $root (once)" >&2
  rm -rf "$root" && mkdir -p "$cache"
  debootstrap --variant=minbase --include="$packages" trixie "$root" http://deb.debian.org/debian \
    >"$cache/debootstrap.log" 2>&1 || die "debootstrap failed; see $cache/debootstrap.log"
  printf '[network]\nfirewall_driver = "iptables"\n' >"$root/etc/containers/containers.conf"
  touch "$root/.done"
fi

# Mounts (a bind of the root onto itself: Podman's unpacking remounts /), undone in reverse.
mounted=()
mnt() { mount "$@"; mounted=("${@: -1}" "${mounted[@]}"); }
service=""
cleanup() {
  set +e
  if [[ -n $service ]]; then
    DOCKER_HOST=unix:///run/podman/podman.sock "$kindred" delete cluster >/dev/null 2>&1
    chroot "$root" podman rm -af -t 0 >/dev/null 2>&1
    chroot "$root" podman network rm -f kindred >/dev/null 2>&1
    kill "$service" 2>/dev/null; wait "$service" 2>/dev/null
  fi
  # netavark's own chains stay after its last network goes: removed from the host's netfilter.
  for table in filter nat mangle; do
    iptables -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*NETAVARK' | sed 's/^-A/-D/' |
      while read -r rule; do eval iptables -t "$table" "$rule"; done
    for op in -F -X; do
      for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N NETAVARK/ {print $2}'); do
        iptables -t "$table" "$op" "$chain"
      done
    done
  done
  for m in "${mounted[@]}"; do umount -R "$m" 2>/dev/null || umount -Rl "$m"; done
  rmdir /run/podman 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mnt --bind "$root" "$root"
mnt -t proc proc "$root/proc"
mnt --rbind /sys "$root/sys"
mnt --rbind /dev "$root/dev"
mnt -t tmpfs tmpfs "$root/run"
rm -rf "$root/var/lib/containers/storage"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/run/podman" /run/podman
mnt --bind "$root/run/podman" /run/podman

export PODMAN_IGNORE_CGROUPSV1_WARNING=1
podman() { chroot "$root" podman "$@"; }
export -f podman
export root

chroot "$root" podman system service --time=0 unix:///run/podman/podman.sock \
  >"$artifacts/podman-service.log" 2>&1 &
service=$!
for _ in $(seq 30); do [[ -S /run/podman/podman.sock ]] && break; sleep 1; done
[[ -S /run/podman/podman.sock ]] || die "Podman's API did not come up; see $artifacts/podman-service.log"

if [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
  # The probe: one container through the CLI, one through the compat API, both asking for a
  # private cgroup namespace.
  tar -C "$root/usr/bin" -c busybox | podman import -q -c 'ENTRYPOINT ["/busybox"]' - localhost/probe:1 >/dev/null
  podman run -d --name probe-cli --network none --privileged --cgroupns=private localhost/probe:1 sleep 60 >/dev/null
  curl -sf --unix-socket /run/podman/podman.sock -H 'Content-Type: application/json' \
    -d '{"Image":"localhost/probe:1","Cmd":["sleep","60"],"HostConfig":{"NetworkMode":"none","Privileged":true,"CgroupnsMode":"private"}}' \
    'http://podman/v1.41/containers/create?name=probe-compat' >/dev/null
  curl -sf --unix-socket /run/podman/podman.sock -X POST 'http://podman/v1.41/containers/probe-compat/start'
  ns() { readlink "/proc/$(podman inspect "$1" --format '{{.State.Pid}}')/ns/cgroup"; }
  echo "podman-chroot: host cgroup namespace $(readlink /proc/self/ns/cgroup); podman run --cgroupns=private: $(ns probe-cli); compat API CgroupnsMode=private: $(ns probe-compat)"
  echo "podman-chroot: cgroup v1 host: kindred refuses Podman here (hack/vm-podman.sh runs the check on a cgroup v2 host):"
  DOCKER_HOST=unix:///run/podman/podman.sock "$kindred" create cluster --name podman-v1 2>&1 | tail -n 1
  exit 1
fi
t0=$(date +%s)
docker save "$image" | podman load -q >/dev/null
echo "podman-chroot: $image loaded into Podman in $(($(date +%s) - t0))s"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), commit $(git rev-parse --short HEAD)"
bindir=$(mktemp -d)
ln -s "$kindred" "$bindir/kindred"
PATH=$bindir:$PATH DOCKER_HOST=unix:///run/podman/podman.sock IMAGE=localhost/$image \
  ARTIFACTS=$artifacts BUSYBOX=$root/usr/bin/busybox bash hack/podman-job.sh
rm -rf "$bindir"
