//! The test hook that stops a create at a named point, so the e2e tests (cli/tests/races.rs)
//! and hack/fault-inject.sh can interrupt or race it at a known moment. Points, in the order
//! create reaches them: `name-check` and `name-checked` (around the early name check), `locked`
//! (the network lock held, containers not yet made), `nodes-created` (every container made),
//! then one after each later action: `nodes-configured`, `initialized`, `addons-installed`,
//! `joined`, `ready`, `kubeconfig-written`.

use std::time::Duration;

/// Test hook (read by the e2e tests and hack/fault-inject.sh only): `<point>[:<milliseconds>]` makes `create` stop at
/// that named point for a while (default 60 s), after printing `paused at <point>` on stderr.
pub const PAUSE_ENV: &str = "KINDRED_TEST_PAUSE_AT";

/// Stops at the named point while the test hook [`PAUSE_ENV`] asks for it.
pub(super) async fn pause_point(point: &str) {
    let Ok(spec) = std::env::var(PAUSE_ENV) else {
        return;
    };
    let (at, millis) = match spec.split_once(':') {
        Some((at, ms)) => (at.to_string(), ms.parse().unwrap_or(60_000)),
        None => (spec, 60_000),
    };
    if at == point {
        eprintln!("{PAUSE_ENV}: paused at {point} for {millis} ms");
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
}
