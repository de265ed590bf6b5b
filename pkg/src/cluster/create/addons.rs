//! Action 6: the add-ons from the node image (kind's layout: /kind/manifests/), applied on
//! the first control plane: the pod network agent unless disableDefaultCNI, the storage agent
//! with the default StorageClass, the LoadBalancer Service agent (when the cluster has an
//! address block for it), and the local registry's discovery ConfigMap. Done before
//! workers join so their agent pods start as they register.

use super::Ctx;
use crate::agent::manifests;
use crate::cluster::node::Node;
use crate::cluster::registry::RegistryRequest;
use crate::cluster::ClusterError;
use crate::config::{Cidr, KubeProxyMode, Networking};
use crate::ui::Step;

/// The add-on manifests as applied, kept on the node for reference.
const ADDONS_MANIFEST: &str = "/kind/addons.yaml";

pub(super) async fn run(
    ctx: &Ctx<'_>,
    endpoint: &str,
    lb_pool: Option<(Cidr, Option<Cidr>)>,
    step: &Step,
) -> Result<(), ClusterError> {
    let (docker, plan) = (ctx.docker, ctx.plan);
    let cp = &plan.first_control_plane().name;
    let mut paths = vec![manifests::DEFAULT_STORAGE_PATH];
    if !plan.config.networking.disable_default_cni {
        paths.insert(0, manifests::DEFAULT_CNI_PATH);
    }
    let mut rendered = Vec::new();
    for path in paths {
        let out = docker.exec(cp, &["cat", path]).await?;
        if out.code != 0 {
            return Err(ClusterError::AddonMissing {
                image: plan.first_control_plane().config.image.clone(),
                path: path.to_string(),
            });
        }
        rendered.push(render(ctx, &out.stdout, path, endpoint)?);
    }
    if let Some((pool, pool6)) = lb_pool {
        rendered.extend(service_lb_manifest(ctx, endpoint, pool, pool6, &rendered, step).await?);
    }
    if let Some(request) = RegistryRequest::of(&plan.config) {
        // kind's discovery ConfigMap for the local registry (KEP-1755).
        rendered.push(crate::registry::local_registry_hosting(request.port));
        step.detail(format!(
            "ConfigMap kube-public/local-registry-hosting: localhost:{}",
            request.port
        ));
    }
    let node = Node::new(docker, cp);
    node.write_file(ADDONS_MANIFEST, &rendered.join("\n---\n"), step)
        .await?;
    node.kubectl(&format!("apply -f {ADDONS_MANIFEST}"), step)
        .await?;
    Ok(())
}

/// The LoadBalancer Service agent's manifest, run from the agent image the node image carries
/// (named in the manifests already rendered); none when that agent predates it.
async fn service_lb_manifest(
    ctx: &Ctx<'_>,
    endpoint: &str,
    pool: Cidr,
    pool6: Option<Cidr>,
    rendered: &[String],
    step: &Step,
) -> Result<Option<String>, ClusterError> {
    let (docker, plan) = (ctx.docker, ctx.plan);
    let cp = &plan.first_control_plane().name;
    let image = rendered.iter().find_map(|m| manifests::daemon_set_image(m));
    // The node image's kindred is the agent image's binary (both packed from one build).
    let probe = ["/usr/local/bin/kindred", "agent", "service-lb", "--help"];
    let supported = docker.exec(cp, &probe).await?.code == 0;
    let Some(image) = image.filter(|_| supported) else {
        step.detail(format!(
            "LoadBalancer Services stay pending: the agent in {} predates them (rebuild the \
             image with `kindred build node-image`)",
            plan.first_control_plane().config.image
        ));
        return Ok(None);
    };
    let pool6 = pool6.map(|p| p.to_string());
    let template = manifests::service_lb(&image, &pool.to_string(), pool6.as_deref());
    let manifest = render(ctx, &template, "the LoadBalancer agent manifest", endpoint)?;
    match &pool6 {
        Some(p6) => step.detail(format!(
            "LoadBalancer Services: addresses from {pool} and {p6}"
        )),
        None => step.detail(format!("LoadBalancer Services: addresses from {pool}")),
    }
    Ok(Some(manifest))
}

/// An add-on manifest (`name`: where it came from, for errors) with the cluster's subnets and
/// API endpoint filled in.
fn render(
    ctx: &Ctx<'_>,
    template: &str,
    name: &str,
    endpoint: &str,
) -> Result<String, ClusterError> {
    let net = &ctx.plan.config.networking;
    manifests::render(
        template,
        &net.pod_subnet,
        &guarded_service_subnet(net),
        endpoint,
    )
    .map_err(|source| ClusterError::AddonInvalid {
        path: name.to_string(),
        source,
    })
}

/// The service subnet the network agent guards (see `agent::network`): with kube-proxy in
/// iptables or nftables mode, whose translation happens before the filter table looks.
/// IPVS handles service addresses as local ones, and without kube-proxy whatever replaces it
/// decides; no guard then.
fn guarded_service_subnet(net: &Networking) -> String {
    match net.kube_proxy_mode {
        KubeProxyMode::Iptables | KubeProxyMode::Nftables => net.service_subnet.clone(),
        KubeProxyMode::Ipvs | KubeProxyMode::None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_range_is_guarded_only_where_kube_proxy_translates_first() {
        use crate::config::Cluster;
        let mut net = Cluster::default().with_defaults().networking;
        for (mode, guarded) in [
            (KubeProxyMode::Iptables, true),
            (KubeProxyMode::Nftables, true),
            (KubeProxyMode::Ipvs, false),
            (KubeProxyMode::None, false),
        ] {
            net.kube_proxy_mode = mode;
            let subnet = guarded_service_subnet(&net);
            assert_eq!(subnet == net.service_subnet, guarded, "{mode:?}");
            assert_eq!(subnet.is_empty(), !guarded, "{mode:?}");
        }
    }
}
