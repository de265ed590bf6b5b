#!/usr/bin/env bash
# Prepares a Debian (or Ubuntu) host for kindred, idempotently: installs the packages kindred
# uses, starts the Docker daemon if it does not answer, and checks the Go and Rust toolchains.
# Prints what it did. Safe to run again and again.
set -euo pipefail

say() { echo "setup-host: $*"; }
die() { echo "setup-host: error: $*" >&2; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "run as root (or install sudo): packages must be installed and dockerd started"
  SUDO="sudo"
fi

# docker.io: the engine; debootstrap: the node base rootfs; libseccomp-dev, gcc, pkg-config:
# the static runc build (cgo); make, bzip2: busybox for the conformance test images; iptables:
# Docker's networking; curl, bc, time: hack/bench-*.sh; python3-venv: hack/validate-bom.sh.
packages=(docker.io debootstrap iptables libseccomp-dev gcc libc6-dev pkg-config make bzip2 ca-certificates git curl bc time python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "packages already installed"
fi

if docker info >/dev/null 2>&1; then
  say "Docker daemon is running ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
else
  if [[ -d /run/systemd/system ]] && $SUDO systemctl start docker 2>/dev/null; then
    say "started Docker with systemd"
  else
    log=/var/log/kindred-dockerd.log
    say "starting dockerd in the background (log: $log)"
    $SUDO sh -c "nohup dockerd >$log 2>&1 &"
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60s; see /var/log/kindred-dockerd.log"
  say "Docker daemon is running ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
fi

# Many clusters on one host exhaust the default inotify limits (kubelet, systemd and
# containerd all watch files); raise them when we may.
for kv in fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512; do
  key=${kv%%=*} want=${kv##*=}
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if ((have < want)); then
    $SUDO sysctl -qw "$kv" 2>/dev/null && say "raised $key to $want" || say "could not raise $key (have $have)"
  fi
done

command -v go >/dev/null || die "Go is not installed; kindred builds Kubernetes from Go modules and needs Go 1.25 or newer"
gov=$(go env GOVERSION)
minor=$(echo "$gov" | sed -E 's/^go1\.([0-9]+).*/\1/')
((minor >= 25)) || die "Go $gov is too old: Kubernetes 1.34 needs Go 1.25 or newer"
say "Go $gov"

command -v cargo >/dev/null || die "Rust (cargo) is not installed; install it with rustup"
say "$(cargo --version)"
