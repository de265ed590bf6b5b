#!/usr/bin/env bash
# The slow part of kindred's fault-injection suite (issue 13; the fast part is
# cli/tests/races.rs, run in CI). Against the real Docker daemon, with 1-node clusters (2 for
# the join scenario):
#   - SIGTERM and SIGKILL to `create cluster` at every step boundary (the test hook
#     KINDRED_TEST_PAUSE_AT holds create at each named point until the signal lands).
#     SIGTERM: create must exit promptly and leave nothing. SIGKILL: leftovers are allowed,
#     but `delete cluster` must then remove every one.
#   - a node container killed during `kubeadm join` (1 control plane + 1 worker): create fails
#     and removes what it made, or finishes with every node Ready.
#   - N create/delete cycles with a random fault each (none, SIGTERM or SIGKILL at a random
#     moment, SIGTERM at a random step).
#   - after each scenario and at the end, a leak audit of everything carrying the script's
#     cluster-name prefix: containers, volumes, networks, kubeconfig entries, held network locks,
#     leftover kindred processes. Other people's clusters on the same daemon are never looked at
#     or touched.
# Prints a table scenario | result | time, and exits non-zero if any scenario failed or the
# audit found anything.
#
# Daemon-level faults (--daemon-faults): a Docker daemon restart during create, and a full disk
# during `load docker-image` (the filesystem of Docker's root filled up to its last 64 MiB).
# Both disturb every container on the daemon, so they only run when the daemon is yours:
# KINDRED_FAULTS_OWN_DAEMON=1 must be set as well, or the script refuses.
#
# Usage: hack/fault-inject.sh [--cycles N] [--prefix P] [--seed S] [--skip-steps] [--daemon-faults]
#   --cycles N       random-fault create/delete cycles (default 20)
#   --prefix P       cluster-name prefix, scoping everything (default fi-)
#   --seed S         seed for the random faults (default: the time)
#   --skip-steps     leave out the step-boundary scenarios (the longest part)
# Env: KINDRED (the binary; default: built with cargo, release), KINDRED_CACHE_DIR as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

cycles=20 prefix=fi- seed=$(date +%s) skip_steps=0 daemon_faults=0
while (($#)); do
  case $1 in
    --cycles) cycles=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --skip-steps) skip_steps=1; shift ;;
    --daemon-faults) daemon_faults=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "fault-inject: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ((daemon_faults)) && [[ ${KINDRED_FAULTS_OWN_DAEMON:-} != 1 ]]; then
  echo "fault-inject: --daemon-faults restarts the Docker daemon and fills its disk, which" \
    "breaks every other container on it; set KINDRED_FAULTS_OWN_DAEMON=1 to confirm the" \
    "daemon is yours alone" >&2
  exit 2
fi
[[ $prefix =~ ^[a-z0-9][a-z0-9-]*$ ]] || { echo "fault-inject: bad --prefix $prefix" >&2; exit 2; }
RANDOM=$seed

if [[ -z ${KINDRED:-} ]]; then
  cargo build --locked --release -p kindred-cli >&2
  KINDRED=${CARGO_TARGET_DIR:-$repo/target}/release/kindred
fi
work=$(mktemp -d -t kindred-fault-inject.XXXXXX)
kubeconfig=$work/kubeconfig
results=$work/results
: >"$results"
failures=0
lock_dir=${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/kindred}
lock_dir=${lock_dir:-${KINDRED_CACHE_DIR:-$HOME/.cache/kindred}/locks}

# The step boundaries of create, in order (pkg/src/cluster/create.rs).
POINTS=(name-check name-checked locked nodes-created nodes-configured initialized
  addons-installed joined ready kubeconfig-written)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record() { # scenario result seconds ok(0/1)
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"
  printf '%-36s %-58s %6ss\n' "$1" "$2" "$3" >&2
  (($4)) || failures=$((failures + 1))
}

