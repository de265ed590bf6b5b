#!/usr/bin/env bash
# A mainstream Docker host as a throwaway VM: Debian trixie (kernel 6.12, cgroup v2 only,
# Docker 26 from Debian, --privileged allowed), booted under QEMU, runs one job and powers off.
#
#   hack/vm.sh [options] -- COMMAND...
#
# The job runs as root inside the VM with /share as its working directory and gets:
#   /usr/local/bin/kindred   the kindred binary (--kindred, default: the release build)
#   every --image            loaded into the VM's Docker before the job starts
#   $VM_ARTIFACTS            a directory copied back to --artifacts when the VM stops
# Its output streams to this terminal; its exit status is this script's.
#
# The VM disk is built offline from Debian packages (debootstrap) and cached by its package
# list under $KINDRED_CACHE_DIR/vm; each run boots a copy-on-write overlay of it, so runs never
# see each other's state. Files go in and out through a 9p share (faster than ssh under
# emulation, and no network setup). The VM is always stopped: on success, failure, timeout,
# Ctrl-C or SIGTERM.
#
# Options:
#   --store overlay2|containerd  Docker's image store (containerd: "containerd-snapshotter")
#   --image NAME                 a host Docker image to load into the VM (repeatable)
#   --kindred PATH               the kindred binary to put in the VM
#   --file PATH                  another file for the job, at /share/files/NAME (repeatable)
#   --package NAME               another Debian package on the disk (repeatable; such a disk is
#                                cached apart from the default one, e.g. podman for
#                                hack/vm-podman.sh)
#   --timeout SECONDS            stop the VM after this long (default 3600)
#   --memory SIZE / --cpus N     VM size (default 6G / 2)
#   --artifacts DIR              where the job's $VM_ARTIFACTS go (default: a temp dir, printed)
#
# Why software emulation (TCG): /dev/kvm on these machines is a paravirtual nested hypervisor
# that cannot boot a stock kernel. Under TCG the VM is about 15x slower than the host, which
# makes it a good slow host too.
set -euo pipefail

say() { echo "vm: $*" >&2; }
die() { echo "vm: error: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")/.." && pwd)
store=overlay2 timeout=3600 memory=6G cpus=2 artifacts="" images=() files=() extra=()
kindred="${CARGO_TARGET_DIR:-$here/target}/release/kindred"
while (($#)); do
  case $1 in
    --store) store=$2; shift 2 ;;
    --image) images+=("$2"); shift 2 ;;
    --kindred) kindred=$2; shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --package) extra+=("$2"); shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --artifacts) artifacts=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown option $1 (see the comment atop hack/vm.sh)" ;;
  esac
