#!/bin/bash
# kindred node entrypoint (PID 1 until it execs systemd).
# Makes the container fit for systemd + containerd + kubelet whether Docker started it with
# --privileged or with kindred's restricted profile (no --privileged, e.g. in CI pods), on
# cgroup v1 or v2 hosts. Each fix is a no-op where it is not needed.
set -euo pipefail

log() { echo "kindred-entrypoint: $*" >&2; }

mount_options() { awk -v p="$1" '$2 == p { o = $4 } END { print o }' /proc/self/mounts; }
is_read_only() { case ",$(mount_options "$1")," in *,ro,*) return 0 ;; *) return 1 ;; esac; }

# Docker mounts /sys read-only unless --privileged; systemd and kubelet write to it.
if is_read_only /sys; then
  log "remounting /sys read-write"
  mount -o remount,rw /sys
fi

setup_cgroup_v2() {
  if is_read_only /sys/fs/cgroup; then
    mount -o remount,rw /sys/fs/cgroup
  fi
  # cgroup v2 forbids processes in a cgroup that delegates controllers: move everything that
  # runs now (just us) into a leaf, then enable every controller for systemd to use.
  mkdir -p /sys/fs/cgroup/init.scope
  while read -r pid; do
    echo "$pid" >/sys/fs/cgroup/init.scope/cgroup.procs 2>/dev/null || true
  done </sys/fs/cgroup/cgroup.procs
  local controllers
  controllers=$(sed -e 's/^/+/' -e 's/ / +/g' </sys/fs/cgroup/cgroup.controllers)
  echo "$controllers" >/sys/fs/cgroup/cgroup.subtree_control || log "could not enable all cgroup controllers ($controllers)"
  log "cgroup v2 ready"
}

setup_cgroup_v1() {
  # Docker's v1 hierarchies are read-only and cannot be remounted read-write without
  # --privileged, so replace them with fresh mounts inside our private cgroup namespace.
  local hierarchies
  hierarchies=$(cut -d: -f2 /proc/self/cgroup)
  umount -R /sys/fs/cgroup
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup /sys/fs/cgroup
  local set c
  for set in $hierarchies; do
    case "$set" in
      name=systemd)
        mkdir -p /sys/fs/cgroup/systemd
        mount -t cgroup -o none,name=systemd,nosuid,nodev,noexec cgroup /sys/fs/cgroup/systemd ;;
      name=*) ;;
      *)
        mkdir -p "/sys/fs/cgroup/$set"
        if ! mount -t cgroup -o "$set,nosuid,nodev,noexec" cgroup "/sys/fs/cgroup/$set"; then
          log "cannot mount cgroup controller(s) $set; skipping"
          rmdir "/sys/fs/cgroup/$set"
          continue
        fi
        # Co-mounted controllers (cpu,cpuacct) are also reachable by each name, as on a host.
        if [[ "$set" == *,* ]]; then
          for c in ${set//,/ }; do ln -sfn "$set" "/sys/fs/cgroup/$c"; done
        fi ;;
    esac
  done
  # The hybrid layout's unified hierarchy (the "0::/" line).
  if grep -q '^0::' /proc/self/cgroup; then
    mkdir -p /sys/fs/cgroup/unified
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup/unified || rmdir /sys/fs/cgroup/unified
  fi
  log "cgroup v1 ready: $(echo $hierarchies)"
}

if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  setup_cgroup_v2
else
  setup_cgroup_v1
fi

# kubelet refuses to start without /dev/kmsg (its OOM watcher reads it), which only
# privileged containers get. Make the real device (the device cgroup allows it); if that is
# not permitted, point it at the console or, without a TTY, at /dev/null.
if [[ ! -e /dev/kmsg ]]; then
  rm -f /dev/kmsg
  if mknod -m 640 /dev/kmsg c 1 11 2>/dev/null; then
    log "created /dev/kmsg"
  elif [[ -e /dev/console ]]; then
    ln -s /dev/console /dev/kmsg
  else
    ln -s /dev/null /dev/kmsg
    log "no /dev/kmsg and no console: kubelet will not see kernel OOM messages"
  fi
fi

# Mounts made inside the node (volumes of pods) must propagate to containerd's children.
mount --make-rshared /

# A fresh identity per node: journald, dbus and kubelet use it.
if [[ ! -s /etc/machine-id ]]; then
  tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
fi

# Docker programs the node's network namespace (its DNS rules, below) with its own iptables
# backend, legacy or nft. Use the backend that holds rules here, so the node's tools see
# Docker's rules; with none anywhere, nft (Debian's default).
select_iptables_backend() {
  local legacy nft mode=nft
  legacy=$( { iptables-legacy-save; ip6tables-legacy-save; } 2>/dev/null | grep -c '^-A' || true)
  nft=$( { iptables-nft-save; ip6tables-nft-save; } 2>/dev/null | grep -c '^-A' || true)
  if (( legacy > nft )); then
    mode=legacy
  fi
  update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
  update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
  log "iptables: $mode backend (rules found: legacy $legacy, nft $nft)"
}
select_iptables_backend

# On user-defined networks Docker answers DNS at 127.0.0.11 inside the container. Pods copy
# the node's resolv.conf, and from a pod 127.0.0.11 is the pod itself (CoreDNS would even
# forward to itself in a loop). So serve Docker's DNS on the gateway address too: extend
# Docker's NAT rules (made with the backend chosen above) to that address and
# to traffic arriving from pods, and point resolv.conf at it.
fix_docker_dns() {
  local dns=127.0.0.11 gateway
  grep -q "nameserver $dns" /etc/resolv.conf || return 0
  gateway=$(ip -4 route show default | awk '{ print $3; exit }')
  [[ -n "$gateway" ]] || { log "no default route; leaving DNS as Docker set it"; return 0; }
  iptables-save -t nat \
    | sed -e "s/-d $dns/-d $gateway/g" \
          -e 's/^-A OUTPUT \(.*\) -j DOCKER_OUTPUT$/&\n-A PREROUTING \1 -j DOCKER_OUTPUT/' \
          -e "s/--to-source :53/--to-source $gateway:53/g" \
    | iptables-restore
  sed -e "s/$dns/$gateway/" /etc/resolv.conf >/tmp/resolv.conf
  # resolv.conf is a bind mount: rewrite it in place.
  cat /tmp/resolv.conf >/etc/resolv.conf
  log "DNS: Docker's resolver is reachable from pods at $gateway"
}
fix_docker_dns

# Without CAP_SYS_RESOURCE no process may lower an oom_score_adj; let containerd clamp the
# values kubelet asks for instead of failing every container start.
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
if (( (16#$cap_eff >> 24 & 1) == 0 )); then
  mkdir -p /etc/containerd/conf.d
  cat >/etc/containerd/conf.d/10-restricted.toml <<'TOML'
version = 3
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
TOML
  log "CAP_SYS_RESOURCE is missing: containerd will clamp oom_score_adj"
fi

exec /sbin/init "$@"