# Everything of clusters whose name matches the regex $1 (whole name), one line each.
audit() {
  local pat=$1
  docker ps -a --format '{{.Names}} {{.Label "io.kindred.cluster"}}' \
    | awk -v p="^($pat)" '$2 ~ p"$" || $1 ~ p"-" { print "container " $1 }'
  docker volume ls --format '{{.Name}} {{.Label "io.kindred.cluster"}}' \
    | awk -v p="^($pat)$" '$2 ~ p { print "volume " $1 }'
  docker network ls --format '{{.Name}}' | awk -v p="^($pat)" '$1 ~ p { print "network " $1 }'
  if [[ -f $kubeconfig ]]; then
    grep -E "kindred-($pat)([^a-z0-9-]|$)" "$kubeconfig" | sed 's/^ */kubeconfig entry /' || true
  fi
  # A network lock still held (flock) by one of this script's creates.
  local f
  for f in "$lock_dir"/*; do
    [[ -f $f ]] || continue
    if sed -n 2p "$f" | grep -qE -- "--name ($pat)( |$)" && ! flock -n "$f" true 2>/dev/null; then
      echo "lock $f held by pid $(head -1 "$f")"
    fi
  done
  pgrep -af -- "kindred .*--name ($pat)( |$)" | grep -v -e pgrep -e fault-inject | sed 's/^/process /' || true
}
regex_of() { printf '%s' "$1"; }

# Run in the background (`create ... &`): exec makes $! kindred itself, not a subshell, so
# that signals reach it.
create() { # name log [extra args...]
  local name=$1 log=$2
  shift 2
  exec "$KINDRED" create cluster --name "$name" --kubeconfig "$kubeconfig" "$@" >"$log" 2>&1
}
delete() {
  "$KINDRED" delete cluster --name "$1" --kubeconfig "$kubeconfig" >>"$work/delete.log" 2>&1
}
# Waits up to $3 s for $2 to appear in file $1, written by process $4 (given up if it ends).
wait_for_text() {
  local deadline=$((SECONDS + $3))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
}
# Waits up to $2 s for pid $1 to end; its exit status in $status ("timeout" if it did not).
wait_exit() {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      status=timeout
      return
    fi
    sleep 0.1
  done
  status=0
  wait "$1" || status=$?
}

# Signal $sig to a create held at $point; then the audit of that name.
step_fault() {
  local point=$1 sig=$2 name="${prefix}step-$3" log=$work/$point-$2.log
  local start left
  KINDRED_TEST_PAUSE_AT=$point:120000 create "$name" "$log" &
  local pid=$!
  if ! wait_for_text "$log" "paused at $point" 300 "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    delete "$name" || true
    record "SIG$sig at $point" "FAIL: never reached the point: $(tail -1 "$log")" 0 0
    return
  fi
  start=$(now)
  kill -"$sig" "$pid"
  wait_exit "$pid" 120
  local took
  took=$(since "$start")
  left=$(audit "$(regex_of "$name")" | wc -l)
  if [[ $sig == TERM ]]; then
    if [[ $status == timeout ]]; then
      kill -KILL "$pid" 2>/dev/null || true
      record "SIGTERM at $point" "FAIL: still running 120 s after SIGTERM" "$took" 0
    elif ((left)); then
      record "SIGTERM at $point" "FAIL: exit $status, left: $(audit "$(regex_of "$name")" | tr '\n' ';')" "$took" 0
    else
      record "SIGTERM at $point" "ok: exit $status, left nothing" "$took" 1
    fi
    delete "$name" || true
  else
    settle
    local start_delete dstatus=0
    start_delete=$(now)
    delete "$name" || dstatus=$?
    local after
    after=$(audit "$(regex_of "$name")" | tr '\n' ';')
    if [[ -n $after || $dstatus != 0 ]]; then
      record "SIGKILL at $point" "FAIL: delete exit $dstatus, left: $after" "$took" 0
    else
      record "SIGKILL at $point" "ok: $left leftovers, delete removed all ($(since "$start_delete") s)" "$took" 1
    fi
  fi
}

# 1 control plane + 1 worker; the worker killed a moment into the join.
join_fault() {
  local name="${prefix}join" log=$work/join.log config=$work/join.yaml
  printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n' >"$config"
  local start
  start=$(now)
  create "$name" "$log" --config "$config" --wait 3m &
  local pid=$!
  if ! wait_for_text "$log" "Joining 1 node" 400 "$pid"; then
    wait_exit "$pid" 1
    delete "$name" || true
    record "worker killed during join" "FAIL: join never started: $(tail -1 "$log")" "$(since "$start")" 0
    return
  fi
  sleep "$((1 + RANDOM % 3))"
  docker kill "$name-worker" >/dev/null 2>&1 || true
  wait_exit "$pid" 400
  local took left
  took=$(since "$start")
  left=$(audit "$(regex_of "$name")" | tr '\n' ';')
  if [[ $status == 0 ]]; then
    # Joined before the kill landed, or came back: every node must be Ready.
    local ready
    ready=$(docker exec "$name-control-plane" kubectl --kubeconfig=/etc/kubernetes/admin.conf \
      get nodes --no-headers 2>&1 | awk '$2 == "Ready"' | wc -l)
    delete "$name" || true
    if ((ready == 2)); then
      record "worker killed during join" "ok: create finished, 2/2 Ready" "$took" 1
    else
      record "worker killed during join" "FAIL: create exit 0 but $ready/2 Ready" "$took" 0
    fi
  elif [[ $status == timeout ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    delete "$name" || true
    record "worker killed during join" "FAIL: create still running after 400 s" "$took" 0
  elif [[ -n $left ]]; then
    delete "$name" || true
    record "worker killed during join" "FAIL: exit $status, left: $left" "$took" 0
  else
    record "worker killed during join" "ok: exit $status, left nothing" "$took" 1
  fi
}

# After a SIGKILL: Docker finishes the requests the killed command had in flight (a container
# created ~0.5 s after the kill was seen), so a delete right away can miss what they make. A
# user deleting seconds later does not; wait as long.
settle() { sleep 3; }

# One create/delete cycle with a random fault.
cycle() {
  local i=$1 name="${prefix}cycle-$1" log=$work/cycle-$1.log fault pid start
  case $((RANDOM % 5)) in
    0) fault=none ;;
    1) fault="TERM@$((RANDOM % 25)).$((RANDOM % 10))s" ;;
    2) fault="KILL@$((RANDOM % 25)).$((RANDOM % 10))s" ;;
    *) fault="TERM@${POINTS[RANDOM % ${#POINTS[@]}]}" ;;
  esac
  start=$(now)
  case $fault in
    TERM@*s | KILL@*s)
      create "$name" "$log" &
      pid=$!
      local at=${fault#*@}
      sleep "${at%s}"
      kill -"${fault%@*}" "$pid" 2>/dev/null || true
      ;;
    TERM@*)
      KINDRED_TEST_PAUSE_AT=${fault#TERM@}:120000 create "$name" "$log" &
      pid=$!
      wait_for_text "$log" "paused at" 300 "$pid" || true
      kill -TERM "$pid" 2>/dev/null || true
      ;;
    none)
      create "$name" "$log" &
      pid=$!
      ;;
  esac
  wait_exit "$pid" 400
  [[ $status == timeout ]] && kill -KILL "$pid" 2>/dev/null
  [[ $fault == KILL@* ]] && settle
  local cstatus=$status dstatus=0
  delete "$name" || dstatus=$?
  local left
  left=$(audit "$(regex_of "$name")" | tr '\n' ';')
  if [[ -n $left || $dstatus != 0 || $cstatus == timeout ]]; then
    record "cycle $i ($fault)" "FAIL: create $cstatus, delete $dstatus, left: $left" "$(since "$start")" 0
  else
    # A create that failed on its own (not by the injected fault) says why.
    local why
    why=$(tail -1 "$log" | grep '^error:' | grep -v 'interrupted by' | cut -c8-70 || true)
    record "cycle $i ($fault)" "ok: create exit $cstatus${why:+ ($why)}, delete exit 0, nothing left" "$(since "$start")" 1
  fi
}

# --daemon-faults only (KINDRED_FAULTS_OWN_DAEMON=1).
daemon_restart_fault() {
  local name="${prefix}daemon" log=$work/daemon.log start
  start=$(now)
  create "$name" "$log" --wait 5m &
  local pid=$!
  wait_for_text "$log" "kubeadm init" 300 "$pid" || true
  "$repo/hack/restart-docker.sh"
  wait_exit "$pid" 600
  local cstatus=$status
  [[ $cstatus == timeout ]] && kill -KILL "$pid" 2>/dev/null
  # A failed create waits for the daemon to come back and removes what it made itself; one
  # that succeeded leaves its cluster, which delete removes.
  local own_left=""
  [[ $cstatus == 0 ]] || own_left=$(audit "$(regex_of "$name")" | tr '\n' ';')
  local dstatus=0
  delete "$name" || dstatus=$?
  local left
  left=$(audit "$(regex_of "$name")" | tr '\n' ';')
  if [[ -n $own_left || -n $left || $dstatus != 0 || $cstatus == timeout ]]; then
    record "daemon restart during create" "FAIL: create $cstatus (its cleanup left: $own_left), delete $dstatus, left: $left" "$(since "$start")" 0
  else
    record "daemon restart during create" "ok: create exit $cstatus, nothing left" "$(since "$start")" 1
  fi
}

disk_full_fault() {
  local name="${prefix}disk" log=$work/disk.log start root free image
  (create "$name" "$log" --wait 3m) || true
  root=$(docker info -f '{{.DockerRootDir}}')
  # Global, so the EXIT trap frees the disk even when the script is stopped mid-load.
  filler=$root/kindred-fault-filler
  free=$(df -B1 --output=avail "$root" | tail -1)
  image=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep -m1 '^kindred/base:' || true)
  start=$(now)
  fallocate -l $((free - 64 * 1024 * 1024)) "$filler"
  local lstatus=0
  "$KINDRED" load docker-image "${image:-kindred/registry:v3.1.1}" --name "$name" >"$work/load.log" 2>&1 || lstatus=$?
  rm -f "$filler"
  filler=""
  local ready
  ready=$(docker exec "$name-control-plane" kubectl --kubeconfig=/etc/kubernetes/admin.conf \
    get nodes --no-headers 2>&1 | awk '$2 == "Ready"' | wc -l)
  local dstatus=0
  delete "$name" || dstatus=$?
  local left
  left=$(audit "$(regex_of "$name")" | tr '\n' ';')
  if ((lstatus == 0)) || [[ -n $left || $dstatus != 0 ]] || ((ready != 1)); then
    record "disk full during load docker-image" "FAIL: load $lstatus ($(tail -1 "$work/load.log")), ready $ready, delete $dstatus, left: $left" "$(since "$start")" 0
  else
    record "disk full during load docker-image" "ok: load exit $lstatus with an error, cluster still Ready" "$(since "$start")" 1
  fi
}

filler=""
trap '[[ -z $filler ]] || rm -f "$filler"' EXIT
echo "fault-inject: prefix $prefix, seed $seed, $cycles cycles, binary $KINDRED, logs in $work" >&2
before=$(audit "$prefix.*")
if [[ -n $before ]]; then
  echo "fault-inject: leftovers with prefix $prefix before starting (remove them first):" >&2
  echo "$before" >&2
  exit 1
fi
suite_start=$(now)
if ((!skip_steps)); then
  n=0
  for point in "${POINTS[@]}"; do
    for sig in TERM KILL; do
      n=$((n + 1))
      step_fault "$point" "$sig" "$n"
    done
  done
fi
join_fault
for ((i = 1; i <= cycles; i++)); do
  cycle "$i"
done
if ((daemon_faults)); then
  daemon_restart_fault
  disk_full_fault
fi

leaks=$(audit "$prefix.*")
echo
echo "| scenario | result | time (s) |"
echo "|---|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$results"
echo
echo "total $(since "$suite_start") s, seed $seed, $(wc -l <"$results") scenarios, $failures failed"
if [[ -n $leaks ]]; then
  echo "LEAK AUDIT (prefix $prefix): NOT EMPTY"
  echo "$leaks"
  exit 1
fi
echo "leak audit (prefix $prefix: containers, volumes, networks, kubeconfig entries, held locks, processes): empty"
((failures == 0))
