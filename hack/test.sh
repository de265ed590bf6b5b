#!/usr/bin/env bash
# The project's test command (README): builds the default node image, the registry image and
# the CI image (cached after the first run), then runs every unit and end-to-end test against
# the real Docker daemon.
set -euo pipefail
cd "$(dirname "$0")/.."

# One kindred binary for everything below, built the way `cargo test` builds it (the test-only
# dependencies and the `e2e` feature change the build): the node image packs the binary that
# built it as its agent, and the e2e tests compare that with their own
# (e2e/tests/build_modes.rs).
cargo test --locked --workspace --features kindred-cli/e2e --no-run
kindred=("${CARGO_TARGET_DIR:-target}/debug/kindred")
# The e2e tests use this image; building it here shows progress in logs and fails early.
"${kindred[@]}" build node-image
# Its SPDX and CycloneDX documents pass validators kindred did not write (a cached Python venv).
KINDRED="${kindred[0]}" hack/validate-bom.sh
# The local registry's image (cli/tests/registry.rs), likewise: built once, then up to date.
"${kindred[@]}" build registry-image
# The CI image (cli/tests/nested.rs runs kindred inside it): the Debian base with Docker's
# engine is cached; the image is re-assembled when the kindred binary changed.
"${kindred[@]}" build ci-image
# cli/tests/conformance.rs runs upstream's e2e.test; building it, ginkgo and the test images
# here (cached by Kubernetes version) keeps that build out of the test's 15-minute budget.
"${kindred[@]}" test conformance --build-only
# e2e tests share the Docker daemon and node images; one test thread keeps them from fighting
# over the 2 cores CI has, and keeps their output readable. A plain `cargo test` runs the unit
# tests only: the e2e crate is not a default member, and cli/tests need the `e2e` feature.
cargo test --locked --workspace --features kindred-cli/e2e -- --test-threads=1
