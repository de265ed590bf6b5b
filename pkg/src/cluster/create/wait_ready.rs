//! Action 9 (with `--wait`): polls the nodes' Ready condition until all are Ready or the wait
//! is over.

use std::time::{Duration, Instant};

use super::Ctx;
use crate::cluster::node::Node;
use crate::cluster::ClusterError;
use crate::ui::Step;

pub(super) async fn run(ctx: &Ctx<'_>, wait: Duration, step: &Step) -> Result<(), ClusterError> {
    let plan = ctx.plan;
    let cp = &plan.first_control_plane().name;
    let deadline = Instant::now() + wait;
    let query = r#"get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'"#;
    loop {
        let out = Node::new(ctx.docker, cp).kubectl_output(query).await?;
        let ready = out.stdout.lines().filter(|l| l.ends_with("=True")).count();
        step.progress(format!("{ready}/{} Ready", plan.nodes.len()));
        if out.code == 0 && ready == plan.nodes.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::NodesNotReady {
                cluster: plan.name().to_string(),
                ready,
                total: plan.nodes.len(),
                waited_secs: wait.as_secs(),
                nodes: out.stdout,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
