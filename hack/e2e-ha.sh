#!/usr/bin/env bash
# The HA end-to-end test: a 3 control-plane + 2 worker cluster loses a control plane (the API
# must keep answering through the load balancer, etcd keep quorum, the node rejoin), then goes
# through every restart case (docker restart, simulated host reboot, kindred stop/start, Docker
# daemon restart). About 8 minutes on 2 cores, so CI (hack/test.sh) leaves it out. It restarts
# the Docker daemon: run it where nothing else uses Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --workspace --features kindred-cli/e2e --no-run
"${CARGO_TARGET_DIR:-target}/debug/kindred" build node-image
exec cargo test --locked -p kindred-cli --features e2e --test restart -- --ignored --nocapture --test-threads=1
