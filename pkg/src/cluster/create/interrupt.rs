//! Ctrl-C and SIGTERM during a create: what this create made is removed (only that, found by
//! its token, never a cluster of the same name another command made), unless `--retain`.

use crate::cluster::ownership::Ownership;
use crate::provider::Provider;
use crate::ui::Ui;

/// Waits for SIGINT or SIGTERM and names it; never returns if the handlers cannot be set.
pub async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// After `signal` stopped the create of `name`: cleans up (unless `retain`) and says so.
pub(super) async fn clean_up(
    docker: &dyn Provider,
    owner: &Ownership,
    name: &str,
    retain: bool,
    signal: &str,
    ui: &Ui,
) {
    if retain {
        ui.info(format!(
            "Interrupted by {signal}; keeping what this command created for {name} (--retain)"
        ));
        return;
    }
    ui.info(format!(
        "Interrupted by {signal}; deleting the partly created cluster {name} (only what this command created)"
    ));
    // Settling: a container creation already sent to Docker may finish after the first pass.
    if let Err(e) = owner.clean_up(docker, true).await {
        ui.warn(e.to_string());
    }
}