done
(($#)) || die "no command given: hack/vm.sh [options] -- COMMAND..."
[[ $store == overlay2 || $store == containerd ]] || die "--store is overlay2 or containerd, not $store"
[[ -x $kindred ]] || die "no kindred binary at $kindred: build it (cargo build --release) or pass --kindred"

# Host tools: QEMU, and debootstrap + mkfs.ext4 -d for the disk.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    say "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
  fi
fi

# --- the disk, cached by what goes into it ----------------------------------------------------
suite=trixie
packages=(systemd systemd-sysv dbus udev kmod linux-image-amd64 docker.io docker-cli containerd
  iproute2 iptables ca-certificates procps e2fsprogs busybox-static "${extra[@]}")
# A disk with extra packages is its own variant, so it never replaces the default one.
variant=$suite
((${#extra[@]} == 0)) || variant="$suite+$(IFS=+; echo "${extra[*]}")"
recipe_version=1 # bump when the steps below change what the disk holds
key=$(printf '%s\n' "$suite" "$recipe_version" "${packages[@]}" | sha256sum | cut -c1-16)
cache="${KINDRED_CACHE_DIR:-$HOME/.cache/kindred}/vm"
disk_dir="$cache/$variant-$key"

build_disk() {
  local free_kb
  mkdir -p "$cache"
  free_kb=$(df -Pk "$cache" | awk 'NR==2 {print $4}')
  ((free_kb > 4 * 1024 * 1024)) || die "building the VM disk needs 4 GB free in $cache (have $((free_kb / 1024)) MB); free some space"
  local tmp="$cache/.build-$key"
  rm -rf "$tmp" && mkdir -p "$tmp"
  say "building the $suite disk (debootstrap, a few minutes; cached in $disk_dir)"
  debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" "$suite" "$tmp/root" \
    http://deb.debian.org/debian >"$tmp/debootstrap.log" 2>&1 ||
    { tail -n 20 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  local root=$tmp/root
  echo kindred-vm >"$root/etc/hostname"
  printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\nshare /share 9p trans=virtio,version=9p2000.L,msize=1048576,nofail 0 0\n' >"$root/etc/fstab"
  mkdir -p "$root/share" "$root/etc/systemd/network"
  printf "9p\n9pnet_virtio\n" >"$root/etc/modules-load.d/9p.conf"
  printf '[Match]\nName=eth*\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/10-dhcp.network"
  # The job runner: a unit that starts once Docker is up, runs /share/job and powers off.
  cat >"$root/usr/local/sbin/kindred-vm-job" <<'RUNNER'
#!/bin/bash
# Runs the job the host put in /share, with its output on the second serial port, then
# powers the VM off (the host waits for that).
exec >/dev/ttyS1 2>&1
echo "vm-job: booted in $(cut -d' ' -f1 /proc/uptime)s; $(uname -r); cgroup: $(stat -fc %T /sys/fs/cgroup)"
rc=1
run() {
  if [[ -f /share/daemon.json ]]; then
    cp /share/daemon.json /etc/docker/daemon.json && systemctl restart docker || return 1
  fi
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker version -f 'vm-job: Docker {{.Server.Version}}' || return 1
  install -m 755 /share/kindred /usr/local/bin/kindred
  for tar in /share/images/*.tar; do
    [[ -e $tar ]] || continue
    local t0=$SECONDS
    docker load -i "$tar" | sed 's/^/vm-job: /' || return 1
    echo "vm-job: loaded $(basename "$tar") in $((SECONDS - t0))s"
  done
  export VM_ARTIFACTS=/share/artifacts
  mkdir -p "$VM_ARTIFACTS"
  cd /share && bash /share/job
}
run
rc=$?
echo "$rc" >/share/job.rc
sync
systemctl poweroff
RUNNER
  chmod 755 "$root/usr/local/sbin/kindred-vm-job"
  cat >"$root/etc/systemd/system/kindred-vm-job.service" <<'UNIT'
[Unit]
Description=kindred VM job
After=docker.service share.mount systemd-networkd.service
Wants=docker.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kindred-vm-job
[Install]
WantedBy=multi-user.target
UNIT
  chroot "$root" systemctl enable -q systemd-networkd docker kindred-vm-job.service
  # Serial consoles without a login prompt; the job owns ttyS1.
  chroot "$root" systemctl mask -q serial-getty@ttyS0.service serial-getty@ttyS1.service getty@tty1.service
  cp "$root"/boot/vmlinuz-* "$tmp/vmlinuz"
  cp "$root"/boot/initrd.img-* "$tmp/initrd.img"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  truncate -s 60G "$tmp/disk.raw"
  mkfs.ext4 -q -F -L root -d "$root" "$tmp/disk.raw"
  rm -rf "$root"
  mv "$tmp" "$disk_dir"
  say "disk ready: $(du -sh "$disk_dir/disk.raw" | cut -f1) used"
}
[[ -f $disk_dir/disk.raw ]] || build_disk
# Older disks of this variant's other package lists are only disk space.
find "$cache" -maxdepth 1 -name "$variant-*" ! -name "$variant-$key" -exec rm -rf {} +

# --- one run ----------------------------------------------------------------------------------
run=$(mktemp -d "${TMPDIR:-/tmp}/kindred-vm.XXXXXX")
share=$run/share
mkdir -p "$share/images"
qemu_pid=""
stop_vm() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    say "stopping the VM"
    kill "$qemu_pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$qemu_pid" 2>/dev/null || true
  fi
  [[ -n ${tail_pid:-} ]] && kill "$tail_pid" 2>/dev/null || true
  if [[ -d $share/artifacts ]]; then
    local dest=${artifacts:-$(mktemp -d "${TMPDIR:-/tmp}/kindred-vm-artifacts.XXXXXX")}
    mkdir -p "$dest" && cp -a "$share/artifacts/." "$dest/" && cp "$run/console.log" "$dest/" 2>/dev/null
    say "artifacts in $dest"
  fi
  rm -rf "$run"
}
trap stop_vm EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# The job's output goes through a pipe, so programs print plain lines rather than the
# terminal animations a serial port would get.
printf '{\n%s\n} 2>&1 | cat\nexit "${PIPESTATUS[0]}"\n' "$*" >"$share/job"
cp "$kindred" "$share/kindred"
if ((${#files[@]})); then
  mkdir -p "$share/files" && cp "${files[@]}" "$share/files/"
fi
if [[ $store == containerd ]]; then
  echo '{"features": {"containerd-snapshotter": true}}' >"$share/daemon.json"
fi
for image in "${images[@]}"; do
  say "saving $image for the VM"
  docker save "$image" -o "$share/images/$(echo "$image" | tr '/:' '__').tar"
done
qemu-img create -q -f qcow2 -F raw -b "$disk_dir/disk.raw" "$run/disk.qcow2"
touch "$run/job.log"

say "booting ($cpus CPUs, $memory, Docker image store: $store, timeout ${timeout}s)"
started=$(date +%s)
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$memory" -smp "$cpus" \
  -kernel "$disk_dir/vmlinuz" -initrd "$disk_dir/initrd.img" \
  -append "console=ttyS0 root=/dev/vda rw net.ifnames=0 quiet" \
  -drive "file=$run/disk.qcow2,format=qcow2,if=virtio" \
  -virtfs "local,path=$share,mount_tag=share,security_model=none,id=share" \
  -nic user,model=virtio-net-pci \
  -display none -monitor none -no-reboot \
  -serial "file:$run/console.log" -serial "file:$run/job.log" &
qemu_pid=$!
tail -n +1 -f "$run/job.log" &
tail_pid=$!

while kill -0 "$qemu_pid" 2>/dev/null; do
  if (($(date +%s) - started > timeout)); then
    say "the VM did not finish within ${timeout}s; last console lines:"
    tail -n 30 "$run/console.log" >&2
    exit 124
  fi
  sleep 2
done
wait "$qemu_pid" || true
qemu_pid=""
sleep 1
if [[ ! -f $share/job.rc ]]; then
  say "the VM stopped without finishing the job; last console lines:"
  tail -n 30 "$run/console.log" >&2
  exit 1
fi
rc=$(cat "$share/job.rc")
say "job exited $rc after $(($(date +%s) - started))s"
exit "$rc"
