#!/usr/bin/env bash
# Is the node image reproducible? Builds it twice from the same inputs and compares the whole
# image: Docker's image ID (the sha256 of the image config, which names every layer by the
# sha256 of its content, plus labels and creation time). When they differ it says which layers
# differ and, inside them, which files (path, type, mode, owner, mtime, size, content sha256).
#
#   hack/check-reproducible.sh [--cold] [KUBE_VERSION]
#
# Default: two `kindred build node-image --no-cache` builds, one after the other: every kindred
# step is redone (the Debian base by debootstrap, containerd/runc/CNI/crictl, the control-plane
# and agent images, the preloaded containerd store, the assembly); Go's own compile cache is
# kept (Go builds with -trimpath are reproducible by design, and kindred's cache keys name
# the Go version). --cold: each build gets its own empty KINDRED_CACHE_DIR, so Go modules are
# downloaded and everything is compiled from nothing (much slower: ~15-20 min per build on 2
# cores). The two builds run minutes apart, so anything that depends on the clock shows up.
#
# Prints a table and exits 0 if the two images are identical, 1 if not. Needs Docker, Go,
# root (debootstrap) and python3; KINDRED names the kindred binary (default: release build).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

cold=0 version=""
while (($#)); do
  case $1 in
    --cold) cold=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "check-reproducible: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) version=$1; shift ;;
  esac
done

if [[ -z ${KINDRED:-} ]]; then
  cargo build --locked --release -p kindred-cli >&2
  KINDRED=${CARGO_TARGET_DIR:-$repo/target}/release/kindred
fi
work=$(mktemp -d -t kindred-repro.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Both builds use this copy: a rebuild of kindred in between would change the agent binary
# packed into the image.
cp "$KINDRED" "$work/kindred"
KINDRED=$work/kindred

build() { # n -> image name on stdout; log in $work/build-n.log
  local n=$1 cache=${KINDRED_CACHE_DIR:-$HOME/.cache/kindred} start
  ((cold)) && cache=$work/cache-$n
  start=$(date +%s)
  KINDRED_CACHE_DIR=$cache "$KINDRED" build node-image --no-cache ${version:+--kube-version "$version"} \
    >"$work/build-$n.out" 2>"$work/build-$n.log" || {
    echo "check-reproducible: build $n failed; its log:" >&2
    tail -30 "$work/build-$n.log" >&2
    exit 1
  }
  echo "check-reproducible: build $n took $(($(date +%s) - start)) s" >&2
  tail -1 "$work/build-$n.out"
}

image=$(build 1)
id1=$(docker image inspect -f '{{.Id}}' "$image")
docker save "$image" -o "$work/1.tar"
# Cold caches are only needed for the build itself.
((cold)) && rm -rf "$work/cache-1"
image2=$(build 2)
[[ $image2 == "$image" ]] || { echo "check-reproducible: builds tagged $image and $image2" >&2; exit 1; }
id2=$(docker image inspect -f '{{.Id}}' "$image")
docker save "$image" -o "$work/2.tar"
((cold)) && rm -rf "$work/cache-2"

echo "| build | image ID |"
echo "|---|---|"
echo "| 1 | $id1 |"
echo "| 2 | $id2 |"
echo
python3 - "$work/1.tar" "$work/2.tar" <<'EOF'
"""Compares two `docker save` archives of one image: config, then layer by layer."""
import hashlib
import io
import json
import sys
import tarfile


def load(path):
    outer = tarfile.open(path)
    manifest = json.load(outer.extractfile("manifest.json"))[0]
    config = json.load(outer.extractfile(manifest["Config"]))
    return outer, manifest["Layers"], config


def entries(outer, member):
    """path -> (type, mode, uid, gid, mtime, size, sha256 or link target)."""
    out = {}
    data = outer.extractfile(member).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        for m in layer:
            if m.isfile():
                what = hashlib.sha256(layer.extractfile(m).read()).hexdigest()[:16]
            else:
                what = m.linkname
            out[m.name] = (m.type.decode(), oct(m.mode), m.uid, m.gid, m.mtime, m.size, what)
    return out


(a, la, ca), (b, lb, cb) = load(sys.argv[1]), load(sys.argv[2])
ids_a, ids_b = ca["rootfs"]["diff_ids"], cb["rootfs"]["diff_ids"]
same = True
for key in sorted(set(ca) | set(cb)):
    if key in ("rootfs", "history"):
        continue
    if ca.get(key) != cb.get(key):
        same = False
        print(f"config {key} differs:\n  1: {json.dumps(ca.get(key))}\n  2: {json.dumps(cb.get(key))}")
print("| layer | build 1 | build 2 | files that differ |")
print("|---|---|---|---|")
details = []
for i, (da, db) in enumerate(zip(ids_a, ids_b)):
    if da == db:
        print(f"| {i} | {da[7:19]} | same | 0 |")
        continue
    same = False
    ea, eb = entries(a, la[i]), entries(b, lb[i])
    diff = sorted(p for p in set(ea) | set(eb) if ea.get(p) != eb.get(p))
    print(f"| {i} | {da[7:19]} | {db[7:19]} | {len(diff)} |")
    for p in diff[:60]:
        details.append(f"layer {i} {p}\n  1: {ea.get(p)}\n  2: {eb.get(p)}")
    if len(diff) > 60:
        details.append(f"layer {i}: ... and {len(diff) - 60} more")
if len(ids_a) != len(ids_b):
    same = False
    print(f"layer count differs: {len(ids_a)} vs {len(ids_b)}")
print()
print("\n".join(details))
print("REPRODUCIBLE: the two builds are the same image" if same else "NOT REPRODUCIBLE (above: what differs)")
sys.exit(0 if same else 1)
EOF
