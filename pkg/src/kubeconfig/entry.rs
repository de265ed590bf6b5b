//! One kindred cluster's part of a kubeconfig: a cluster, a user and a context, all named
//! `kindred-<cluster name>`.

use serde_yaml::{Mapping, Value};

use super::document::Document;

/// Prefix of every kubeconfig name kindred owns; kind uses `kind-` the same way.
const NAME_PREFIX: &str = "kindred-";

/// The name of the context (and of its cluster and user entries) for a kindred cluster.
pub fn context_name(cluster: &str) -> String {
    format!("{NAME_PREFIX}{cluster}")
}

/// What kindred puts into a kubeconfig for one cluster. The `*_data` fields are base64, exactly
/// as they appear in kubeadm's admin.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The kindred cluster name (`demo`, not `kindred-demo`).
    pub cluster_name: String,
    /// The API server as the host reaches it, e.g. `https://127.0.0.1:38211`.
    pub server: String,
    pub certificate_authority_data: String,
    pub client_certificate_data: String,
    pub client_key_data: String,
}

impl Entry {
    /// The context, cluster and user name: `kindred-<cluster name>`.
    pub fn name(&self) -> String {
        context_name(&self.cluster_name)
    }

    /// The `clusters`, `users` and `contexts` list items, keyed as kubectl writes them.
    pub(super) fn items(&self) -> [(&'static str, Value); 3] {
        let name = self.name();
        let cluster = map([
            (
                "certificate-authority-data",
                self.certificate_authority_data.as_str().into(),
            ),
            ("server", self.server.as_str().into()),
        ]);
        let user = map([
            (
                "client-certificate-data",
                self.client_certificate_data.as_str().into(),
            ),
            ("client-key-data", self.client_key_data.as_str().into()),
        ]);
        let context = map([
            ("cluster", name.as_str().into()),
            ("user", name.as_str().into()),
        ]);
        [
            (
                "clusters",
                map([("cluster", cluster), ("name", name.as_str().into())]),
            ),
            (
                "users",
                map([("name", name.as_str().into()), ("user", user)]),
            ),
            (
                "contexts",
                map([("context", context), ("name", name.as_str().into())]),
            ),
        ]
    }
}

/// A standalone kubeconfig holding only this entry, with it as the current context (what
/// `kindred get kubeconfig` prints).
pub fn render(entry: &Entry) -> String {
    let mut document = Document::empty();
    document.upsert(entry);
    document.to_yaml()
}

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(key, value)| (Value::from(key), value))
            .collect::<Mapping>(),
    )
}
