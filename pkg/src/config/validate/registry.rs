//! `registry` (kindred's own field): the port, and settings that have no effect.

use super::Problems;
use crate::config::types::Registry;

pub(super) fn check_registry(registry: &Registry, problems: &mut Problems) {
    if let Some(port) = registry.port {
        if !(1..=65535).contains(&port) {
            problems.add(
                "registry.port",
                format!(
                    "{port} is out of range 1-65535; the registry needs a fixed host port, which \
                     is also the port in image names (localhost:<port>/app:tag)"
                ),
            );
        }
    }
    if !registry.is_enabled() {
        if registry.port.is_some() {
            problems.add(
                "registry.port",
                "has no effect while registry.enabled is false; remove it or enable the registry",
            );
        }
        if registry.keep {
            problems.add(
                "registry.keep",
                "has no effect while registry.enabled is false; remove it or enable the registry",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::validate::tests::problems_of;

    const KINDRED: &str = "apiVersion: kindred.dev/v1alpha4\nkind: Cluster\n";

    #[test]
    fn a_valid_registry_has_no_problems() {
        for registry in [
            "registry: {}",
            "registry: {enabled: true, port: 5001}",
            "registry: {port: 65535, keep: true}",
            "registry: {enabled: false}",
            "registry:",
        ] {
            let yaml = format!("{KINDRED}{registry}\n");
            assert_eq!(problems_of(&yaml), Vec::<String>::new(), "{registry}");
        }
    }

    #[test]
    fn bad_ports_are_reported() {
        for port in ["0", "-1", "65536"] {
            let problems = problems_of(&format!("{KINDRED}registry: {{port: {port}}}\n"));
            assert_eq!(problems.len(), 1, "{port}: {problems:?}");
            assert!(
                problems[0].starts_with(&format!("registry.port: {port} is out of range 1-65535")),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn settings_of_a_disabled_registry_are_reported() {
        let problems = problems_of(&format!(
            "{KINDRED}registry: {{enabled: false, port: 5002, keep: true}}\n"
        ));
        assert_eq!(
            problems,
            [
                "registry.port: has no effect while registry.enabled is false; remove it or \
                 enable the registry",
                "registry.keep: has no effect while registry.enabled is false; remove it or \
                 enable the registry",
            ]
        );
    }

    #[test]
    fn the_registry_port_cannot_be_published_twice() {
        let problems = problems_of(&format!(
            "{KINDRED}registry: {{port: 5001}}
networking: {{apiServerPort: 5001}}
nodes:
- extraPortMappings:
  - {{containerPort: 80, hostPort: 5001}}
  - {{containerPort: 81, hostPort: 5001, listenAddress: 127.0.0.2}}
"
        ));
        assert_eq!(
            problems,
            [
                "networking.apiServerPort: 127.0.0.1:5001 is already published by registry.port; \
                 each host port can be used once (use another port, or 0 for a free one)",
                "nodes[0].extraPortMappings[0].hostPort: 0.0.0.0:5001/TCP is already published \
                 by registry.port; each host port can be used once (use another hostPort, or 0 \
                 for a free one)",
                "nodes[0].extraPortMappings[1].hostPort: 127.0.0.2:5001/TCP is already \
                 published by nodes[0].extraPortMappings[0]; each host port can be used once \
                 (use another hostPort, or 0 for a free one)",
            ]
        );
    }
}
