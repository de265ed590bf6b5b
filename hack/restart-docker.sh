#!/usr/bin/env bash
# Stops the Docker daemon and starts it again the way hack/setup-host.sh does: what a host
# reboot or a Docker upgrade does to running clusters. Used by the restart-survival tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

if [[ -d /run/systemd/system ]] && systemctl is-active --quiet docker 2>/dev/null; then
  $SUDO systemctl stop docker docker.socket 2>/dev/null || $SUDO systemctl stop docker
else
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  [[ -n $pid ]] || { echo "restart-docker: no dockerd pid in /var/run/docker.pid" >&2; exit 1; }
  $SUDO kill -TERM "$pid"
  for _ in $(seq 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "restart-docker: dockerd ($pid) did not stop within 60s" >&2
    exit 1
  fi
fi
echo "restart-docker: daemon stopped"
exec "$here/setup-host.sh"
