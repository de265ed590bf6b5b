//! Turning kubeadm's `/etc/kubernetes/admin.conf` into kindred's kubeconfig entry.

use serde_yaml::Value;

use super::entry::Entry;
use super::error::KubeconfigError;

/// Takes the cluster-admin credentials from kubeadm's admin.conf (read from the control-plane
/// node) for kindred cluster `cluster`, reached from the host at `server` (e.g.
/// `https://127.0.0.1:38211`, since admin.conf names the node's address inside Docker's
/// network).
///
/// The cluster and user are the ones admin.conf's current context names, or its only ones.
pub fn from_admin_conf(
    admin_conf_yaml: &str,
    cluster: &str,
    server: &str,
) -> Result<Entry, KubeconfigError> {
    let document: Value = serde_yaml::from_str(admin_conf_yaml)
        .map_err(|e| problem(format!("it is not valid YAML: {e}")))?;
    let context = current_context(&document);
    let context_field = |key| {
        context
            .and_then(|c| c.get("context"))
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
    };
    let kubeadm_cluster = pick(&document, "clusters", context_field("cluster"))?;
    let kubeadm_user = pick(&document, "users", context_field("user"))?;
    Ok(Entry {
        cluster_name: cluster.to_string(),
        server: server.to_string(),
        certificate_authority_data: data(kubeadm_cluster, "cluster", "certificate-authority-data")?,
        client_certificate_data: data(kubeadm_user, "user", "client-certificate-data")?,
        client_key_data: data(kubeadm_user, "user", "client-key-data")?,
    })
}

fn problem(reason: String) -> KubeconfigError {
    KubeconfigError::AdminConf { reason }
}

fn current_context(document: &Value) -> Option<&Value> {
    let name = document.get("current-context")?.as_str()?;
    document
        .get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

/// The item of `list` called `name`, or the only item when no name is known.
fn pick<'a>(
    document: &'a Value,
    list: &str,
    name: Option<&str>,
) -> Result<&'a Value, KubeconfigError> {
    let items = document
        .get(list)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match name {
        Some(name) => items
            .iter()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| {
                problem(format!(
                    "its current context names `{name}`, which is not in `{list}`"
                ))
            }),
        None => match items {
            [only] => Ok(only),
            _ => Err(problem(format!(
                "it has {} entries in `{list}` and no current context to choose one",
                items.len()
            ))),
        },
    }
}

/// `item.<section>.<key>`, a non-empty string.
fn data(item: &Value, section: &str, key: &str) -> Result<String, KubeconfigError> {
    item.get(section)
        .and_then(|s| s.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or("?");
            problem(format!(
                "{section} `{name}` has no {key} (kindred needs the certificates inline, as \
                 kubeadm writes them)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeconfig::render;

    const ADMIN_CONF: &str = include_str!("testdata/admin.conf");
    const SERVER: &str = "https://127.0.0.1:38211";

    #[test]
    fn takes_kubeadm_credentials_and_rewrites_server() {
        let entry = from_admin_conf(ADMIN_CONF, "demo", SERVER).unwrap();
        let admin: Value = serde_yaml::from_str(ADMIN_CONF).unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let user = &admin["users"][0]["user"];
        assert_eq!(entry.cluster_name, "demo");
        assert_eq!(entry.name(), "kindred-demo");
        assert_eq!(entry.server, SERVER);
        assert_eq!(
            entry.certificate_authority_data,
            cluster["certificate-authority-data"].as_str().unwrap()
        );
        assert_eq!(
            entry.client_certificate_data,
            user["client-certificate-data"].as_str().unwrap()
        );
        assert_eq!(
            entry.client_key_data,
            user["client-key-data"].as_str().unwrap()
        );
    }

    #[test]
    fn rendered_kubeconfig_uses_kindred_names_and_host_server() {
        let entry = from_admin_conf(ADMIN_CONF, "demo", SERVER).unwrap();
        let yaml = render(&entry);
        assert!(!yaml.contains("kubernetes-admin"), "{yaml}");
        assert!(!yaml.contains("demo-control-plane"), "{yaml}");

        let rendered: Value = serde_yaml::from_str(&yaml).unwrap();
        let admin: Value = serde_yaml::from_str(ADMIN_CONF).unwrap();
        assert_eq!(rendered["apiVersion"], "v1");
        assert_eq!(rendered["kind"], "Config");
        assert_eq!(rendered["current-context"], "kindred-demo");
        assert_eq!(rendered["clusters"][0]["name"], "kindred-demo");
        assert_eq!(rendered["clusters"][0]["cluster"]["server"], SERVER);
        assert_eq!(
            rendered["clusters"][0]["cluster"]["certificate-authority-data"],
            admin["clusters"][0]["cluster"]["certificate-authority-data"]
        );
        assert_eq!(rendered["users"][0]["name"], "kindred-demo");
        assert_eq!(rendered["users"][0]["user"], admin["users"][0]["user"]);
        assert_eq!(rendered["contexts"][0]["name"], "kindred-demo");
        assert_eq!(
            rendered["contexts"][0]["context"]["cluster"],
            "kindred-demo"
        );
        assert_eq!(rendered["contexts"][0]["context"]["user"], "kindred-demo");
    }

    #[test]
    fn admin_conf_without_inline_key_is_refused() {
        let without_key = ADMIN_CONF
            .lines()
            .filter(|l| !l.contains("client-key-data"))
            .collect::<Vec<_>>()
            .join("\n");
        let error = from_admin_conf(&without_key, "demo", SERVER).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`kubernetes-admin` has no client-key-data"),
            "{error}"
        );
    }

    #[test]
    fn admin_conf_that_is_not_yaml_is_refused() {
        let error = from_admin_conf("clusters: [", "demo", SERVER).unwrap_err();
        assert!(
            matches!(error, KubeconfigError::AdminConf { .. }),
            "{error}"
        );
    }
}
